// What every view of the console gets: the API, navigation and messages.
import type { ModeratorApi } from "./api";

export interface Context {
  api: ModeratorApi;
  /** Goes to a route such as "sessions" or "session/<id>". */
  go(route: string): void;
  /** Shows a short message in the live region (screen readers hear it too). */
  notify(text: string, kind?: "ok" | "error"): void;
  /** Handles any failed call: a 401 signs out, anything else is shown. */
  fail(e: unknown): void;
}

// One place that holds the state and tells the views when it changed.
import { initialState, serializeSession, type State } from "./state";

export const STORAGE = {
  token: "nearchat.token",
  consent: "nearchat.consent",
  location: "nearchat.useLocation",
  session: "nearchat.session",
} as const;

type Listener = (s: State) => void;

export class Store {
  state: State;
  private listeners: Listener[] = [];

  constructor() {
    this.state = initialState(localStorage.getItem(STORAGE.consent) === "1");
  }

  subscribe(fn: Listener): void {
    this.listeners.push(fn);
  }

  /**
   * Applies `change` and tells every view. The conversation is kept on the
   * device while it lasts: after a reload it is restored when the server says
   * the session goes on (user-session, resumed), and forgotten when it ends.
   */
  update(change: (s: State) => void): void {
    const before = this.state.session;
    change(this.state);
    if (this.state.session) localStorage.setItem(STORAGE.session, serializeSession(this.state.session));
    else if (before) localStorage.removeItem(STORAGE.session);
    for (const fn of this.listeners) fn(this.state);
  }
}

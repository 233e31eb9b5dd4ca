// The moderator console at /moderate/. The key lives in sessionStorage only:
// it is gone when the tab closes, and no other page of the origin keeps it.
import { h, replace } from "../common/dom";
import { ApiError, ModeratorApi, type Report } from "./api";
import type { Context } from "./context";
import { bansView } from "./bans";
import { reportsView } from "./reports";
import { sessionsView } from "./sessions";
import { transcriptView } from "./transcript";
import "./moderate.css";

const KEY_STORAGE = "nearchat.moderatorKey";
const root = document.getElementById("root")!;
const live = h("div", { class: "toast", role: "status", "aria-live": "polite" });
let openedReport: Report | null = null;

function notify(text: string, kind: "ok" | "error" = "ok") {
  live.className = `toast ${kind}`;
  live.textContent = text;
}

function signOut(message?: string) {
  sessionStorage.removeItem(KEY_STORAGE);
  signIn(message);
}

function signIn(message?: string) {
  const key = h("input", { id: "key", name: "key", type: "password", required: true, autocomplete: "current-password" });
  const error = h("p", { class: "error", role: "alert" }, message ?? "");
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "nearchat moderation"),
    h("label", { for: "key" }, "Moderator key"),
    key,
    submit,
    error,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    try {
      await new ModeratorApi(key.value).reports("open");
      sessionStorage.setItem(KEY_STORAGE, key.value);
      start(key.value);
    } catch (e) {
      error.textContent =
        e instanceof ApiError && e.status === 401 ? "This key is not accepted." : `Cannot sign in: ${(e as Error).message}`;
      submit.disabled = false;
      key.select();
    }
  });
  replace(root, h("main", { class: "signin-page" }, form));
  key.focus();
}

function start(key: string) {
  const view = h("main", { id: "view", tabindex: -1 });
  const ctx: Context = {
    api: new ModeratorApi(key),
    go: (route) => {
      location.hash = route;
    },
    notify,
    fail: (e) => {
      if (e instanceof ApiError && e.status === 401) signOut("The key is no longer accepted; sign in again.");
      else notify(e instanceof Error ? e.message : String(e), "error");
    },
  };
  const link = (route: string, text: string) => h("a", { href: `#${route}`, "data-route": route }, text);
  const out = h("button", { type: "button" }, "Sign out");
  out.addEventListener("click", () => signOut());
  const nav = h("nav", { "aria-label": "Console" }, link("sessions", "Sessions"), link("reports", "Reports"), link("bans", "Bans"));
  replace(root, h("header", { class: "top" }, h("span", { class: "brand" }, "nearchat moderation"), nav, out), live, view);

  const route = () => {
    const [name, arg] = location.hash.replace(/^#/, "").split("/", 2);
    for (const a of nav.querySelectorAll("a"))
      a.toggleAttribute("aria-current", a.dataset.route === (name === "session" ? "sessions" : name || "sessions"));
    let content: HTMLElement;
    if (name === "session" && arg) {
      const id = decodeURIComponent(arg);
      content = transcriptView(ctx, id, openedReport?.sessionId === id ? openedReport : null);
    } else if (name === "reports") {
      content = reportsView(ctx, (r) => {
        openedReport = r;
        ctx.go(`session/${encodeURIComponent(r.sessionId)}`);
      });
    } else if (name === "bans") {
      content = bansView(ctx);
    } else {
      content = sessionsView(ctx);
    }
    replace(view, content);
    view.focus();
  };
  window.onhashchange = route;
  route();
}

const saved = sessionStorage.getItem(KEY_STORAGE);
if (saved) start(saved);
else signIn();

// The visitor app: picks the screen for the state, keeps the connection
// banner true, and registers the service worker that keeps the app shell.
import { h, replace } from "../common/dom";
import { Client } from "./client";
import { placeLabel, type State } from "./state";
import { STORAGE, Store } from "./store";
import { chatView } from "./views/chat";
import { bannedView, consentView, endedView, homeView, proposalView, searchingView, type View } from "./views/screens";
import "./app.css";

const store = new Store();
const client = new Client(store);

const banner = h("div", { class: "conn-banner", role: "status", hidden: true });
const screen = h("div", { class: "screen" });
const you = h("p", { class: "you" });
const side = h(
  "aside",
  { class: "side", "aria-label": "About nearchat" },
  h("div", { class: "brand" }, h("img", { src: "/icons/icon-192.png", alt: "", width: 40, height: 40 }), h("span", {}, "nearchat")),
  you,
  h("p", { class: "tagline" }, "Anonymous one-to-one chats with people near you. Be kind; chats are moderated."),
);
const topbar = h("header", { class: "topbar" }, h("img", { src: "/icons/icon-192.png", alt: "", width: 28, height: 28 }), h("span", {}, "nearchat"));
replace(document.getElementById("app")!, h("div", { class: "shell" }, side, h("main", { class: "panel" }, topbar, banner, screen)));

let current: { name: string; view: View } | null = null;

function viewFor(s: State): View {
  switch (s.phase.name) {
    case "consent":
      return consentView((useLocation) => void begin(useLocation));
    case "home":
      return homeView(client, s);
    case "searching":
      return searchingView(client, s);
    case "proposal":
      return proposalView(client, s);
    case "chat":
      return chatView(client, s);
    case "ended":
      return endedView(client, s);
    case "banned":
      return bannedView();
  }
}

function render(s: State): void {
  // the same screen is updated in place; another one replaces it and takes the focus
  const name = s.phase.name === "proposal" ? `proposal:${s.phase.proposalId}` : s.phase.name;
  if (current?.name === name && current.view.update) {
    current.view.update(s);
  } else if (current?.name !== name) {
    current?.view.destroy?.();
    current = { name, view: viewFor(s) };
    replace(screen, current.view.el);
    document.body.dataset.screen = s.phase.name;
  }
  const lost = s.connection === "reconnecting" && s.phase.name !== "banned" && s.phase.name !== "consent";
  banner.hidden = !lost;
  banner.textContent = lost ? "Connection lost. Reconnecting…" : "";
  you.textContent = s.geo ? `You: ${placeLabel(s.geo)}${s.geo.source === "device" ? " (device)" : ""}` : "";
}

store.subscribe(render);
render(store.state);

/** The device's position when the visitor allowed it; null when refused, unavailable or slow. */
function position(): Promise<{ lat: number; lon: number } | null> {
  if (!("geolocation" in navigator)) return Promise.resolve(null);
  return new Promise((resolve) =>
    navigator.geolocation.getCurrentPosition(
      (p) => resolve({ lat: p.coords.latitude, lon: p.coords.longitude }),
      () => resolve(null),
      { enableHighAccuracy: false, timeout: 8000, maximumAge: 600000 },
    ),
  );
}

async function begin(useLocation: boolean): Promise<void> {
  localStorage.setItem(STORAGE.consent, "1");
  localStorage.setItem(STORAGE.location, useLocation ? "1" : "0");
  const where = useLocation ? await position() : null;
  client.start(where);
  if (useLocation && !where)
    store.update((s) => (s.phase = { name: "home", note: "Your location was not shared, so your city comes from your connection." }));
}

if (store.state.phase.name !== "consent") void begin(localStorage.getItem(STORAGE.location) === "1");

document.addEventListener("visibilitychange", () => client.markRead());
window.addEventListener("focus", () => client.markRead());

if ("serviceWorker" in navigator && window.isSecureContext) {
  window.addEventListener("load", () => void navigator.serviceWorker.register("/sw.js").catch(() => undefined));
}

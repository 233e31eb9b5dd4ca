// The screens around a chat: consent, home, searching, proposal, ended, banned.
import { h } from "../../common/dom";
import type { Client } from "../client";
import { placeLabel, scopeLabel, secondsLeft, type Phase, type Scope, type State } from "../state";

export interface View {
  el: HTMLElement;
  update?(s: State): void;
  destroy?(): void;
}

export function consentView(onAgree: (useLocation: boolean) => void): View {
  const useLocation = h("input", { type: "checkbox", id: "use-location", name: "use-location" });
  const agree = h("button", { type: "submit", class: "primary" }, "I agree, let's start");
  const form = h(
    "form",
    { class: "card consent", "aria-labelledby": "consent-title" },
    h("h1", { id: "consent-title" }, "Talk to someone nearby"),
    h("p", {}, "nearchat pairs you with a stranger near you for a one-to-one chat. No sign-up, no name."),
    h(
      "ul",
      { class: "rules" },
      h("li", {}, "You must be 18 or older."),
      h("li", {}, "Chats are anonymous: the stranger sees a made-up name and your city, never who you are."),
      h("li", {}, "Messages are kept for moderation and can be read by moderators if a chat is reported."),
      h("li", {}, "Be kind. Don't share personal details. Harassment gets you banned."),
    ),
    h(
      "div",
      { class: "location-choice" },
      useLocation,
      h("label", { for: "use-location" }, "Use my device's location to find people closer to me"),
      h(
        "p",
        { class: "hint", id: "location-hint" },
        "Optional. Your browser will ask. It is rounded to about 1 km and never shown to anyone; only your city is. " +
          "Without it, your city is guessed from your connection.",
      ),
    ),
    agree,
  );
  useLocation.setAttribute("aria-describedby", "location-hint");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    agree.disabled = true;
    onAgree(useLocation.checked);
  });
  return { el: form };
}

// "My country" by default: the search starts in the city and widens to nearby, then the country.
const SCOPES: [Scope, string][] = [
  ["city", "My city only"],
  ["country", "My country"],
  ["any", "Anywhere"],
];

export function homeView(client: Client, s: State): View {
  const phase = s.phase as Extract<Phase, { name: "home" }>;
  const note = h("p", { class: "note", role: "status" }, phase.note ?? "");
  const where = h("p", { class: "where" });
  const radios = SCOPES.map(([value, label], i) =>
    h(
      "label",
      { class: "scope" },
      h("input", { type: "radio", name: "scope", value, checked: i === 1 }),
      h("span", {}, label),
    ),
  );
  const form = h(
    "form",
    { class: "card home", "aria-labelledby": "home-title" },
    h("h1", { id: "home-title" }, "Ready when you are"),
    where,
    h("fieldset", { class: "scopes" }, h("legend", {}, "Who can you meet?"), radios),
    h("button", { type: "submit", class: "primary big" }, "Find someone nearby"),
    note,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const scope = (form.querySelector("input[name=scope]:checked") as HTMLInputElement | null)?.value as Scope;
    void client.request(scope ?? "country");
  });
  const update = (st: State) => {
    where.textContent = st.geo
      ? st.geo.source === "unknown"
        ? "We could not tell where you are, so anyone can be your match."
        : `You appear to be in ${placeLabel(st.geo)} (${st.geo.source === "device" ? "from your device" : "from your connection"}).`
      : "Connecting…";
  };
  update(s);
  return { el: form, update };
}

export function searchingView(client: Client, s: State): View {
  const steps = ["city", "nearby", "country", "any"];
  const list = h("ol", { class: "steps", "aria-label": "Search area" });
  const status = h("p", { class: "searching-status", role: "status" });
  const cancel = h("button", { type: "button" }, "Cancel");
  cancel.addEventListener("click", () => void client.cancel());
  const el = h(
    "section",
    { class: "card searching", "aria-labelledby": "searching-title" },
    h("div", { class: "pulse", "aria-hidden": "true" }),
    h("h1", { id: "searching-title" }, "Looking for someone"),
    status,
    list,
    cancel,
  );
  const update = (st: State) => {
    if (st.phase.name !== "searching") return;
    const { scope, widenedTo, waitedMs } = st.phase;
    const limit = steps.indexOf(scope);
    const at = Math.max(0, steps.indexOf(widenedTo));
    status.textContent = `Searching ${scopeLabel(widenedTo)}${waitedMs ? ` · ${Math.round(waitedMs / 1000)} s` : ""}…`;
    list.replaceChildren(
      ...steps
        .filter((_, i) => i <= Math.max(limit, 0))
        .map((step, i) =>
          h("li", { class: i < at ? "done" : i === at ? "current" : "", "aria-current": i === at ? "step" : undefined }, scopeLabel(step)),
        ),
    );
  };
  update(s);
  return { el, update };
}

export function proposalView(client: Client, s: State): View {
  const phase = s.phase as Extract<Phase, { name: "proposal" }>;
  const left = h("span", { class: "countdown" });
  const bar = h("progress", { max: Math.max(1, secondsLeft(phase.expiresAt, Date.now())), "aria-label": "Time left" });
  const accept = h("button", { type: "button", class: "primary" }, "Accept");
  const decline = h("button", { type: "button" }, "Decline");
  accept.addEventListener("click", () => {
    accept.disabled = decline.disabled = true;
    void client.accept(phase.proposalId);
  });
  decline.addEventListener("click", () => {
    accept.disabled = decline.disabled = true;
    void client.decline(phase.proposalId);
  });
  const tickDown = () => {
    const n = secondsLeft(phase.expiresAt, Date.now());
    left.textContent = `${n} s left`;
    bar.value = n;
  };
  tickDown();
  const timer = setInterval(tickDown, 250);
  const el = h(
    "section",
    { class: "card proposal", role: "alertdialog", "aria-labelledby": "proposal-title", "aria-describedby": "proposal-who" },
    h("h1", { id: "proposal-title" }, "Someone wants to chat"),
    h("p", { id: "proposal-who", class: "who" }, `A stranger in ${placeLabel(phase.peer)}`),
    bar,
    left,
    h("div", { class: "actions" }, decline, accept),
  );
  queueMicrotask(() => accept.focus());
  return { el, destroy: () => clearInterval(timer) };
}

const ENDED: Record<string, [string, string]> = {
  left: ["The stranger left", "They ended the chat. Someone else is waiting."],
  reported: ["The stranger left", "They ended the chat and reported it. Someone else is waiting."],
  expired: ["This chat expired", "Chats end after a while. Start a new one any time."],
  "you-left": ["You left the chat", "Whenever you like, find someone new."],
  "you-reported": ["Thanks for reporting", "A moderator will look at this chat. You won't be matched with this stranger again."],
};

export function endedView(client: Client, s: State): View {
  const phase = s.phase as Extract<Phase, { name: "ended" }>;
  const [title, text] = ENDED[phase.reason] ?? ENDED.left;
  const again = h("button", { type: "button", class: "primary" }, "Find someone new");
  again.addEventListener("click", () => void client.request());
  const home = h("button", { type: "button" }, "Back");
  home.addEventListener("click", () => client.home());
  const el = h(
    "section",
    { class: "card ended", role: "status", "aria-labelledby": "ended-title" },
    h("h1", { id: "ended-title" }, title),
    h("p", {}, text),
    h("div", { class: "actions" }, home, again),
  );
  queueMicrotask(() => again.focus());
  return { el };
}

export function bannedView(): View {
  return {
    el: h(
      "section",
      { class: "card banned", role: "alert", "aria-labelledby": "banned-title" },
      h("h1", { id: "banned-title" }, "You can't chat right now"),
      h("p", {}, "A moderator has blocked this device or network for breaking the rules. The block ends on its own."),
    ),
  };
}

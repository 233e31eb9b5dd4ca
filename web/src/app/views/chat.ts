// The chat: a WhatsApp-like header, bubbles with times and ticks, the typing
// indicator, the composer, and leave / next / report.
import { h } from "../../common/dom";
import type { Client } from "../client";
import { placeLabel, type ChatMessage, type ChatSession, type State } from "../state";
import { FLAG, icon, LEAVE, NEXT, SEND, tick } from "./icons";
import type { View } from "./screens";

const clock = (ts: number) => new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

const REASONS = ["Harassment or hate", "Sexual content", "Spam or scam", "Someone underage", "Other"];

function initials(alias: string): string {
  return alias
    .split(/\s+/)
    .map((w) => w[0] ?? "")
    .join("")
    .slice(0, 2)
    .toUpperCase();
}

function bubble(m: ChatMessage): HTMLElement {
  return h(
    "li",
    { class: `bubble ${m.mine ? "mine" : "theirs"}`, "data-id": m.id, "data-seq": m.seq ?? undefined },
    h("span", { class: "sr-only" }, m.mine ? "You: " : "Stranger: "),
    h("span", { class: "text" }, m.text),
    h("span", { class: "meta" }, h("time", { datetime: new Date(m.ts).toISOString() }, clock(m.ts)), m.mine ? tick(m.status ?? "pending") : null),
  );
}

function reportDialog(client: Client): HTMLDialogElement {
  const other = h("textarea", { name: "details", maxlength: 400, rows: 3, id: "report-details" });
  const error = h("p", { class: "note", role: "alert" });
  const form = h(
    "form",
    { method: "dialog" },
    h("h2", { id: "report-title" }, "Report this chat"),
    h("p", {}, "The chat ends, a moderator reads it, and you won't meet this stranger again."),
    h(
      "fieldset",
      {},
      h("legend", {}, "What happened?"),
      REASONS.map((r, i) => h("label", { class: "reason" }, h("input", { type: "radio", name: "reason", value: r, required: true, checked: i === 0 }), r)),
    ),
    h("label", { for: "report-details" }, "Anything to add (optional)"),
    other,
    error,
    h("div", { class: "actions" }, h("button", { type: "button", value: "cancel", class: "cancel" }, "Cancel"), h("button", { type: "submit", class: "danger" }, "Report and leave")),
  );
  const dialog = h("dialog", { class: "report", "aria-labelledby": "report-title" }, form);
  form.querySelector(".cancel")!.addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const reason = (form.querySelector("input[name=reason]:checked") as HTMLInputElement).value;
    const details = other.value.trim();
    const problem = await client.report(details ? `${reason}: ${details}`.slice(0, 500) : reason);
    if (problem) error.textContent = problem;
    else dialog.close();
  });
  return dialog;
}

export function chatView(client: Client, s: State): View {
  const session = s.session as ChatSession;
  const name = h("h1", { class: "alias" });
  const sub = h("p", { class: "sub", "aria-live": "polite" });
  const list = h("ol", { class: "messages", role: "log", "aria-label": "Messages", "aria-live": "polite" });
  const intro = h("p", { class: "intro" });
  const scroller = h("div", { class: "scroller" }, intro, list);
  const input = h("textarea", { id: "composer", name: "message", rows: 1, maxlength: 4096, placeholder: "Message", autocomplete: "off" });
  const send = h("button", { type: "submit", class: "send", "aria-label": "Send" }, icon(SEND, null));
  const composer = h("form", { class: "composer", "aria-label": "Write a message" }, h("label", { for: "composer", class: "sr-only" }, "Message"), input, send);
  const dialog = reportDialog(client);

  // on a phone the labels are read out but not shown, to leave the header to the alias
  const action = (label: string, paths: string[], cls = "") =>
    h("button", { type: "button", class: `ghost ${cls}`, title: label }, icon(paths, null, "icon stroke"), h("span", { class: "label" }, label));
  const next = action("Next", NEXT);
  next.addEventListener("click", () => void client.leave("next"));
  const leave = action("Leave", LEAVE);
  leave.addEventListener("click", () => void client.leave("home"));
  const report = action("Report", FLAG, "danger");
  report.addEventListener("click", () => dialog.showModal());

  const avatar = h("span", { class: "avatar", "aria-hidden": "true" });
  const el = h(
    "section",
    { class: "chat", "aria-label": "Chat" },
    h("header", { class: "chat-header" }, avatar, h("div", { class: "who" }, name, sub), h("nav", { class: "chat-actions", "aria-label": "Chat actions" }, next, leave, report)),
    scroller,
    composer,
    dialog,
  );

  const submit = () => {
    const text = input.value.trim();
    if (!text) return;
    client.send(text);
    input.value = "";
    input.focus();
  };
  composer.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", () => client.typing(input.value.length > 0));

  // Bubbles are kept by message id and changed in place, so that the live region
  // announces new messages only, and a reader's scroll position holds.
  const nodes = new Map<string, { li: HTMLElement; key: string }>();
  const render = (messages: ChatMessage[]) => {
    const want: HTMLElement[] = [];
    for (const m of messages) {
      const key = `${m.seq}:${m.status}`;
      let n = nodes.get(m.id);
      if (!n) {
        n = { li: bubble(m), key };
        nodes.set(m.id, n);
      } else if (n.key !== key) {
        n.key = key;
        const fresh = bubble(m);
        n.li.replaceChildren(...Array.from(fresh.childNodes));
        if (m.seq !== null) n.li.dataset.seq = String(m.seq);
      }
      want.push(n.li);
    }
    const have = Array.from(list.children);
    if (have.every((li, i) => want[i] === li)) list.append(...want.slice(have.length));
    else list.replaceChildren(...want);
  };
  const update = (st: State) => {
    const cur = st.session;
    if (!cur) return;
    name.textContent = cur.peer.alias;
    avatar.textContent = initials(cur.peer.alias);
    // the state first: on a phone the place is what gets cut off
    sub.textContent = cur.peerTyping ? "typing…" : `${cur.peerOnline ? "online" : "offline"} · ${placeLabel(cur.peer)}`;
    sub.className = `sub ${cur.peerTyping ? "typing" : cur.peerOnline ? "online" : "offline"}`;
    intro.textContent = `You are chatting with ${cur.peer.alias}, a stranger in ${placeLabel(cur.peer)}. Say hi!`;
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    const count = list.children.length;
    render(cur.messages);
    if (atBottom || list.children.length > count) scroller.scrollTop = scroller.scrollHeight;
  };
  update({ ...s, session });
  queueMicrotask(() => input.focus());
  return { el, update };
}

// One session: both guests, every message in seq order with its sent and
// delivered times, and, when opened from a report, the report with its actions.
import { h, replace } from "../common/dom";
import type { Message, Report, Session } from "./api";
import type { Context } from "./context";
import { banForm } from "./banform";
import { formatPlace, formatTime, utcTitle } from "./format";

export function transcriptView(ctx: Context, sessionId: string, report: Report | null): HTMLElement {
  const body = h("div", { class: "transcript-body" }, h("p", {}, "Loading…"));
  const section = h(
    "section",
    { "aria-labelledby": "transcript-title" },
    h("h2", { id: "transcript-title" }, "Transcript"),
    body,
  );
  void (async () => {
    try {
      const session = await ctx.api.session(sessionId);
      replace(body, reportBanner(ctx, session, report), sessionHeader(ctx, session, report), messageList(ctx, session));
    } catch (e) {
      replace(body, h("p", { class: "empty" }, "This session cannot be shown."));
      ctx.fail(e);
    }
  })();
  return section;
}

const sideOf = (s: Session, guestId: string) => (guestId === s.guests[0] ? "a" : "b");

function reportBanner(ctx: Context, s: Session, report: Report | null) {
  if (!report) return null;
  const status = h("span", { class: `status ${report.status}` }, report.status);
  const close = h("button", { type: "button", disabled: report.status === "closed" }, "Close report");
  close.addEventListener("click", async () => {
    close.disabled = true;
    try {
      await ctx.api.closeReport(report.reportId);
      status.textContent = "closed";
      status.className = "status closed";
      ctx.notify("Report closed.");
    } catch (e) {
      close.disabled = false;
      ctx.fail(e);
    }
  });
  return h(
    "aside",
    { class: "report-banner", "aria-label": "Report" },
    h("p", {}, "Reported by guest ", h("strong", {}, sideOf(s, report.reporterGuestId).toUpperCase()), " at ",
      h("time", { title: utcTitle(report.createdAt) }, formatTime(report.createdAt)), " — ", status),
    h("blockquote", { class: "reason" }, report.reason),
    close,
  );
}

function sessionHeader(ctx: Context, s: Session, report: Report | null) {
  const guestCard = (i: 0 | 1) => {
    const side = i ? "b" : "a";
    const label = `guest ${side.toUpperCase()}`;
    const slot = h("div", { class: "ban-slot" });
    const open = h("button", { type: "button", class: "danger" }, `Ban ${label}…`);
    open.addEventListener("click", () => {
      open.hidden = true;
      replace(slot, banForm(ctx, { guestId: s.guests[i], label }, () => replace(slot, h("p", { class: "banned" }, "Banned."))));
      slot.querySelector("input")?.focus();
    });
    const reported = report !== null && report.reporterGuestId !== s.guests[i];
    return h(
      "div",
      { class: `guest-card side-${side}`, "data-guest": s.guests[i] },
      h("h3", {}, `Guest ${side.toUpperCase()}`, reported ? h("span", { class: "tag" }, " reported") : null),
      h("code", {}, s.guests[i]),
      h("p", {}, formatPlace(s.geo[i])),
      open,
      slot,
    );
  };
  return h(
    "header",
    { class: "session-header" },
    h(
      "dl",
      {},
      h("dt", {}, "Session"),
      h("dd", {}, h("code", {}, s.sessionId)),
      h("dt", {}, "Started"),
      h("dd", { title: utcTitle(s.startedAt) }, formatTime(s.startedAt)),
      h("dt", {}, "Ended"),
      h("dd", { title: utcTitle(s.endedAt) }, s.endedAt ? `${formatTime(s.endedAt)} (${s.endReason})` : "ongoing"),
    ),
    h("div", { class: "guests" }, guestCard(0), guestCard(1)),
  );
}

function messageList(ctx: Context, s: Session) {
  const list = h("ol", { class: "messages", "aria-label": "Messages in order" });
  const more = h("button", { type: "button", hidden: true }, "Load more messages");
  const wrap = h("div", {}, list, more);
  let cursor: string | null = null;
  const item = (m: Message) => {
    const side = sideOf(s, m.senderGuestId);
    return h(
      "li",
      { class: `message side-${side}`, "data-seq": m.seq },
      h("span", { class: "who" }, `${side.toUpperCase()} · #${m.seq}`),
      h("p", { class: "text" }, m.text),
      h(
        "span",
        { class: "times" },
        "sent ",
        h("time", { title: utcTitle(m.sentAt) }, formatTime(m.sentAt)),
        " · delivered ",
        h("time", { title: utcTitle(m.deliveredAt) }, m.deliveredAt ? formatTime(m.deliveredAt) : "not yet"),
      ),
    );
  };
  async function load() {
    try {
      const page = await ctx.api.messages(s.sessionId, cursor);
      for (const m of page.items) list.appendChild(item(m));
      cursor = page.nextCursor;
      more.hidden = cursor === null;
      if (!list.firstChild) list.replaceWith(h("p", { class: "empty" }, "No message in this session."));
    } catch (e) {
      ctx.fail(e);
    }
  }
  more.addEventListener("click", () => void load());
  void load();
  return wrap;
}

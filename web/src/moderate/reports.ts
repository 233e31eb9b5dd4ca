// The reports queue: open ones first; each opens its transcript, closes, or bans the reported guest.
import { h, replace } from "../common/dom";
import type { Report } from "./api";
import type { Context } from "./context";
import { banForm } from "./banform";
import { formatTime, utcTitle } from "./format";

let status: "open" | "closed" = "open";

export function reportsView(ctx: Context, openReport: (r: Report) => void): HTMLElement {
  const list = h("ul", { class: "reports", "aria-live": "polite" });
  const more = h("button", { type: "button", hidden: true }, "Load more");
  let cursor: string | null = null;
  const filter = h(
    "select",
    { name: "status", "aria-label": "Status" },
    h("option", { value: "open", selected: status === "open" }, "Open"),
    h("option", { value: "closed", selected: status === "closed" }, "Closed"),
  );

  function item(r: Report) {
    const slot = h("div", { class: "ban-slot" });
    const state = h("span", { class: `status ${r.status}` }, r.status);
    const open = h("button", { type: "button" }, "Open transcript");
    open.addEventListener("click", () => openReport(r));
    const close = h("button", { type: "button", hidden: r.status === "closed" }, "Close");
    close.addEventListener("click", async () => {
      close.disabled = true;
      try {
        await ctx.api.closeReport(r.reportId);
        state.textContent = "closed";
        state.className = "status closed";
        close.hidden = true;
        ctx.notify("Report closed.");
      } catch (e) {
        close.disabled = false;
        ctx.fail(e);
      }
    });
    const ban = h("button", { type: "button", class: "danger" }, "Ban reported guest…");
    ban.addEventListener("click", async () => {
      try {
        const s = await ctx.api.session(r.sessionId);
        const reported = s.guests.find((g) => g !== r.reporterGuestId) ?? s.guests[0];
        ban.hidden = true;
        replace(slot, banForm(ctx, { guestId: reported, label: "reported guest" }, () => replace(slot, h("p", {}, "Banned."))));
      } catch (e) {
        ctx.fail(e);
      }
    });
    return h(
      "li",
      { class: "report", "data-report": r.reportId },
      h("p", {}, h("time", { title: utcTitle(r.createdAt) }, formatTime(r.createdAt)), " ", state),
      h("blockquote", { class: "reason" }, r.reason),
      h("p", { class: "meta" }, "Reporter ", h("code", {}, r.reporterGuestId)),
      h("div", { class: "actions" }, open, close, ban),
      slot,
    );
  }

  async function load(reset: boolean) {
    try {
      const page = await ctx.api.reports(status, reset ? null : cursor);
      if (reset) list.replaceChildren();
      for (const r of page.items) list.appendChild(item(r));
      if (!list.firstChild) list.appendChild(h("li", { class: "empty" }, `No ${status} report.`));
      cursor = page.nextCursor;
      more.hidden = cursor === null;
    } catch (e) {
      ctx.fail(e);
    }
  }
  filter.addEventListener("change", () => {
    status = filter.value === "closed" ? "closed" : "open";
    void load(true);
  });
  more.addEventListener("click", () => void load(false));
  void load(true);
  return h("section", { "aria-labelledby": "reports-title" }, h("h2", { id: "reports-title" }, "Reports"), filter, list, more);
}

// Bans in force, newest first: lift one, or add one by guest id, IP or CIDR.
import { h } from "../common/dom";
import type { Ban } from "./api";
import type { Context } from "./context";
import { banForm } from "./banform";
import { formatTime, utcTitle } from "./format";

export function bansView(ctx: Context): HTMLElement {
  const rows = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  let cursor: string | null = null;

  function row(b: Ban) {
    const lift = h("button", { type: "button" }, "Lift");
    const tr = h(
      "tr",
      { "data-ban": b.banId },
      h("td", {}, b.guestId ? h("code", {}, b.guestId) : b.ip),
      h("td", {}, b.reason),
      h("td", { title: utcTitle(b.createdAt) }, formatTime(b.createdAt)),
      h("td", { title: utcTitle(b.expiresAt) }, formatTime(b.expiresAt)),
      h("td", {}, lift),
    );
    lift.setAttribute("aria-label", `Lift the ban on ${b.guestId ?? b.ip}`);
    lift.addEventListener("click", async () => {
      lift.disabled = true;
      try {
        await ctx.api.lift(b.banId);
        tr.remove();
        ctx.notify(`Ban on ${b.guestId ?? b.ip} lifted.`);
      } catch (e) {
        lift.disabled = false;
        ctx.fail(e);
      }
    });
    return tr;
  }
  async function load(reset: boolean) {
    try {
      const page = await ctx.api.bans(reset ? null : cursor);
      if (reset) rows.replaceChildren();
      for (const b of page.items) rows.appendChild(row(b));
      cursor = page.nextCursor;
      more.hidden = cursor === null;
    } catch (e) {
      ctx.fail(e);
    }
  }
  more.addEventListener("click", () => void load(false));
  void load(true);
  return h(
    "section",
    { "aria-labelledby": "bans-title" },
    h("h2", { id: "bans-title" }, "Bans"),
    banForm(ctx, null, () => void load(true)),
    h(
      "table",
      { class: "bans" },
      h("thead", {}, h("tr", {}, ["Who", "Reason", "Since", "Until", ""].map((t) => h("th", { scope: "col" }, t)))),
      rows,
    ),
    more,
  );
}

// Search: sessions by guest id and time range, newest first, page by page.
import { h, replace } from "../common/dom";
import type { Session } from "./api";
import type { Context } from "./context";
import { formatPlace, formatTime, parseLocalTime, utcTitle } from "./format";

let last = { guest: "", since: "", until: "" };

export function sessionsView(ctx: Context): HTMLElement {
  const guest = h("input", { name: "guest", value: last.guest, autocomplete: "off", spellcheck: "false" });
  const since = h("input", { name: "since", type: "datetime-local", step: 1, value: last.since });
  const until = h("input", { name: "until", type: "datetime-local", step: 1, value: last.until });
  const results = h("div", { class: "results", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "search", role: "search", "aria-label": "Search sessions" },
    h("label", {}, "Guest id ", guest),
    h("label", {}, "From ", since),
    h("label", {}, "To ", until),
    h("button", { type: "submit" }, "Search"),
  );

  const rows = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  let cursor: string | null = null;

  async function load(reset: boolean) {
    const q = {
      guest: guest.value.trim() || undefined,
      since: parseLocalTime(since.value),
      until: parseLocalTime(until.value),
      cursor: reset ? undefined : cursor,
    };
    try {
      const page = await ctx.api.sessions(q);
      if (reset) rows.replaceChildren();
      for (const s of page.items) rows.appendChild(row(s));
      cursor = page.nextCursor;
      more.hidden = cursor === null;
      if (reset)
        replace(
          results,
          page.items.length === 0
            ? h("p", { class: "empty" }, "No session matches.")
            : h(
                "table",
                { class: "sessions" },
                h(
                  "thead",
                  {},
                  h("tr", {}, ["Started", "Ended", "Guest A", "Guest B", ""].map((t) => h("th", { scope: "col" }, t))),
                ),
                rows,
              ),
          more,
        );
    } catch (e) {
      ctx.fail(e);
    }
  }

  function row(s: Session) {
    const cell = (i: 0 | 1) =>
      h("td", {}, h("code", { class: `guest side-${i ? "b" : "a"}` }, s.guests[i]), h("br"), formatPlace(s.geo[i]));
    return h(
      "tr",
      { "data-session": s.sessionId },
      h("td", { title: utcTitle(s.startedAt) }, formatTime(s.startedAt)),
      h("td", { title: utcTitle(s.endedAt) }, s.endedAt ? `${formatTime(s.endedAt)} (${s.endReason})` : "ongoing"),
      cell(0),
      cell(1),
      h("td", {}, h("a", { href: `#session/${encodeURIComponent(s.sessionId)}` }, "Transcript")),
    );
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    last = { guest: guest.value, since: since.value, until: until.value };
    void load(true);
  });
  more.addEventListener("click", () => void load(false));
  void load(true);
  return h("section", { "aria-labelledby": "sessions-title" }, h("h2", { id: "sessions-title" }, "Sessions"), form, results);
}

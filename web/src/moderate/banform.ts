// The ban form, used from a transcript (a guest), a report and the bans list
// (a guest id, an IP or a CIDR).
import { h } from "../common/dom";
import type { Ban } from "./api";
import type { Context } from "./context";
import { formatTime } from "./format";

export const BAN_DURATIONS: [number, string][] = [
  [3600, "1 hour"],
  [86400, "24 hours"],
  [7 * 86400, "7 days"],
  [30 * 86400, "30 days"],
  [365 * 86400, "1 year"],
];

/** A form that bans `target` (or, when absent, what the moderator types) and then calls `done`. */
export function banForm(ctx: Context, target: { guestId?: string; label?: string } | null, done: (b: Ban) => void) {
  const reason = h("input", { name: "reason", required: true, maxlength: 500, autocomplete: "off" });
  const duration = h(
    "select",
    { name: "ttlSeconds" },
    BAN_DURATIONS.map(([s, label]) => h("option", { value: s, selected: s === 86400 }, label)),
  );
  const who = target
    ? null
    : h("input", { name: "who", required: true, autocomplete: "off", placeholder: "guest id, IP or CIDR" });
  const submit = h("button", { type: "submit", class: "danger" }, target ? `Ban ${target.label ?? "guest"}` : "Ban");
  const form = h(
    "form",
    { class: "ban-form", "aria-label": target ? `Ban ${target.label ?? "guest"}` : "New ban" },
    who ? h("label", {}, "Who ", who) : null,
    h("label", {}, "Reason ", reason),
    h("label", {}, "For ", duration),
    submit,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const w = who?.value.trim() ?? "";
    const body = target?.guestId
      ? { guestId: target.guestId }
      : /^[0-9a-fA-F:.]+(\/\d+)?$/.test(w)
        ? { ip: w }
        : { guestId: w };
    submit.disabled = true;
    try {
      const ban = await ctx.api.ban({ ...body, reason: reason.value.trim(), ttlSeconds: Number(duration.value) });
      ctx.notify(`Banned ${ban.guestId ?? ban.ip} until ${formatTime(ban.expiresAt)}.`);
      done(ban);
    } catch (e) {
      ctx.fail(e);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

// Times as moderators read them: local, to the second, with the date; the
// exact instant in UTC in the title for cross-checking with logs.

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

export function utcTitle(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? "" : new Date(ms).toISOString();
}

export function formatPlace(g: { city: string | null; country: string | null } | undefined): string {
  if (!g || (!g.city && !g.country)) return "unknown place";
  return [g.city, g.country].filter(Boolean).join(", ");
}

export function formatDuration(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  return `${Math.round(seconds / 60)} min`;
}

/** A datetime-local input's value as unix ms, or undefined when empty or invalid. */
export function parseLocalTime(value: string): number | undefined {
  if (!value) return undefined;
  const t = new Date(value).getTime();
  return Number.isFinite(t) ? t : undefined;
}

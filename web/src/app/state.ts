// The visitor app's state and the pure rules that change it. Nothing here
// touches the DOM or the network, so Vitest checks it directly.

export type Scope = "city" | "country" | "any";
/** One grey tick: queued for the peer; two grey: delivered; two blue: read. */
export type Tick = "pending" | "queued" | "delivered" | "read" | "failed";

export interface Geo {
  city: string | null;
  country: string | null;
  source: "device" | "ip" | "unknown";
}
export interface Peer {
  alias: string;
  city: string | null;
  country: string | null;
  distanceKm: number | null;
}
export interface ChatMessage {
  id: string;
  seq: number | null; // null until the server has given it one
  text: string;
  ts: number; // unix ms: the server's when known, else when it was written
  mine: boolean;
  status: Tick | null; // for mine only
  error?: string;
}
export interface ChatSession {
  sessionId: string;
  peer: Peer;
  startedAt: number;
  peerOnline: boolean;
  peerTyping: boolean;
  messages: ChatMessage[];
  readSent: number; // the highest seq we told the peer we read
  peerRead?: number; // the highest seq the peer said it read (it may come before our ack gives a message its seq)
}
export type Phase =
  | { name: "consent" }
  | { name: "home"; note?: string }
  | { name: "searching"; scope: Scope; widenedTo: string; waitedMs: number }
  | { name: "proposal"; proposalId: string; peer: Omit<Peer, "alias">; expiresAt: number }
  | { name: "chat" }
  | { name: "ended"; reason: "left" | "reported" | "expired" | "you-left" | "you-reported" }
  | { name: "banned" };
export type Connection = "connecting" | "online" | "reconnecting";

export interface State {
  phase: Phase;
  connection: Connection;
  guestId: string | null;
  geo: Geo | null;
  session: ChatSession | null;
}

export const initialState = (consented: boolean): State => ({
  phase: consented ? { name: "home" } : { name: "consent" },
  connection: "connecting",
  guestId: null,
  geo: null,
  session: null,
});

export function newSession(sessionId: string, peer: Peer, startedAt: number): ChatSession {
  return { sessionId, peer, startedAt, peerOnline: true, peerTyping: false, messages: [], readSent: 0 };
}

/** Messages in conversation order: by seq, and the ones still without a seq last, as written. */
function place(list: ChatMessage[], m: ChatMessage): void {
  if (m.seq === null) {
    list.push(m);
    return;
  }
  let i = list.length;
  while (i > 0 && (list[i - 1].seq === null || (list[i - 1].seq as number) > (m.seq as number))) i--;
  list.splice(i, 0, m);
}

export function addOutgoing(s: ChatSession, id: string, text: string, now: number): ChatMessage {
  const m: ChatMessage = { id, seq: null, text, ts: now, mine: true, status: "pending" };
  s.messages.push(m);
  return m;
}

export interface MessageAck {
  ok: boolean;
  id?: string;
  seq?: number;
  ts?: number;
  status?: "delivered" | "queued";
  error?: string;
}

/** The server's answer to one of ours. `unavailable` (or no answer) leaves it pending, to be sent again. */
export function applyAck(s: ChatSession, id: string, ack: MessageAck | null): void {
  const i = s.messages.findIndex((m) => m.mine && m.id === id);
  if (i < 0) return;
  const m = s.messages[i];
  if (!ack || (!ack.ok && ack.error === "unavailable")) return;
  if (!ack.ok) {
    m.status = "failed";
    m.error = ack.error;
    return;
  }
  s.messages.splice(i, 1);
  m.seq = ack.seq ?? null;
  m.ts = ack.ts ?? m.ts;
  if (m.status === "pending" || m.status === "failed" || m.status === null) m.status = ack.status ?? "queued";
  else if (ack.status === "delivered" && m.status === "queued") m.status = "delivered";
  if (m.seq !== null && m.seq <= (s.peerRead ?? 0)) m.status = "read";
  place(s.messages, m);
}

export function applyDelivered(s: ChatSession, id: string): void {
  const m = s.messages.find((x) => x.mine && x.id === id);
  if (m && (m.status === "queued" || m.status === "pending")) m.status = "delivered";
}

/** The peer read everything up to `upToSeq`: those of ours turn blue. */
export function applyRead(s: ChatSession, upToSeq: number): void {
  s.peerRead = Math.max(s.peerRead ?? 0, upToSeq);
  for (const m of s.messages) if (m.mine && m.seq !== null && m.seq <= upToSeq) m.status = "read";
}

/** A message from the peer; false when it is a duplicate (a redelivery after a reconnect). */
export function addIncoming(s: ChatSession, m: { id: string; seq: number; text: string; ts: number }): boolean {
  if (s.messages.some((x) => !x.mine && x.id === m.id)) return false;
  place(s.messages, { id: m.id, seq: m.seq, text: m.text, ts: m.ts, mine: false, status: null });
  s.peerTyping = false;
  return true;
}

/** The seq to send in chat:read, or 0 when the peer already knows we read everything. */
export function readMark(s: ChatSession): number {
  let top = 0;
  for (const m of s.messages) if (!m.mine && m.seq !== null && m.seq > top) top = m.seq;
  return top > s.readSent ? top : 0;
}

export function pendingMessages(s: ChatSession): ChatMessage[] {
  return s.messages.filter((m) => m.mine && m.status === "pending");
}

export const SCOPE_STEPS: Record<string, string> = {
  city: "your city",
  nearby: "nearby",
  country: "your country",
  any: "anywhere",
};

export function scopeLabel(scope: string): string {
  return SCOPE_STEPS[scope] ?? scope;
}

/** Whole seconds left before a proposal expires, never below 0. */
export function secondsLeft(expiresAt: number, now: number): number {
  return Math.max(0, Math.ceil((expiresAt - now) / 1000));
}

export function placeLabel(p: { city: string | null; country: string | null; distanceKm?: number | null }): string {
  const where = [p.city, p.country].filter(Boolean).join(", ") || "somewhere";
  if (p.distanceKm === null || p.distanceKm === undefined) return where;
  return `${where} · ${p.distanceKm < 1 ? "less than 1" : Math.round(p.distanceKm)} km away`;
}

// ---- what survives a reload: the current conversation, on this device only ----

const KEEP = 300;

export function serializeSession(s: ChatSession): string {
  return JSON.stringify({ ...s, peerTyping: false, messages: s.messages.slice(-KEEP) });
}

export function restoreSession(text: string | null, sessionId: string): ChatSession | null {
  if (!text) return null;
  try {
    const s = JSON.parse(text) as ChatSession;
    if (s.sessionId !== sessionId || !Array.isArray(s.messages)) return null;
    return s;
  } catch {
    return null;
  }
}

/** A client message id: unique per sender, at most 64 characters. */
export function newMessageId(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

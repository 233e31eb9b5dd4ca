// The connection to chatd: one socket.io-client Manager, namespaces /, /match
// and /chat (protocol.md §3-5), and the actions the views call.
import { Manager, type Socket } from "socket.io-client";
import {
  addIncoming,
  addOutgoing,
  applyAck,
  applyDelivered,
  applyRead,
  newMessageId,
  newSession,
  pendingMessages,
  readMark,
  restoreSession,
  type MessageAck,
  type Scope,
} from "./state";
import { STORAGE, type Store } from "./store";

type Location = { lat: number; lon: number };
const ACK_MS = 10000;

export class Client {
  private manager: Manager | null = null;
  private root!: Socket;
  private match!: Socket;
  private chat!: Socket;
  private location: Location | null = null;
  private typingSent = 0;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;
  private scope: Scope = "country";

  constructor(private readonly store: Store) {}

  /** Connects with consent given; `location` (rounded by the server) only when the visitor allowed it. */
  start(location: Location | null): void {
    this.location = location;
    if (this.manager) return;
    this.manager = new Manager(window.location.origin, { reconnectionDelayMax: 5000, randomizationFactor: 0.3 });
    this.root = this.manager.socket("/", {
      // a function: every reconnect presents the newest token
      auth: (cb) =>
        cb({
          consent: true,
          ...(localStorage.getItem(STORAGE.token) ? { token: localStorage.getItem(STORAGE.token) } : {}),
          ...(this.location ? { location: this.location } : {}),
        }),
    });
    this.match = this.manager.socket("/match");
    this.chat = this.manager.socket("/chat");
    this.wireRoot();
    this.wireMatch();
    this.wireChat();
    this.manager.on("reconnect_attempt", () => this.store.update((s) => (s.connection = "reconnecting")));
  }

  private wireRoot(): void {
    const { store } = this;
    this.root.on("session", (p: { guestId: string; token: string; resumed: boolean; geo: { city: string | null; country: string | null; source: "device" | "ip" | "unknown" } }) => {
      localStorage.setItem(STORAGE.token, p.token);
      if (!p.resumed) localStorage.removeItem(STORAGE.session); // a new guest: nothing of before is its own
      store.update((s) => {
        s.connection = "online";
        s.guestId = p.guestId;
        s.geo = p.geo;
        if (s.phase.name === "consent" || s.phase.name === "banned") s.phase = { name: "home" };
      });
    });
    this.root.on("user-session", (p: { sessionId: string; peer: { alias: string; city: string | null; country: string | null; distanceKm: number | null }; startedAt: number; resumed: boolean }) => {
      store.update((s) => {
        const kept = s.session?.sessionId === p.sessionId ? s.session : restoreSession(localStorage.getItem(STORAGE.session), p.sessionId);
        s.session = kept ?? newSession(p.sessionId, p.peer, p.startedAt);
        s.session.peer = p.peer;
        s.phase = { name: "chat" };
      });
    });
    this.root.on("user-left", (p: { sessionId: string; reason: "left" | "reported" | "expired" }) => {
      if (restoreSession(localStorage.getItem(STORAGE.session), p.sessionId)) localStorage.removeItem(STORAGE.session);
      store.update((s) => {
        if (s.session?.sessionId !== p.sessionId) return;
        if (s.phase.name === "chat") s.phase = { name: "ended", reason: p.reason };
        s.session = null;
      });
    });
    this.root.on("peer-status", (p: { sessionId: string; online: boolean }) => {
      store.update((s) => {
        if (s.session?.sessionId === p.sessionId) {
          s.session.peerOnline = p.online;
          if (!p.online) s.session.peerTyping = false;
        }
      });
    });
    this.root.on("connect_error", (e: Error) => {
      if (e.message === "banned") {
        this.manager?.reconnection(false);
        store.update((s) => {
          s.phase = { name: "banned" };
          s.session = null;
        });
      } else {
        store.update((s) => (s.connection = "reconnecting"));
      }
    });
    this.root.on("disconnect", (reason) => {
      store.update((s) => (s.connection = "reconnecting"));
      // a server-side close of the namespace is not retried by the client on its own
      if (reason === "io server disconnect") this.root.connect();
    });
  }

  private wireMatch(): void {
    const { store } = this;
    this.match.on("match:proposal", (p: { proposalId: string; peer: { city: string | null; country: string | null; distanceKm: number | null }; expiresIn: number }) =>
      store.update((s) => {
        s.phase = { name: "proposal", proposalId: p.proposalId, peer: p.peer, expiresAt: Date.now() + p.expiresIn * 1000 };
      }),
    );
    this.match.on("match:waiting", (p: { scope: string; waitedMs: number }) =>
      store.update((s) => {
        if (s.phase.name === "searching") s.phase = { ...s.phase, widenedTo: p.scope, waitedMs: p.waitedMs };
      }),
    );
    this.match.on("match:expired", () =>
      store.update((s) => {
        if (s.phase.name === "proposal" || s.phase.name === "searching")
          s.phase = { name: "home", note: "The proposal timed out. Try again when you are ready." };
      }),
    );
  }

  private wireChat(): void {
    const { store } = this;
    this.chat.on("connect", () => this.resendPending());
    this.chat.on("chat:message", (m: { sessionId: string; id: string; seq: number; text: string; ts: number }, ack?: () => void) => {
      store.update((s) => {
        if (s.session?.sessionId === m.sessionId) addIncoming(s.session, m);
      });
      ack?.(); // the receipt: it is shown (or kept) on this device now
      this.markRead();
    });
    this.chat.on("chat:delivered", (p: { sessionId: string; id: string }) =>
      store.update((s) => {
        if (s.session?.sessionId === p.sessionId) applyDelivered(s.session, p.id);
      }),
    );
    this.chat.on("chat:read", (p: { sessionId: string; upToSeq: number }) =>
      store.update((s) => {
        if (s.session?.sessionId === p.sessionId) applyRead(s.session, p.upToSeq);
      }),
    );
    this.chat.on("chat:typing", (p: { sessionId: string; typing: boolean }) =>
      store.update((s) => {
        if (s.session?.sessionId === p.sessionId) s.session.peerTyping = p.typing;
      }),
    );
  }

  // ---- actions ----

  async request(scope: Scope = this.scope): Promise<string | null> {
    this.scope = scope;
    this.store.update((s) => (s.phase = { name: "searching", scope, widenedTo: scope, waitedMs: 0 }));
    const r = await this.ask(this.match, "match:request", { scope });
    if (r.ok || r.error === "already_queued") return null;
    if (r.error === "already_in_session") return null; // its user-session is on the way
    const note = errorText(r.error);
    this.store.update((s) => (s.phase = { name: "home", note }));
    return note;
  }

  async cancel(): Promise<void> {
    await this.ask(this.match, "match:cancel", {});
    this.store.update((s) => (s.phase = { name: "home" }));
  }

  async accept(proposalId: string): Promise<void> {
    const r = await this.ask(this.match, "match:accept", { proposalId });
    if (!r.ok) this.store.update((s) => (s.phase = { name: "home", note: errorText(r.error) }));
  }

  async decline(proposalId: string): Promise<void> {
    await this.ask(this.match, "match:decline", { proposalId });
    const scope = this.scope;
    this.store.update((s) => (s.phase = { name: "searching", scope, widenedTo: scope, waitedMs: 0 }));
  }

  send(text: string): void {
    const session = this.store.state.session;
    if (!session) return;
    const id = newMessageId();
    this.store.update(() => addOutgoing(session, id, text, Date.now()));
    this.typing(false);
    void this.deliver(session.sessionId, id, text);
  }

  /** Sends again, with the same id (idempotent on the server), every message still waiting for its ack. */
  private resendPending(): void {
    const session = this.store.state.session;
    if (!session) return;
    for (const m of pendingMessages(session)) void this.deliver(session.sessionId, m.id, m.text);
    this.markRead();
  }

  private async deliver(sessionId: string, id: string, text: string): Promise<void> {
    if (!this.chat.connected) return; // resent on the next connect
    let ack: MessageAck | null = null;
    try {
      ack = (await this.chat.timeout(ACK_MS).emitWithAck("chat:message", { sessionId, id, text })) as MessageAck;
    } catch {
      ack = null; // no answer in time: still pending, resent on reconnect
    }
    this.store.update((s) => {
      if (s.session?.sessionId === sessionId) applyAck(s.session, id, ack);
    });
  }

  /** Tells the peer what we have read, when the page is in front of the visitor. */
  markRead(): void {
    const session = this.store.state.session;
    if (!session || document.visibilityState !== "visible" || !this.chat?.connected) return;
    const upToSeq = readMark(session);
    if (upToSeq > 0) {
      session.readSent = upToSeq;
      void this.ask(this.chat, "chat:read", { sessionId: session.sessionId, upToSeq });
    }
  }

  /** Typing on: sent at most every 3 s while keys are pressed; off after 4 s without one, or on send. */
  typing(on: boolean): void {
    const session = this.store.state.session;
    if (!session || !this.chat?.connected) return;
    clearTimeout(this.typingTimer);
    const now = Date.now();
    if (on) {
      if (now - this.typingSent > 3000) {
        this.typingSent = now;
        this.chat.emit("chat:typing", { sessionId: session.sessionId, typing: true });
      }
      this.typingTimer = setTimeout(() => this.typing(false), 4000);
    } else if (this.typingSent) {
      this.typingSent = 0;
      this.chat.emit("chat:typing", { sessionId: session.sessionId, typing: false });
    }
  }

  home(): void {
    this.store.update((s) => (s.phase = { name: "home" }));
  }

  async leave(then: "home" | "next"): Promise<void> {
    const session = this.store.state.session;
    if (session) await this.ask(this.chat, "chat:leave", { sessionId: session.sessionId });
    this.store.update((s) => {
      s.session = null;
      s.phase = then === "home" ? { name: "ended", reason: "you-left" } : { name: "home" };
    });
    if (then === "next") await this.request();
  }

  async report(reason: string): Promise<string | null> {
    const session = this.store.state.session;
    if (!session) return null;
    const r = await this.ask(this.chat, "chat:report", { sessionId: session.sessionId, reason });
    if (!r.ok) return errorText(r.error);
    this.store.update((s) => {
      s.session = null;
      s.phase = { name: "ended", reason: "you-reported" };
    });
    return null;
  }

  private async ask(socket: Socket, event: string, payload: unknown): Promise<{ ok: boolean; error?: string }> {
    try {
      return (await socket.timeout(ACK_MS).emitWithAck(event, payload)) as { ok: boolean; error?: string };
    } catch {
      return { ok: false, error: "timeout" };
    }
  }
}

export function errorText(code: string | undefined): string {
  switch (code) {
    case "rate_limited":
      return "Slow down a little, then try again.";
    case "unavailable":
    case "timeout":
      return "The service is busy right now. Try again in a moment.";
    case "expired":
    case "unknown_proposal":
      return "That proposal is no longer open.";
    case "too_long":
      return "That message is too long.";
    case "not_in_session":
      return "This chat is over.";
    default:
      return "Something went wrong. Try again.";
  }
}

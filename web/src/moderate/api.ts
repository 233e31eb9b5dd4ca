// The moderator HTTP API (protocol.md §6), typed. The key never leaves this
// module except in the Authorization header.

export interface Geo {
  city: string | null;
  country: string | null;
}
export interface Session {
  sessionId: string;
  guests: [string, string];
  geo: [Geo, Geo];
  startedAt: number;
  endedAt: number | null;
  endReason: "left" | "reported" | "expired" | null;
}
export interface Message {
  sessionId: string;
  seq: number;
  id: string;
  senderGuestId: string;
  text: string;
  sentAt: number;
  deliveredAt: number | null;
}
export interface Report {
  reportId: string;
  sessionId: string;
  reporterGuestId: string;
  reason: string;
  createdAt: number;
  status: "open" | "closed";
}
export interface Ban {
  banId: string;
  guestId: string | null;
  ip: string | null;
  reason: string;
  createdAt: number;
  expiresAt: number;
}
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Params = Record<string, string | number | undefined | null>;

export class ModeratorApi {
  constructor(
    private readonly key: string,
    private readonly base = "/api/v1/",
  ) {}

  private async call<T>(method: string, path: string, params: Params = {}, body?: unknown): Promise<T> {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") query.set(k, String(v));
    const url = this.base + path + (query.size ? `?${query}` : "");
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { Authorization: `Bearer ${this.key}`, ...(body ? { "Content-Type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "network", "The server cannot be reached.");
    }
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      throw new ApiError(res.status, "bad_response", `The server answered ${res.status} without JSON.`);
    }
    if (!res.ok) {
      const e = (json ?? {}) as { error?: string; message?: string };
      throw new ApiError(res.status, e.error ?? "error", e.message ?? `HTTP ${res.status}`);
    }
    return json as T;
  }

  sessions(q: { guest?: string; since?: number; until?: number; cursor?: string | null; limit?: number }) {
    return this.call<Page<Session>>("GET", "sessions", q);
  }
  session(id: string) {
    return this.call<Session>("GET", `sessions/${encodeURIComponent(id)}`);
  }
  messages(id: string, cursor?: string | null) {
    return this.call<Page<Message>>("GET", `sessions/${encodeURIComponent(id)}/messages`, { cursor, limit: 200 });
  }
  reports(status: "open" | "closed", cursor?: string | null) {
    return this.call<Page<Report>>("GET", "reports", { status, cursor });
  }
  closeReport(id: string) {
    return this.call<Report>("POST", `reports/${encodeURIComponent(id)}/close`);
  }
  bans(cursor?: string | null) {
    return this.call<Page<Ban>>("GET", "bans", { cursor });
  }
  ban(b: { guestId?: string; ip?: string; reason: string; ttlSeconds: number }) {
    return this.call<Ban>("POST", "bans", {}, b);
  }
  lift(banId: string) {
    return this.call<unknown>("DELETE", `bans/${encodeURIComponent(banId)}`);
  }
}

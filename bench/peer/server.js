// The benchmark peer (issue 7): the part of the nearchat protocol that
// bench/chatbench drives (protocol.md §2-5: connect with consent, match,
// chat with receipts), written the way a Node developer would write it: the
// official Socket.IO server, node-redis, and @socket.io/redis-adapter so that
// several processes (node:cluster) share one queue and reach each other's
// sockets. See README.md for what it does and does not do compared to chatd.
//
//   PORT (3100)  REDIS_URL (redis://127.0.0.1:6379)  WORKERS (CPU count)
//   HOST (all interfaces)  PEER_SECRET (random per start: the token HMAC key)
//   PEER_PROPOSAL_TTL_S (15)
import cluster from "node:cluster";
import { createHmac, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import os from "node:os";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient, defineScript } from "redis";
import { Server } from "socket.io";

const PORT = Number(process.env.PORT || 3100);
const HOST = process.env.HOST || undefined;
const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const WORKERS = Math.max(1, Number(process.env.WORKERS) || (os.availableParallelism?.() ?? os.cpus().length));

const TOKEN_TTL_S = 24 * 3600;
const PROPOSAL_TTL_S = Number(process.env.PEER_PROPOSAL_TTL_S) || 15; // protocol default; shorter in the smoke test
const RECEIPT_TIMEOUT_MS = 3000; // chatd queues a message its peer has not acked within 3 s
const SESSION_TTL_S = 24 * 3600; // sessions never end here; Redis forgets them after a day

// Redis keys, all under one prefix.
const K = {
  queue: "peer:queue", // waiting guest ids, oldest first
  proposal: (id) => `peer:proposal:${id}`, // hash requester, waiter, expiresAt (ms)
  session: (id) => `peer:session:${id}`, // hash a, b, seq
  inSession: "peer:in-session", // hash guest id -> session id
};

// The scripts keep each step atomic across processes: one round trip each.
const scripts = {
  // KEYS queue, in-session, proposal; ARGV requester, expiresAt, ttl.
  // Returns the waiting guest now proposed to, "" when the requester was
  // queued, or an error code.
  matchRequest: defineScript({
    NUMBER_OF_KEYS: 3,
    SCRIPT: `
      if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return {err = 'already_in_session'} end
      if redis.call('LPOS', KEYS[1], ARGV[1]) then return {err = 'already_queued'} end
      local w = redis.call('LPOP', KEYS[1])
      if not w then
        redis.call('RPUSH', KEYS[1], ARGV[1])
        return ''
      end
      redis.call('HSET', KEYS[3], 'requester', ARGV[1], 'waiter', w, 'expiresAt', ARGV[2])
      redis.call('EXPIRE', KEYS[3], ARGV[3])
      return w`,
    transformArguments: (guestId, proposalId, expiresAt) =>
      [K.queue, K.inSession, K.proposal(proposalId), guestId, String(expiresAt), String(Math.ceil(PROPOSAL_TTL_S * 2))],
  }),
  // KEYS proposal, session, in-session; ARGV acceptor, now (ms), session ttl, session id.
  // Returns the requester, now in session with the acceptor, or an error code.
  matchAccept: defineScript({
    NUMBER_OF_KEYS: 3,
    SCRIPT: `
      local p = redis.call('HMGET', KEYS[1], 'requester', 'waiter', 'expiresAt')
      if not p[1] or p[2] ~= ARGV[1] then return {err = 'unknown_proposal'} end
      if tonumber(p[3]) < tonumber(ARGV[2]) then return {err = 'expired'} end
      redis.call('DEL', KEYS[1])
      redis.call('HSET', KEYS[2], 'a', p[1], 'b', p[2], 'seq', 0)
      redis.call('EXPIRE', KEYS[2], ARGV[3])
      redis.call('HSET', KEYS[3], p[1], ARGV[4], p[2], ARGV[4])
      return p[1]`,
    transformArguments: (guestId, proposalId, sessionId) =>
      [K.proposal(proposalId), K.session(sessionId), K.inSession, guestId, String(Date.now()), String(SESSION_TTL_S), sessionId],
  }),
  // KEYS proposal; ARGV now. Drops a proposal that nobody accepted in time;
  // returns {requester, waiter}, or nil when it was accepted (or is gone).
  matchExpire: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: `
      local p = redis.call('HMGET', KEYS[1], 'requester', 'waiter')
      if not p[1] then return nil end
      redis.call('DEL', KEYS[1])
      return p`,
    transformArguments: (proposalId) => [K.proposal(proposalId)],
  }),
  // KEYS session; ARGV sender. The next seq of the session and the peer's
  // guest id, or nil when the sender is not in that session.
  chatNext: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: `
      local m = redis.call('HMGET', KEYS[1], 'a', 'b')
      local peer
      if m[1] == ARGV[1] then peer = m[2] elseif m[2] == ARGV[1] then peer = m[1] else return nil end
      return {redis.call('HINCRBY', KEYS[1], 'seq', 1), peer}`,
    transformArguments: (sessionId, guestId) => [K.session(sessionId), guestId],
  }),
};

const newId = () => randomBytes(16).toString("base64url"); // 128 bits, 22 characters

const adjectives = ["Quiet", "Brave", "Sunny", "Gentle", "Clever", "Swift", "Calm", "Lucky",
  "Bright", "Merry", "Bold", "Curious", "Kind", "Witty", "Mellow", "Nimble"];
const animals = ["Otter", "Fox", "Heron", "Panda", "Lynx", "Robin", "Badger", "Koala",
  "Falcon", "Dolphin", "Hare", "Owl", "Seal", "Wren", "Marten", "Ibex"];
const pick = (list) => list[Math.floor(Math.random() * list.length)];
const alias = () => `${pick(adjectives)} ${pick(animals)}`;

// The token of protocol.md §2, signed like chatd's. It is only issued: every
// CONNECT makes a new guest here (no resume).
function token(secret, guestId, expiresAt) {
  const body = `v1.${guestId}.${expiresAt}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

const isId = (s) => typeof s === "string" && s.length >= 1 && s.length <= 64;
const isObject = (x) => typeof x === "object" && x !== null && !Array.isArray(x);

async function connectRedis(options = {}) {
  const client = createClient({ url: REDIS_URL, ...options });
  client.on("error", (err) => console.error(`peer[${process.pid}]: redis: ${err.message}`));
  await client.connect();
  return client;
}

// Drops what a previous run left in the queue (guests of dead connections).
async function resetQueue() {
  const redis = await connectRedis();
  await redis.del(K.queue);
  await redis.quit();
}

async function worker(secret) {
  const redis = await connectRedis({ scripts }); // commands, and the adapter's publisher
  const sub = redis.duplicate();
  sub.on("error", (err) => console.error(`peer[${process.pid}]: redis subscriber: ${err.message}`));
  await sub.connect();

  const httpServer = createServer((req, res) => {
    res.writeHead(req.url === "/healthz" ? 200 : 404, { "content-type": "text/plain" });
    res.end(req.url === "/healthz" ? "ok\n" : "not found\n");
  });
  const io = new Server(httpServer, {
    // several processes without sticky sessions: WebSocket only
    transports: WORKERS > 1 ? ["websocket"] : ["polling", "websocket"],
    serveClient: false,
    adapter: createAdapter(redis, sub, { publishOnSpecificResponseChannel: true }),
  });
  const root = io.of("/");
  const match = io.of("/match");
  const chat = io.of("/chat");

  // The identity belongs to the Engine.IO connection (protocol.md §2).
  const guestOf = new WeakMap();

  root.use((socket, next) => {
    const auth = socket.handshake.auth;
    if (!isObject(auth) || auth.consent !== true) return next(new Error("consent_required"));
    guestOf.set(socket.conn, newId());
    next();
  });
  root.on("connection", (socket) => {
    const guestId = guestOf.get(socket.conn);
    socket.data.guestId = guestId;
    socket.join(guestId);
    const expiresAt = Math.floor(Date.now() / 1000) + TOKEN_TTL_S;
    socket.emit("session", {
      guestId, token: token(secret, guestId, expiresAt), expiresAt, resumed: false,
      geo: { city: null, country: null, source: "unknown" },
    });
  });

  // /match and /chat: only on a connection whose / is accepted.
  const authenticated = (socket, next) => {
    const guestId = guestOf.get(socket.conn);
    if (!guestId) return next(new Error("not_authenticated"));
    socket.data.guestId = guestId;
    socket.join(guestId);
    next();
  };
  match.use(authenticated);
  chat.use(authenticated);

  // A proposal nobody accepted in time: the waiter hears match:expired and
  // leaves the queue, the requester goes back to it.
  async function expire(proposalId) {
    try {
      const p = await redis.matchExpire(proposalId);
      if (!p) return;
      const [requester, waiter] = p;
      match.to(waiter).emit("match:expired", {});
      await request(requester);
    } catch (err) {
      if (err.message === "already_in_session" || err.message === "already_queued") return;
      console.error(`peer[${process.pid}]: expiring ${proposalId}: ${err.message}`);
    }
  }

  // Queues `guestId`, or proposes it to the guest that waited longest.
  async function request(guestId) {
    const proposalId = newId();
    const waiter = await redis.matchRequest(guestId, proposalId, Date.now() + PROPOSAL_TTL_S * 1000);
    if (waiter === "") return;
    match.to(waiter).emit("match:proposal", {
      proposalId, peer: { city: null, country: null, distanceKm: null }, expiresIn: PROPOSAL_TTL_S,
    });
    setTimeout(expire, PROPOSAL_TTL_S * 1000, proposalId).unref();
  }

  match.on("connection", (socket) => {
    const { guestId } = socket.data;
    socket.on("match:request", async (payload, ack) => {
      if (typeof ack !== "function") return;
      if (!isObject(payload)) return ack({ ok: false, error: "invalid" });
      try {
        await request(guestId);
        socket.data.requested = true;
        ack({ ok: true, queued: true });
      } catch (err) {
        ack({ ok: false, error: err.message === "already_in_session" || err.message === "already_queued" ? err.message : "unavailable" });
      }
    });
    socket.on("match:cancel", async (payload, ack) => {
      if (typeof ack !== "function") return;
      try {
        await redis.lRem(K.queue, 0, guestId);
        ack({ ok: true });
      } catch {
        ack({ ok: false, error: "unavailable" });
      }
    });
    socket.on("match:accept", async (payload, ack) => {
      if (typeof ack !== "function") return;
      if (!isObject(payload) || !isId(payload.proposalId)) return ack({ ok: false, error: "invalid" });
      const sessionId = newId();
      let requester;
      try {
        requester = await redis.matchAccept(guestId, payload.proposalId, sessionId);
      } catch (err) {
        return ack({ ok: false, error: err.message === "expired" ? "expired" : "unknown_proposal" });
      }
      ack({ ok: true });
      const startedAt = Date.now();
      for (const to of [guestId, requester]) {
        root.to(to).emit("user-session", {
          sessionId, peer: { alias: alias(), city: null, country: null, distanceKm: null }, startedAt, resumed: false,
        });
      }
    });
    // a guest that goes away leaves the queue (O(queue length), which stays tiny)
    socket.on("disconnect", () => {
      if (socket.data.requested) redis.lRem(K.queue, 0, guestId).catch(() => {});
    });
  });

  // The peer of `guestId` in `sessionId`, or null.
  async function peerOf(sessionId, guestId) {
    const [a, b] = await redis.hmGet(K.session(sessionId), ["a", "b"]);
    return a === guestId ? b : b === guestId ? a : null;
  }

  chat.on("connection", (socket) => {
    const { guestId } = socket.data;
    socket.on("chat:message", async (msg, ack) => {
      if (typeof ack !== "function") return;
      if (!isObject(msg) || !isId(msg.sessionId) || !isId(msg.id) || typeof msg.text !== "string" || msg.text === "")
        return ack({ ok: false, error: "invalid" });
      if (Buffer.byteLength(msg.text) > 4096) return ack({ ok: false, error: "too_long" });
      const { sessionId, id, text } = msg;
      let next;
      try {
        next = await redis.chatNext(sessionId, guestId);
      } catch {
        return ack({ ok: false, error: "unavailable" });
      }
      if (!next) return ack({ ok: false, error: "not_in_session" });
      const [seq, peer] = next;
      const ts = Date.now();
      // the peer's client acks: that is the receipt, wherever its socket lives
      let receipts;
      try {
        receipts = await chat.to(peer).timeout(RECEIPT_TIMEOUT_MS).emitWithAck("chat:message", { sessionId, id, seq, text, ts });
      } catch {
        receipts = []; // no receipt in time; the peer has no offline queue to fall back on
      }
      if (receipts.length === 0) return ack({ ok: false, error: "unavailable" });
      ack({ ok: true, id, seq, ts, status: "delivered" });
      socket.emit("chat:delivered", { sessionId, id, seq });
    });
    socket.on("chat:typing", async (msg) => {
      if (!isObject(msg) || !isId(msg.sessionId) || typeof msg.typing !== "boolean") return;
      const peer = await peerOf(msg.sessionId, guestId).catch(() => null);
      if (peer) chat.to(peer).emit("chat:typing", { sessionId: msg.sessionId, typing: msg.typing });
    });
    socket.on("chat:read", async (msg, ack) => {
      if (typeof ack !== "function") ack = () => {};
      if (!isObject(msg) || !isId(msg.sessionId) || !Number.isInteger(msg.upToSeq) || msg.upToSeq < 0)
        return ack({ ok: false, error: "invalid" });
      let peer;
      try {
        peer = await peerOf(msg.sessionId, guestId);
      } catch {
        return ack({ ok: false, error: "unavailable" });
      }
      if (!peer) return ack({ ok: false, error: "not_in_session" });
      chat.to(peer).emit("chat:read", { sessionId: msg.sessionId, upToSeq: msg.upToSeq });
      ack({ ok: true });
    });
  });

  // Every adapter has subscribed once this one answers: the subscriber
  // connection handles its commands in order. Only then take connections.
  await sub.subscribe("peer:ready", () => {});
  await sub.unsubscribe("peer:ready");
  await new Promise((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(PORT, HOST, resolve);
  });

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), 2000).unref();
    io.close(() => Promise.allSettled([sub.disconnect(), redis.disconnect()]).then(() => process.exit(0)));
  };
  process.on("SIGTERM", stop);
  // under node:cluster a Ctrl-C reaches every process: the primary stops the workers
  process.on("SIGINT", cluster.isWorker ? () => {} : stop);
  return httpServer;
}

function listening(pids) {
  console.log(`peer: listening on ${HOST ?? "*"}:${PORT}, redis ${REDIS_URL}, ` +
    `${pids.length} worker${pids.length > 1 ? "s" : ""} (pids ${pids.join(",")})`);
}

async function primary() {
  const secret = process.env.PEER_SECRET || randomBytes(32).toString("hex");
  await resetQueue();
  if (WORKERS === 1) {
    await worker(secret);
    listening([process.pid]);
    return;
  }
  let ready = 0;
  let stopping = false;
  const workers = [];
  for (let i = 0; i < WORKERS; i++) workers.push(cluster.fork({ PEER_SECRET: secret }));
  cluster.on("message", (w, m) => {
    if (m === "ready" && ++ready === WORKERS) listening(workers.map((x) => x.process.pid));
  });
  const stop = (code) => {
    if (stopping) return;
    stopping = true;
    const alive = workers.filter((w) => w.process.exitCode === null && w.process.signalCode === null);
    if (alive.length === 0) process.exit(code);
    let left = alive.length;
    cluster.on("exit", () => { if (--left === 0) process.exit(code); });
    for (const w of alive) w.process.kill("SIGTERM");
    setTimeout(() => { for (const w of alive) w.process.kill("SIGKILL"); process.exit(code); }, 5000).unref();
  };
  // a benchmark must not go on with fewer workers than it says
  cluster.on("exit", (w, code, signal) => {
    if (stopping) return;
    console.error(`peer: worker ${w.process.pid} exited (${signal ?? code}); stopping`);
    stop(1);
  });
  process.on("SIGTERM", () => stop(0));
  process.on("SIGINT", () => stop(0));
}

try {
  if (cluster.isPrimary) {
    await primary();
  } else {
    await worker(process.env.PEER_SECRET);
    process.send("ready");
  }
} catch (err) {
  console.error(`peer[${process.pid}]: ${err.stack ?? err}`);
  process.exit(1);
}

// Smoke test of the benchmark peer: a throw-away redis-server, the peer with
// two worker processes, and guests of the official socket.io-client (the e2e
// tests' guests.js, which also checks every server event and ack against
// schemas/). Run: node --test bench/peer/smoke.test.js
import test from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, stop, track, until } from "../../tests/e2e/harness.js";
import { startRedis } from "../../tests/e2e/redis.js";
import { connectGuest, next } from "../../tests/e2e/guests.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const { Manager } = createRequire(path.join(here, "../../tests/e2e/package.json"))("socket.io-client");

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// Starts redis-server and the peer (two workers); everything is stopped after the test.
async function startPeer(t, env = {}) {
  const redis = await startRedis(t);
  const port = await freePort();
  const proc = track(spawn(process.execPath, [path.join(here, "server.js")], {
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", REDIS_URL: redis.url, WORKERS: "2", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  }));
  let pids = [];
  t.after(async () => {
    await stop(proc);
    // the workers follow the primary; a leftover is killed and fails the test
    const left = await until(() => !pids.some(alive), 5000).then(() => [], () => pids.filter(alive));
    for (const pid of left) process.kill(pid, "SIGKILL");
    assert.deepEqual(left, [], "workers left running");
  });
  await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`the peer did not start: ${proc.stderrText}`)), 15000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /listening on .* \(pids ([\d,]+)\)/.exec(out);
      if (m) {
        pids = m[1].split(",").map(Number);
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the peer exited with ${code}: ${proc.stderrText}`));
    });
  });
  assert.equal(pids.length, 2);
  return { url: `http://127.0.0.1:${port}`, port, pids, proc };
}

// Established TCP connections to `port`, as socket inodes (IPv4: the peer listens on 127.0.0.1).
function connectionsTo(port) {
  const inodes = new Set();
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && parseInt(f[1].split(":")[1], 16) === port && f[3] === "01") inodes.add(f[9]);
  }
  return inodes;
}

// How many connections to the peer each worker holds.
function perWorker(peer) {
  const conns = connectionsTo(peer.port);
  return peer.pids.map((pid) => {
    let n = 0;
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let link = "";
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {} // closed in between
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m && conns.has(m[1])) n++;
    }
    return n;
  });
}

// Connects a guest and tells which worker (index into peer.pids) got its connection.
async function guestOnWorker(t, peer) {
  const before = perWorker(peer);
  const g = await connectGuest(t, peer.url);
  const after = perWorker(peer);
  g.worker = after.findIndex((n, i) => n > before[i]);
  assert.ok(g.worker >= 0, `no worker took the connection: ${before} -> ${after}`);
  return g;
}

function assertSession(s) {
  assert.match(s.guestId, /^[A-Za-z0-9_-]{22}$/);
  assert.ok(s.token.startsWith(`v1.${s.guestId}.${s.expiresAt}.`));
  assert.match(s.token, /\.[A-Za-z0-9_-]{43}$/);
  assert.ok(Math.abs(s.expiresAt - Date.now() / 1000 - 86400) < 60);
  assert.equal(s.resumed, false);
  assert.deepEqual(s.geo, { city: null, country: null, source: "unknown" });
}

// a asks first and waits; b's request proposes b to a; a accepts. Returns the session id.
async function pair(a, b) {
  assert.deepEqual(await a.ask("match:request", { scope: "any" }), { ok: true, queued: true });
  const proposal = next(a.match, "match:proposal");
  assert.deepEqual(await b.ask("match:request", { scope: "any" }), { ok: true, queued: true });
  const p = await proposal;
  assert.deepEqual({ ...p, proposalId: "" }, { proposalId: "", peer: { city: null, country: null, distanceKm: null }, expiresIn: 15 });
  const sessions = [next(a.root, "user-session"), next(b.root, "user-session")];
  assert.deepEqual(await a.ask("match:accept", { proposalId: p.proposalId }), { ok: true });
  const [sa, sb] = await Promise.all(sessions);
  assert.equal(sa.sessionId, sb.sessionId);
  for (const s of [sa, sb]) {
    assert.deepEqual({ ...s, peer: { ...s.peer, alias: "" }, startedAt: 0 },
      { sessionId: sa.sessionId, peer: { alias: "", city: null, country: null, distanceKm: null }, startedAt: 0, resumed: false });
    assert.match(s.peer.alias, /^\w+ \w+$/);
    assert.ok(Math.abs(s.startedAt - Date.now()) < 5000);
  }
  assert.deepEqual(await a.ask("match:accept", { proposalId: p.proposalId }), { ok: false, error: "unknown_proposal" });
  return sa.sessionId;
}

test("a guest without consent is refused, and /match or /chat before / is not authenticated", async (t) => {
  const peer = await startPeer(t);
  for (const consent of [false, undefined, "yes"]) {
    await assert.rejects(connectGuest(t, peer.url, { consent }), { message: "consent_required" });
  }
  const manager = new Manager(peer.url, { transports: ["websocket"], forceNew: true, reconnection: false });
  t.after(() => manager.engine?.close());
  for (const nsp of ["/match", "/chat"]) {
    const err = await next(manager.socket(nsp), "connect_error");
    assert.equal(err.message, "not_authenticated");
  }
});

test("two guests on different workers: matched, and messages both ways with receipts", async (t) => {
  const peer = await startPeer(t);
  const a = await guestOnWorker(t, peer);
  let b;
  for (let tries = 0; tries < 6 && (!b || b.worker === a.worker); tries++) b = await guestOnWorker(t, peer);
  assert.notEqual(b.worker, a.worker, "the second worker never got a connection");
  assertSession(a.session);
  assertSession(b.session);
  assert.notEqual(a.session.guestId, b.session.guestId);

  const sessionId = await pair(a, b);
  const delivered = { a: [], b: [] };
  a.chat.on("chat:delivered", (d) => delivered.a.push(d));
  b.chat.on("chat:delivered", (d) => delivered.b.push(d));

  // one at a time, both ways: seq is per session, from 1
  const script = [[a, "a-0", "hello"], [a, "a-1", "ça va ? 👋"], [b, "b-0", "hi!"], [a, "a-2", "x".repeat(4096)], [b, "b-1", "bye"]];
  for (const [i, [g, id, text]] of script.entries()) {
    const ack = await g.say({ sessionId, id, text });
    assert.deepEqual({ ...ack, ts: 0 }, { ok: true, id, seq: i + 1, ts: 0, status: "delivered" });
    assert.ok(Math.abs(ack.ts - Date.now()) < 5000);
    const got = (g === a ? b : a).inbox.at(-1);
    assert.deepEqual(got, { sessionId, id, seq: i + 1, text, ts: ack.ts }); // received (and acked) before the sender's ack
  }
  await until(() => delivered.a.length === 3 && delivered.b.length === 2);
  assert.deepEqual(delivered.a, [[1, "a-0"], [2, "a-1"], [4, "a-2"]].map(([seq, id]) => ({ sessionId, id, seq })));
  assert.deepEqual(delivered.b, [[3, "b-0"], [5, "b-1"]].map(([seq, id]) => ({ sessionId, id, seq })));

  // many at once from both sides: every message acked delivered, seqs unique, each side in order
  const burst = await Promise.all([a, b].flatMap((g, k) =>
    Array.from({ length: 25 }, (_, i) => g.say({ sessionId, id: `burst-${k}-${i}`, text: `m${i}` }))));
  assert.ok(burst.every((x) => x.ok && x.status === "delivered"));
  assert.deepEqual(burst.map((x) => x.seq).sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i + 6));
  for (const g of [a, b]) {
    const seqs = g.inbox.map((m) => m.seq);
    assert.equal(seqs.length, script.filter(([s]) => s !== g).length + 25);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
  }

  // read marks reach the peer
  const readSeen = next(a.chat, "chat:read");
  assert.deepEqual(await b.tell("chat:read", { sessionId, upToSeq: 5 }), { ok: true });
  assert.deepEqual(await readSeen, { sessionId, upToSeq: 5 });

  // bad messages: the protocol's answers, and nothing sent
  const before = b.inbox.length;
  const bad = [
    [{ sessionId: "no-such-session", id: "x", text: "x" }, "not_in_session"],
    [{ sessionId, id: "x" }, "invalid"],
    [{ sessionId, id: "x", text: "" }, "invalid"],
    [{ sessionId, id: "i".repeat(65), text: "x" }, "invalid"],
    [{ sessionId, id: "x", text: "é".repeat(2049) }, "too_long"],
    ["not an object", "invalid"],
  ];
  for (const [payload, error] of bad) assert.deepEqual(await a.say(payload), { ok: false, error });
  const c = await connectGuest(t, peer.url);
  assert.deepEqual(await c.say({ sessionId, id: "intruder", text: "hi" }), { ok: false, error: "not_in_session" });
  assert.equal(b.inbox.length, before);

  // a guest in a session cannot queue again
  assert.deepEqual(await a.ask("match:request", {}), { ok: false, error: "already_in_session" });
});

test("a proposal nobody accepts expires: match:expired to the waiter, the requester goes to the next guest", async (t) => {
  const peer = await startPeer(t, { PEER_PROPOSAL_TTL_S: "1" });
  const [a, b, c] = [await connectGuest(t, peer.url), await connectGuest(t, peer.url), await connectGuest(t, peer.url)];
  assert.deepEqual(await a.ask("match:request", {}), { ok: true, queued: true });
  const proposed = next(a.match, "match:proposal");
  const expired = next(a.match, "match:expired");
  assert.deepEqual(await b.ask("match:request", {}), { ok: true, queued: true });
  const p = await proposed;
  assert.deepEqual(await expired, {});
  assert.deepEqual(await a.ask("match:accept", { proposalId: p.proposalId }), { ok: false, error: "unknown_proposal" });
  // b waits again: c's request is proposed to b
  const toB = next(b.match, "match:proposal");
  assert.deepEqual(await c.ask("match:request", {}), { ok: true, queued: true });
  const sessions = [next(b.root, "user-session"), next(c.root, "user-session")];
  assert.deepEqual(await b.ask("match:accept", { proposalId: (await toB).proposalId }), { ok: true });
  const [sb, sc] = await Promise.all(sessions);
  assert.equal(sb.sessionId, sc.sessionId);
  assert.equal((await c.say({ sessionId: sc.sessionId, id: "1", text: "hey" })).status, "delivered");
  // a, taken out of the queue, may ask again
  assert.deepEqual(await a.ask("match:request", {}), { ok: true, queued: true });
  assert.deepEqual(await a.ask("match:request", {}), { ok: false, error: "already_queued" });
});

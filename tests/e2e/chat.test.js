// Live chat end to end (protocol.md §3 user-session/user-left/peer-status, §5):
// guests on two chatd nodes sharing one redis-server, the official client.
import test from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startChatd, histctl, until } from "./harness.js";
import { startRedis, redisSubscriber } from "./redis.js";
import { connectGuest, matchedPair, next } from "./guests.js";

// Both nodes write one SQLite history, which the test reads back with histctl.
async function twoNodes(t, env = {}) {
  const redis = await startRedis(t);
  const dir = mkdtempSync(path.join(os.tmpdir(), "history-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  env = { HISTORY_URL: `sqlite:${path.join(dir, "history.db")}`, ...env };
  const n0 = await startChatd(t, { REDIS_URL: redis.url, CHATD_NODE_ID: "n0", ...env });
  const n1 = await startChatd(t, { REDIS_URL: redis.url, CHATD_NODE_ID: "n1", ...env }, { secret: n0.secret });
  writeFileSync(path.join(dir, "secret"), n0.secret);
  const history = (...args) => histctl(args, { HISTORY_URL: env.HISTORY_URL, CHATD_SECRET_FILE: path.join(dir, "secret") });
  return { redis, nodes: [n0, n1], history };
}


test("a conversation across two nodes: seq in order, receipts, read marks, typing, and its history", async (t) => {
  const { nodes, history } = await twoNodes(t);
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  const deliveredToA = [];
  a.chat.on("chat:delivered", (d) => deliveredToA.push(d));
  const texts = ["hello", "ça va ? 👋", "x".repeat(4096)];
  for (const [i, text] of texts.entries()) {
    const ack = await a.say({ sessionId, id: `a-${i}`, text });
    assert.deepEqual({ ...ack, ts: 0 }, { ok: true, id: `a-${i}`, seq: i + 1, ts: 0, status: "delivered" });
    assert.ok(Math.abs(ack.ts - Date.now()) < 5000);
  }
  const back = await b.say({ sessionId, id: "b-0", text: "hi!" });
  assert.equal(back.seq, 4);
  assert.equal(back.status, "delivered");
  assert.deepEqual(b.inbox.map((m) => [m.seq, m.id, m.text]), texts.map((x, i) => [i + 1, `a-${i}`, x]));
  assert.deepEqual(a.inbox.map((m) => m.seq), [4]);
  await until(() => deliveredToA.length === 3);
  assert.deepEqual(deliveredToA.map((d) => d.seq), [1, 2, 3]);
  // read marks and typing reach the peer
  const readSeen = next(a.chat, "chat:read");
  assert.deepEqual(await b.tell("chat:read", { sessionId, upToSeq: 3 }), { ok: true });
  assert.deepEqual(await readSeen, { sessionId, upToSeq: 3 });
  const typingSeen = next(b.chat, "chat:typing");
  a.chat.emit("chat:typing", { sessionId, typing: true });
  assert.deepEqual(await typingSeen, { sessionId, typing: true });
  // the history reads back exactly what was said, in seq order, with both senders
  const rows = await until(async () => { const r = await history("messages", sessionId); return r.length === 4 && r; });
  assert.deepEqual(rows.map((m) => [m.seq, m.id, m.text, m.senderGuestId]),
    [...texts.map((x, i) => [i + 1, `a-${i}`, x, a.session.guestId]), [4, "b-0", "hi!", b.session.guestId]]);
  for (const m of rows) assert.ok(m.sentAt <= m.deliveredAt && m.sessionId === sessionId);
  const s = await until(async () => { try { return await history("session", sessionId); } catch { return null; } });
  assert.deepEqual(s.guests.sort(), [a.session.guestId, b.session.guestId].sort());
  assert.equal(s.endedAt, null);
  assert.deepEqual((await history("sessions", a.session.guestId)).map((x) => x.sessionId), [sessionId]);
});

test("the same id sent twice: one seq, one delivery, one history row", async (t) => {
  const { nodes, history } = await twoNodes(t);
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  const first = await a.say({ sessionId, id: "same", text: "once" });
  const again = await a.say({ sessionId, id: "same", text: "once" });
  assert.deepEqual(again, first);
  const both = await Promise.all([a.say({ sessionId, id: "twin", text: "t" }), a.say({ sessionId, id: "twin", text: "t" })]);
  assert.deepEqual(both[0], both[1]);
  assert.equal(both[0].seq, 2);
  await until(() => b.inbox.length >= 2);
  assert.deepEqual(b.inbox.map((m) => m.id), ["same", "twin"]);
  const rows = await until(async () => { const r = await history("messages", sessionId); return r.length >= 2 && r; });
  assert.deepEqual(rows.map((m) => [m.id, m.seq]), [["same", 1], ["twin", 2]]);
});

test("bad messages get the protocol's answer and change nothing", async (t) => {
  const { nodes } = await twoNodes(t, { CHAT_RATE_GUEST: "3/60" });
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  const cases = [
    [{ sessionId, id: "1", text: "x".repeat(4097) }, "too_long"],
    [{ sessionId, id: "2", text: "é".repeat(2049) }, "too_long"], // 4098 bytes
    [{ sessionId, id: "3", text: "" }, "invalid"],
    [{ sessionId, id: "", text: "x" }, "invalid"],
    [{ sessionId, id: "i".repeat(65), text: "x" }, "invalid"],
    [{ sessionId, id: 4, text: "x" }, "invalid"],
    [{ sessionId, id: "5", text: 5 }, "invalid"],
    [{ sessionId: "AAAAAAAAAAAAAAAAAAAAAA", id: "6", text: "x" }, "not_in_session"],
    [{ sessionId: "nope", id: "7", text: "x" }, "not_in_session"],
    ["text", "invalid"],
  ];
  for (const [payload, error] of cases)
    assert.deepEqual(await a.say(payload), { ok: false, error }, JSON.stringify(payload).slice(0, 60));
  const ok = await a.say({ sessionId, id: "fine", text: "still here" });
  assert.equal(ok.seq, 1);
  // the guest bucket: 3 per minute; only the unknown session (checked in Redis) took one before
  assert.equal((await a.say({ sessionId, id: "fine2", text: "x" })).ok, true);
  assert.deepEqual(await a.say({ sessionId, id: "fine3", text: "x" }), { ok: false, error: "rate_limited" });
  assert.deepEqual(await b.tell("chat:read", { sessionId, upToSeq: 0 }), { ok: false, error: "invalid" });
  assert.deepEqual(await b.tell("chat:report", { sessionId, reason: "" }), { ok: false, error: "invalid" });
  assert.deepEqual(await b.tell("chat:report", { sessionId, reason: "r".repeat(501) }), { ok: false, error: "too_long" });
  assert.equal(a.root.connected && b.root.connected, true);
});

test("leave ends the session for both; the peer gets user-left left", async (t) => {
  const { nodes } = await twoNodes(t);
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  const left = next(b.root, "user-left");
  assert.deepEqual(await a.tell("chat:leave", { sessionId }), { ok: true });
  assert.deepEqual(await left, { sessionId, reason: "left" });
  assert.deepEqual(await a.say({ sessionId, id: "late", text: "x" }), { ok: false, error: "not_in_session" });
  assert.deepEqual(await b.tell("chat:leave", { sessionId }), { ok: false, error: "not_in_session" });
  assert.deepEqual(await a.ask("match:request", {}), { ok: true, queued: true }); // free again
});

test("report ends the session, the peer gets user-left reported, the pair is never matched again, moderators see it", async (t) => {
  const { nodes, history } = await twoNodes(t);
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  const left = next(a.root, "user-left");
  assert.deepEqual(await b.tell("chat:report", { sessionId, reason: "rude" }), { ok: true });
  assert.deepEqual(await left, { sessionId, reason: "reported" });
  // both look again: they never get each other; a newcomer is proposed instead
  await a.ask("match:request", {});
  await b.ask("match:request", {});
  const c = await connectGuest(t, nodes[0].url);
  const proposal = Promise.race([next(a.match, "match:proposal"), next(b.match, "match:proposal")]);
  await c.ask("match:request", {});
  await proposal;
  assert.deepEqual(await a.ask("match:request", {}), { ok: false, error: "already_queued" });
  const reports = await until(async () => { const r = await history("reports", "open"); return r.length === 1 && r; });
  assert.equal(reports[0].sessionId, sessionId);
  assert.equal(reports[0].reporterGuestId, b.session.guestId);
  assert.equal(reports[0].reason, "rude");
  const s = await until(async () => { const x = await history("session", sessionId); return x.endReason && x; });
  assert.equal(s.endReason, "reported");
});

test("peer-status: the peer's last connection goes, then comes back on the other node", async (t) => {
  const { nodes } = await twoNodes(t);
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  const offline = next(a.root, "peer-status");
  b.manager.engine.close();
  assert.deepEqual(await offline, { sessionId, online: false });
  const online = next(a.root, "peer-status");
  const back = await connectGuest(t, nodes[0].url, { token: b.session.token });
  assert.deepEqual(await online, { sessionId, online: true });
  assert.equal(back.userSessions[0].sessionId, sessionId);
  assert.equal(back.userSessions[0].resumed, true);
  const ack = await a.say({ sessionId, id: "after", text: "welcome back" });
  assert.equal(ack.status, "delivered");
  assert.deepEqual(back.inbox.map((m) => m.text), ["welcome back"]);
});

test("a session ends by itself after CHAT_SESSION_TTL_S: both sides get user-left expired", async (t) => {
  const { nodes } = await twoNodes(t, { CHAT_SESSION_TTL_S: "2" });
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  const t0 = Date.now();
  const [la, lb] = await Promise.all([next(a.root, "user-left", 6000), next(b.root, "user-left", 6000)]);
  assert.deepEqual(la, { sessionId, reason: "expired" });
  assert.deepEqual(lb, { sessionId, reason: "expired" });
  assert.ok(Date.now() - t0 >= 1000);
  assert.deepEqual(await a.say({ sessionId, id: "late", text: "x" }), { ok: false, error: "not_in_session" });
});

test("guests of one node chat through memory: no message or receipt goes through Redis pub/sub", async (t) => {
  const { redis, nodes } = await twoNodes(t);
  const url = nodes[0].url; // CHATD_WORKERS=2: pairs land on one worker or on two
  const db = redis.client();
  const worker = async (g) => db.call("HGET", `{nc}:g:${g.session.guestId}`, "chan");
  const pairs = [];
  for (let i = 0; i < 16 && !(pairs.some((p) => p.same) && pairs.some((p) => !p.same)); i++) {
    const pair = await matchedPair(t, url, url);
    pairs.push({ ...pair, same: (await worker(pair.a)) === (await worker(pair.b)) });
  }
  assert.ok(pairs.some((p) => p.same) && pairs.some((p) => !p.same), "a pair on one worker and a pair on two");
  const published = await redisSubscriber(redis.port, "nc:w:*");
  t.after(() => published.close());
  for (const { a, b, sessionId } of pairs) {
    const delivered = next(a.chat, "chat:delivered");
    const ack = await a.say({ sessionId, id: "m1", text: "near" });
    assert.deepEqual({ ...ack, ts: 0 }, { ok: true, id: "m1", seq: 1, ts: 0, status: "delivered" });
    assert.deepEqual(await delivered, { sessionId, id: "m1", seq: 1 });
    assert.equal((await b.say({ sessionId, id: "m2", text: "far" })).status, "delivered");
    assert.deepEqual(b.inbox.map((m) => m.text), ["near"]);
    assert.deepEqual(a.inbox.map((m) => m.text), ["far"]);
  }
  // pub/sub keeps order: once this arrives, anything published before it has
  await db.call("PUBLISH", "nc:w:end", JSON.stringify({ t: "end" }));
  await published.take((m) => m.t === "end");
  assert.deepEqual(published.seen.filter((m) => ["msg", "delivered", "nack"].includes(m.t)), []);
});

test("a read mark never overtakes the sender's ack and chat:delivered, on one node or across two", async (t) => {
  const { nodes } = await twoNodes(t);
  for (const [ua, ub] of [[nodes[0].url, nodes[0].url], [nodes[0].url, nodes[0].url], [nodes[0].url, nodes[1].url]]) {
    const { a, b, sessionId } = await matchedPair(t, ua, ub);
    // a reads every message as it arrives, right behind its receipt
    a.chat.on("chat:message", (m) => a.chat.emit("chat:read", { sessionId, upToSeq: m.seq }));
    const seen = []; // what b hears, in the order it hears it
    b.chat.on("chat:delivered", (d) => seen.push(["delivered", d.seq]));
    b.chat.on("chat:read", (r) => seen.push(["read", r.upToSeq]));
    const acked = [];
    for (let i = 0; i < 20; i++)
      acked.push(new Promise((resolve) => b.chat.emit("chat:message", { sessionId, id: `r${i}`, text: "x" }, (ack) => {
        seen.push(["ack", ack.seq]);
        resolve(ack);
      })));
    const seqs = (await Promise.all(acked)).map((x) => x.seq);
    await until(() => seen.some(([k, n]) => k === "read" && n === Math.max(...seqs)));
    for (const seq of seqs) {
      const read = seen.findIndex(([k, n]) => k === "read" && n >= seq);
      assert.ok(seen.findIndex(([k, n]) => k === "ack" && n === seq) < read, `ack of ${seq} before the read mark`);
      assert.ok(seen.findIndex(([k, n]) => k === "delivered" && n === seq) < read, `delivered ${seq} before the read mark`);
    }
  }
});

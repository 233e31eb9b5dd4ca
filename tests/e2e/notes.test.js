// The notes between workers (issue 14: one typed module): every note that
// matcher.lua, chat.lua and the nodes publish on the workers' channels
// follows schemas/notes/<kind>.json, which server/note/ reads and writes.
// Two nodes, so that chat notes cross between them through Redis.
import test from "node:test";
import assert from "node:assert/strict";
import { startChatd, geoDb } from "./harness.js";
import { startRedis, redisSubscriber } from "./redis.js";
import { connectGuest, matchedPair, next } from "./guests.js";
import { checkNote } from "./schemas.js";

test("every note published between workers, by the scripts and by chatd, follows its schema", async (t) => {
  const redis = await startRedis(t);
  const sub = await redisSubscriber(redis.port, "nc:w:*");
  t.after(() => sub.close());
  const env = { REDIS_URL: redis.url, GEOIP_DB: geoDb, TRUSTED_PROXIES: "127.0.0.1/32",
    MATCH_WIDEN_MS: "300,600,900", MATCH_PROPOSAL_MS: "1000" };
  const n0 = await startChatd(t, { ...env, CHATD_NODE_ID: "n0" });
  const n1 = await startChatd(t, { ...env, CHATD_NODE_ID: "n1" }, { secret: n0.secret });
  const note = (label, pred) => sub.take(pred, 10000).catch(() => {
    throw new Error(`no ${label} note; seen: ${sub.seen.map((m) => `${m.t}:${m.g}`).join(", ")}`);
  });

  // matching: proposal, proposing, session; chat: msg, delivered, typing, read, left
  const { a, b, sessionId } = await matchedPair(t, n0.url, n1.url);
  const [ga, gb] = [a.session.guestId, b.session.guestId];
  await note("proposal", (m) => m.t === "proposal" && m.g === ga);
  await note("proposing", (m) => m.t === "proposing" && m.g === gb);
  await note("session", (m) => m.t === "session" && m.g === ga && m.sid === sessionId);
  const answer = await a.say({ sessionId, id: "m1", text: "a note | with a bar" });
  assert.equal(answer.status, "delivered");
  const msg = await note("msg", (m) => m.t === "msg" && m.g === gb);
  assert.equal(msg.text, "a note | with a bar");
  await note("delivered", (m) => m.t === "delivered" && m.g === ga && m.id === "m1");
  assert.deepEqual(await a.tell("chat:typing", { sessionId, typing: true }), { ok: true });
  await note("typing", (m) => m.t === "typing" && m.g === gb && m.typing === true);
  assert.deepEqual(await b.tell("chat:read", { sessionId, upToSeq: 1 }), { ok: true });
  await note("read", (m) => m.t === "read" && m.g === ga && m.upToSeq === 1);
  const left = next(b.root, "user-left");
  assert.deepEqual(await a.tell("chat:leave", { sessionId }), { ok: true });
  await left;
  await note("left", (m) => m.t === "left" && m.g === gb && m.reason === "left");

  // peer: the other side of a live session went
  const p2 = await matchedPair(t, n1.url, n0.url);
  const gc = p2.a.session.guestId;
  p2.b.root.disconnect();
  p2.b.manager.engine?.close();
  await note("peer", (m) => m.t === "peer" && m.g === gc && m.online === false);

  // waiting (a guest in Paris alone past the first widening), then a proposal left to expire
  const e = await connectGuest(t, n0.url, { xff: "10.1.0.7" });
  const f = await connectGuest(t, n1.url, { xff: "10.1.0.8" });
  await e.ask("match:request", { scope: "country" });
  await note("waiting", (m) => m.t === "waiting" && m.g === e.session.guestId);
  const proposal = next(e.match, "match:proposal");
  await f.ask("match:request", {});
  await proposal;
  await note("expired", (m) => m.t === "expired" && (m.g === e.session.guestId || m.g === f.session.guestId));

  const kinds = new Set(sub.seen.map((m) => m.t));
  for (const k of ["proposal", "proposing", "session", "msg", "delivered", "typing", "read", "left", "peer", "waiting", "expired"])
    assert.ok(kinds.has(k), `a ${k} note was published`);
  const problems = sub.seen.map(({ channel, ...m }) => checkNote(m)).filter(Boolean);
  assert.deepEqual(problems, []);
});

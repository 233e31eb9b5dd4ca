// Matching end to end (protocol.md §3, §4): chatd processes sharing one real
// redis-server, guests driven by the official socket.io-client.
import test from "node:test";
import assert from "node:assert/strict";
import { startChatd, geoDb, until } from "./harness.js";
import { startRedis } from "./redis.js";
import { connectGuest, next, record } from "./guests.js";

async function cluster(t, n, env = {}) {
  const redis = await startRedis(t);
  const first = await startChatd(t, { REDIS_URL: redis.url, GEOIP_DB: geoDb, TRUSTED_PROXIES: "127.0.0.1/32",
    CHATD_NODE_ID: "n0", ...env });
  const nodes = [first];
  for (let i = 1; i < n; i++)
    nodes.push(await startChatd(t, { REDIS_URL: redis.url, GEOIP_DB: geoDb, TRUSTED_PROXIES: "127.0.0.1/32",
      CHATD_NODE_ID: `n${i}`, ...env }, { secret: first.secret }));
  return { redis, nodes };
}


test("two guests on two nodes are matched; both get user-session with an alias and no guest id", async (t) => {
  const { nodes } = await cluster(t, 2);
  const a = await connectGuest(t, nodes[0].url, { xff: "10.1.0.1" });
  const b = await connectGuest(t, nodes[1].url, { xff: "10.1.0.2", transports: ["polling", "websocket"] });
  const seenByA = [], seenByB = [];
  a.root.onAny((...e) => seenByA.push(e));
  a.match.onAny((...e) => seenByA.push(e));
  b.root.onAny((...e) => seenByB.push(e));
  b.match.onAny((...e) => seenByB.push(e));
  assert.deepEqual(await a.ask("match:request", { scope: "city" }), { ok: true, queued: true });
  const proposal = next(a.match, "match:proposal");
  assert.deepEqual(await b.ask("match:request", {}), { ok: true, queued: true });
  const p = await proposal;
  assert.match(p.proposalId, /^[A-Za-z0-9_-]{22}$/);
  assert.deepEqual(p.peer, { city: "Paris", country: "FR", distanceKm: 0 });
  assert.ok(p.expiresIn > 0 && p.expiresIn <= 15);
  const usA = next(a.root, "user-session"), usB = next(b.root, "user-session");
  assert.deepEqual(await a.ask("match:accept", { proposalId: p.proposalId }), { ok: true });
  const [sa, sb] = await Promise.all([usA, usB]);
  assert.equal(sa.sessionId, sb.sessionId);
  assert.equal(sa.resumed, false);
  assert.ok(Math.abs(sa.startedAt - Date.now()) < 5000);
  assert.deepEqual(Object.keys(sa.peer).sort(), ["alias", "city", "country", "distanceKm"]);
  assert.match(sa.peer.alias, /^[A-Z][a-z]+ [A-Z][a-z]+$/);
  assert.notEqual(sa.peer.alias, sb.peer.alias);
  assert.equal(sa.peer.city, "Paris");
  assert.equal(JSON.stringify(seenByA).includes(b.session.guestId), false);
  assert.equal(JSON.stringify(seenByB).includes(a.session.guestId), false);
  assert.deepEqual(await b.ask("match:request", {}), { ok: false, error: "already_in_session" });

  // the same guest coming back (another connection, the other node) hears of its live session
  const again = await connectGuest(t, nodes[0].url, { token: b.session.token });
  const us = again.userSessions.length ? again.userSessions[0] : await next(again.root, "user-session");
  assert.equal(us.sessionId, sa.sessionId);
  assert.equal(us.resumed, true);
  assert.equal(us.peer.alias, sb.peer.alias);
});

test("a guest declined by another is never proposed to it again", async (t) => {
  const { nodes } = await cluster(t, 2);
  const a = await connectGuest(t, nodes[0].url);
  const b = await connectGuest(t, nodes[1].url);
  const proposalsA = record(a.match, "match:proposal");
  const proposalsB = record(b.match, "match:proposal");
  await a.ask("match:request", {});
  const first = next(a.match, "match:proposal");
  await b.ask("match:request", {});
  const p1 = await first;
  assert.deepEqual(await a.ask("match:decline", { proposalId: p1.proposalId }), { ok: true });
  // both wait again; each newcomer is proposed to one of them, never one of them to the other.
  // (Which one first depends on their places in the queue, equal when both asked in the same millisecond.)
  const pairWithNewcomer = async (waiting, url) => {
    const newcomer = await connectGuest(t, url);
    const proposed = new Promise((resolve, reject) => {
      const done = () => { clearTimeout(timer); for (const w of waiting) w.match.off("match:proposal", w.handler); };
      const timer = setTimeout(() => { done(); reject(new Error("no match:proposal within 10000 ms")); }, 10000);
      for (const w of waiting) {
        w.handler = (p) => { done(); resolve([w, p]); };
        w.match.once("match:proposal", w.handler);
      }
    });
    await newcomer.ask("match:request", {});
    const [g, p] = await proposed;
    const sessions = [next(g.root, "user-session"), next(newcomer.root, "user-session")];
    await g.ask("match:accept", { proposalId: p.proposalId });
    const [s1, s2] = await Promise.all(sessions);
    assert.equal(s1.sessionId, s2.sessionId, "paired with the newcomer");
    return g;
  };
  const firstPaired = await pairWithNewcomer([a, b], nodes[1].url);
  const other = firstPaired === a ? b : a;
  assert.equal(await pairWithNewcomer([other], nodes[0].url), other);
  assert.equal(proposalsA.length + proposalsB.length, 3, "the decline, then one newcomer each");
  for (const g of [a, b]) assert.deepEqual(await g.ask("match:request", {}), { ok: false, error: "already_in_session" });
});

test("guests in nearby cities are matched only after the widening timer", async (t) => {
  const { nodes } = await cluster(t, 2, { MATCH_WIDEN_MS: "600,5000,5000" });
  const paris = await connectGuest(t, nodes[0].url, { xff: "10.1.0.7" });
  const versailles = await connectGuest(t, nodes[1].url, { xff: "10.2.0.7" });
  const events = [];
  const t0 = Date.now();
  for (const [name, g] of [["paris", paris], ["versailles", versailles]]) {
    g.match.on("match:waiting", (w) => events.push([name, "waiting", w, Date.now() - t0]));
    g.match.on("match:proposal", (p) => events.push([name, "proposal", p, Date.now() - t0]));
  }
  await paris.ask("match:request", { scope: "country" });
  await versailles.ask("match:request", { scope: "country" });
  await until(() => events.some(([, k]) => k === "proposal"));
  const prop = events.findIndex(([, k]) => k === "proposal");
  const [who, , , at] = events[prop];
  assert.ok(at >= 600, `proposed after ${at} ms`);
  // the proposed guest heard of its own widening first, and of no widening after
  const own = events.filter(([n, k]) => n === who && k === "waiting");
  assert.ok(own.length <= 1, JSON.stringify(events));
  const wait = events.find(([, k, w]) => k === "waiting" && w.scope === "nearby");
  assert.ok(wait && wait[2].waitedMs >= 600, JSON.stringify(events));
  if (own.length) assert.ok(events.indexOf(own[0]) < prop);
  const p = events[prop][2];
  assert.ok(p.peer.distanceKm >= 17 && p.peer.distanceKm <= 19, `distance ${p.peer.distanceKm}`);
});

test("a scope of city never widens: the other city is never proposed", async (t) => {
  const { nodes } = await cluster(t, 1, { MATCH_WIDEN_MS: "100,200,300" });
  const paris = await connectGuest(t, nodes[0].url, { xff: "10.1.0.7" });
  const berlin = await connectGuest(t, nodes[0].url, { xff: "10.4.0.7" });
  const parisEvents = [];
  paris.match.onAny((...e) => parisEvents.push(e));
  const proposals = record(berlin.match, "match:proposal");
  const widenedToAny = new Promise((resolve) => berlin.match.on("match:waiting", (w) => w.scope === "any" && resolve(w)));
  await paris.ask("match:request", { scope: "city" });
  await berlin.ask("match:request", { scope: "any" });
  const w = await widenedToAny; // Berlin searched everywhere
  assert.ok(w.waitedMs >= 300);
  assert.deepEqual(parisEvents, []); // Paris asked for its city: no widening, no proposal
  assert.deepEqual(proposals, []);
});

test("bad requests get the protocol's answer and change nothing", async (t) => {
  const { nodes } = await cluster(t, 1);
  const g = await connectGuest(t, nodes[0].url);
  for (const payload of [{ scope: "galaxy" }, { scope: 3 }, { maxDistanceKm: -1 }, { maxDistanceKm: "10" },
    { maxDistanceKm: 1e9 }, "city", 42, [1]])
    assert.deepEqual(await g.ask("match:request", payload), { ok: false, error: "invalid" }, JSON.stringify(payload));
  assert.deepEqual(await g.ask("match:accept", { proposalId: "nope" }), { ok: false, error: "unknown_proposal" });
  assert.deepEqual(await g.ask("match:accept", { proposalId: "AAAAAAAAAAAAAAAAAAAAAA" }),
    { ok: false, error: "unknown_proposal" });
  assert.deepEqual(await g.ask("match:accept", {}), { ok: false, error: "unknown_proposal" });
  assert.deepEqual(await g.ask("match:decline", { proposalId: "AAAAAAAAAAAAAAAAAAAAAA" }), { ok: true });
  assert.deepEqual(await g.ask("match:cancel", {}), { ok: true });
  assert.deepEqual(await g.ask("match:request", { scope: "any", maxDistanceKm: 50 }), { ok: true, queued: true });
  assert.deepEqual(await g.ask("match:request", {}), { ok: false, error: "already_queued" });
  assert.equal(g.root.connected, true);
  const waiting = async () => Number(/^chatd_match_waiting\{scope="any"\} (\d+)$/m
    .exec(await (await fetch(`${nodes[0].url}/metrics`)).text())[1]);
  assert.equal(await waiting(), 1);
  await g.ask("match:cancel", {});
  assert.equal(await waiting(), 0);
});

test("match requests are rate-limited per guest", async (t) => {
  const { nodes } = await cluster(t, 1, { MATCH_RATE_GUEST: "2/60" });
  const g = await connectGuest(t, nodes[0].url);
  assert.equal((await g.ask("match:request", {})).ok, true);
  await g.ask("match:cancel", {});
  assert.equal((await g.ask("match:request", {})).ok, true);
  await g.ask("match:cancel", {});
  assert.deepEqual(await g.ask("match:request", {}), { ok: false, error: "rate_limited" });
});

test("an unanswered proposal expires: the proposed guest gets match:expired, the requester waits on", async (t) => {
  const { nodes, redis } = await cluster(t, 2, { MATCH_PROPOSAL_MS: "400" });
  const a = await connectGuest(t, nodes[0].url);
  const b = await connectGuest(t, nodes[1].url);
  await a.ask("match:request", {});
  const prop = next(a.match, "match:proposal");
  const expired = next(a.match, "match:expired");
  await b.ask("match:request", {});
  const p = await prop;
  assert.equal(p.expiresIn, 1);
  assert.deepEqual(await expired, {});
  assert.deepEqual(await a.ask("match:accept", { proposalId: p.proposalId }), { ok: false, error: "expired" });
  const r = redis.client();
  assert.equal(await r.call("HGET", `{nc}:w:${b.session.guestId}`, "state"), "waiting");
  assert.equal(await r.call("EXISTS", `{nc}:w:${a.session.guestId}`), 0);
  assert.deepEqual(await b.ask("match:request", {}), { ok: false, error: "already_queued" });
});

test("a guest that disconnects while queued or proposed is taken out of matching", async (t) => {
  const { nodes, redis } = await cluster(t, 2);
  const r = redis.client();
  const a = await connectGuest(t, nodes[0].url);
  const b = await connectGuest(t, nodes[1].url);
  await a.ask("match:request", {});
  const prop = next(a.match, "match:proposal");
  await b.ask("match:request", {});
  await prop;
  a.manager.engine.close(); // the proposed guest vanishes
  await until(async () => (await r.call("HGET", `{nc}:w:${b.session.guestId}`, "state")) === "waiting");
  assert.equal(await r.call("EXISTS", `{nc}:w:${a.session.guestId}`), 0);
  assert.equal(await r.call("EXISTS", `{nc}:g:${a.session.guestId}`), 0);
  b.manager.engine.close(); // the queued guest vanishes
  await until(async () => (await r.call("ZCARD", "{nc}:qa")) === 0);
  assert.equal(await r.call("EXISTS", `{nc}:w:${b.session.guestId}`), 0);
});

test("Redis down: unavailable at once, connections stay up, matching resumes when it is back", async (t) => {
  const { nodes, redis } = await cluster(t, 1);
  // the broker is not part of this test: look at what /readyz says of Redis
  const ready = async () => (await (await fetch(`${nodes[0].url}/readyz`)).json()).dependencies.redis;
  await until(async () => (await ready()) === "up");
  const waiting = await connectGuest(t, nodes[0].url);
  assert.deepEqual(await waiting.ask("match:request", {}), { ok: true, queued: true });
  const a = await connectGuest(t, nodes[0].url);
  await redis.stop(); // and with it every queue: it keeps no data
  await until(async () => (await ready()) === "down");
  assert.equal((await fetch(`${nodes[0].url}/readyz`)).status, 503);
  const body = await (await fetch(`${nodes[0].url}/readyz`)).json();
  assert.equal(body.dependencies.redis, "down");
  const t0 = Date.now();
  assert.deepEqual(await a.ask("match:request", {}), { ok: false, error: "unavailable" });
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(a.root.connected, true);
  const late = await connectGuest(t, nodes[0].url); // a guest can still arrive
  assert.equal(late.session.resumed, false);
  await redis.start();
  await until(async () => (await ready()) === "up");
  assert.equal(a.root.connected, true);
  assert.equal(waiting.root.connected, true);
  // the guest that was waiting is queued again by its node: the first newcomer is proposed to it
  const prop = next(waiting.match, "match:proposal");
  await until(async () => (await redis.client().call("EXISTS", `{nc}:w:${waiting.session.guestId}`)) === 1);
  assert.deepEqual(await late.ask("match:request", {}), { ok: true, queued: true });
  await prop;
  const prop2 = next(a.match, "match:proposal");
  assert.deepEqual(await a.ask("match:request", {}), { ok: true, queued: true });
  const other = await connectGuest(t, nodes[0].url);
  await other.ask("match:request", {});
  await prop2;
});

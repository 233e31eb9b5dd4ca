// The matcher's Lua script, called directly in a real redis-server: the edge
// cases of §4 that the end-to-end tests cannot reach precisely.
import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startRedis, redisSubscriber } from "./redis.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// as chatd sends it: the key names' prelude (generated from server/keys/keys.def), then the script
const build = path.resolve(root, process.env.BUILD || "build");
const script = readFileSync(path.join(build, "gen/keys.lua"), "utf8") + readFileSync(path.join(root, "matcher/matcher.lua"), "utf8");
const NEARBY_KM = 100;
const TTL = 3600;

const PARIS = { city: "2988507", cname: "Paris", cc: "FR", lat: "48.8566", lon: "2.3522" };
const VERSAILLES = { city: "2970153", cname: "Versailles", cc: "FR", lat: "48.8049", lon: "2.1204" };
const LYON = { city: "2996944", cname: "Lyon", cc: "FR", lat: "45.7640", lon: "4.8357" };
const BERLIN = { city: "2950159", cname: "Berlin", cc: "DE", lat: "52.5200", lon: "13.4050" };

const rid = () => randomBytes(16).toString("base64url");

async function setup(t, proposalMs = 5000) {
  const redis = await startRedis(t);
  const r = redis.client();
  const sub = await redisSubscriber(redis.port, "t:*");
  t.after(() => sub.close());
  const ev = (...args) => r.call("EVAL", script, 0, ...args);
  const m = {
    r, sub, ev,
    hello: (g, p = PARIS, ip = "192.0.2.1") =>
      ev("hello", g, ip, `t:${g}`, `conn-${g}`, p.city, p.cname, p.cc, p.lat, p.lon, 60),
    request: (g, { scope = 3, maxkm = 0, ip = "192.0.2.1", rate = [0, 60], rateIp = [0, 60] } = {}) =>
      ev("request", g, scope, maxkm, NEARBY_KM, proposalMs, rid(), ip, rate[0], rate[1], rateIp[0], rateIp[1]),
    widen: (g, stage) => ev("widen", g, stage, NEARBY_KM, proposalMs, rid()),
    accept: (g, pid) => ev("accept", g, pid, rid(), "Alias R", "Alias T", TTL, NEARBY_KM, proposalMs, rid()),
    decline: (g, pid) => ev("decline", g, pid, TTL, NEARBY_KM, proposalMs, rid()),
    expire: (pid) => ev("expire", pid, TTL, NEARBY_KM, proposalMs, rid()),
    cancel: (g, conn = "", gone = "") => ev("cancel", g, conn, NEARBY_KM, proposalMs, rid(), gone),
    proposalFor: (g) => sub.take((msg) => msg.t === "proposal" && msg.g === g),
    proposals: () => sub.seen.filter((msg) => msg.t === "proposal"),
    state: (g) => r.call("HGET", `{nc}:w:${g}`, "state"),
  };
  return m;
}

test("a lone guest is queued and never matched with itself; a second request is already_queued", async (t) => {
  const m = await setup(t);
  await m.hello("A");
  assert.deepEqual((await m.request("A"))[0], "ok");
  assert.deepEqual(await m.request("A"), ["err", "already_queued"]);
  await m.widen("A", 3);
  assert.equal(m.proposals().length, 0);
  assert.equal(await m.state("A"), "waiting");
});

test("the waiting guest gets the proposal; accepting makes one session for both, then already_in_session", async (t) => {
  const m = await setup(t);
  await m.hello("A");
  await m.hello("B");
  await m.request("A");
  await m.request("B");
  const p = await m.proposalFor("A");
  assert.equal(p.city, "Paris");
  assert.equal(p.d, 0);
  assert.deepEqual(await m.request("B"), ["err", "already_queued"]);
  const [ok, sid] = await m.accept("A", p.pid);
  assert.equal(ok, "ok");
  const sa = await m.sub.take((x) => x.t === "session" && x.g === "A");
  const sb = await m.sub.take((x) => x.t === "session" && x.g === "B");
  assert.equal(sa.sid, sid);
  assert.equal(sb.sid, sid);
  assert.equal(sa.alias, "Alias R"); // A, the proposed guest, sees the requester's alias
  assert.equal(sb.alias, "Alias T");
  assert.notEqual(sa.alias, sb.alias);
  assert.deepEqual(await m.request("A"), ["err", "already_in_session"]);
  assert.deepEqual(await m.accept("A", p.pid), ["err", "unknown_proposal"]);
  assert.equal(await m.r.call("ZCARD", "{nc}:qa"), 0);
  // the hello of a reconnecting guest finds its session
  const h = await m.hello("B");
  assert.equal(h[0], "session");
  assert.equal(h[1], sid);
});

test("only the proposed guest can accept its proposal; an unknown id is unknown_proposal", async (t) => {
  const m = await setup(t);
  for (const g of ["A", "B"]) await m.hello(g);
  await m.request("A");
  await m.request("B");
  const p = await m.proposalFor("A");
  assert.deepEqual(await m.accept("B", p.pid), ["err", "unknown_proposal"]);
  assert.deepEqual(await m.accept("A", rid()), ["err", "unknown_proposal"]);
  assert.equal((await m.accept("A", p.pid))[0], "ok");
});

test("a declined pair is never proposed again; the decliner keeps its place and the requester searches on", async (t) => {
  const m = await setup(t);
  for (const g of ["A", "B", "C"]) await m.hello(g);
  await m.request("A");
  await m.request("B");
  const p1 = await m.proposalFor("A");
  assert.deepEqual(await m.decline("A", p1.pid), ["ok"]);
  assert.equal(await m.state("A"), "waiting");
  assert.equal(await m.state("B"), "waiting");
  assert.equal(await m.r.call("SISMEMBER", "{nc}:nv:A", "B"), 1);
  assert.equal(await m.r.call("SISMEMBER", "{nc}:nv:B", "A"), 1);
  await m.widen("A", 3);
  await m.widen("B", 3);
  // C arrives: A has waited longest, so A is proposed first
  await m.request("C");
  const p2 = await m.proposalFor("A").then(() => m.sub.take((x) => x.t === "proposal" && x.pid !== p1.pid));
  assert.equal(p2.g, "A");
  assert.equal((await m.accept("A", p2.pid))[0], "ok");
  // no proposal but the first ever paired A with B (the requester hears "proposing")
  const requester = new Map(m.sub.seen.filter((x) => x.t === "proposing").map((x) => [x.pid, x.g]));
  const pairs = m.proposals().map((p) => [p.g, requester.get(p.pid)].sort().join("-"));
  assert.deepEqual(pairs, ["A-B", "A-C"]);
  assert.equal(await m.state("B"), "waiting");
});

test("a proposal that expires takes the proposed guest out of the queue and never pairs the two again", async (t) => {
  const m = await setup(t, 300);
  for (const g of ["A", "B"]) await m.hello(g);
  await m.request("A");
  await m.request("B");
  const p = await m.proposalFor("A");
  assert.deepEqual(await m.expire(p.pid), ["early"]);
  await new Promise((r) => setTimeout(r, 400)); // expiry is about time passing: nothing to await
  assert.deepEqual(await m.accept("A", p.pid), ["err", "expired"]);
  assert.deepEqual(await m.expire(p.pid), ["ok"]);
  assert.deepEqual(await m.expire(p.pid), ["gone"]);
  const ex = await m.sub.take((x) => x.t === "expired" && x.g === "A");
  assert.equal(ex.pid, p.pid);
  assert.equal(await m.state("A"), null);
  assert.equal(await m.state("B"), "waiting");
  // A comes back: B is on its never-again list
  await m.request("A");
  await m.widen("A", 3);
  assert.equal(m.proposals().length, 1);
});

test("a queued guest that disconnects leaves every queue; a stale connection cannot cancel a newer one", async (t) => {
  const m = await setup(t);
  await m.hello("A");
  await m.request("A");
  assert.deepEqual(await m.cancel("A", "an-older-connection", "gone"), ["other_connection"]);
  assert.equal(await m.state("A"), "waiting");
  assert.deepEqual(await m.cancel("A", "conn-A", "gone"), ["ok"]);
  assert.equal(await m.state("A"), null);
  for (const key of ["{nc}:qa", "{nc}:geo", `{nc}:qc:${PARIS.city}`, `{nc}:qn:FR`]) assert.equal(await m.r.call("ZCARD", key), 0);
  assert.equal(await m.r.call("EXISTS", "{nc}:g:A"), 0);
});

test("disconnect while proposed: the requester goes back to the queue; while proposing: the proposed guest is told", async (t) => {
  const m = await setup(t);
  for (const g of ["A", "B", "C"]) await m.hello(g);
  await m.request("A");
  await m.request("B");
  const p = await m.proposalFor("A");
  await m.cancel("A", "conn-A", "gone"); // the proposed guest vanished
  assert.equal(await m.state("B"), "waiting");
  assert.equal(await m.r.call("EXISTS", `{nc}:p:${p.pid}`), 0);

  await m.request("C"); // B is proposed to... no: C searches and finds B waiting
  const p2 = await m.proposalFor("B");
  await m.cancel("C", "conn-C", "gone"); // the requester vanished
  const w = await m.sub.take((x) => x.t === "withdrawn" && x.g === "B");
  assert.equal(w.pid, p2.pid);
  assert.equal(await m.state("B"), "waiting");
  assert.deepEqual(await m.accept("B", p2.pid), ["err", "unknown_proposal"]);
});

test("a guest whose worker stopped refreshing it is skipped and cleaned up", async (t) => {
  const m = await setup(t);
  for (const g of ["A", "B"]) await m.hello(g);
  await m.request("A");
  await m.r.call("DEL", "{nc}:g:A"); // its location expired
  await m.request("B");
  assert.equal(m.proposals().length, 0);
  assert.equal(await m.state("A"), null);
  assert.equal(await m.r.call("ZSCORE", "{nc}:qa", "A"), null);
});

test("scopes: city never reaches another city; nearby only after widening; nearest first, then longest waiting", async (t) => {
  const m = await setup(t);
  await m.hello("P1", PARIS);
  await m.hello("V", VERSAILLES);
  await m.hello("L", LYON);
  await m.hello("B", BERLIN);
  await m.request("B", { scope: 3 });
  await m.request("L", { scope: 2 });
  await m.request("V", { scope: 0 }); // city only
  await m.request("P1", { scope: 3 });
  assert.equal(m.proposals().length, 0, "different cities: nothing before widening");
  await m.widen("P1", 1);
  assert.equal(m.proposals().length, 0, "Versailles asked for its city only");
  await m.widen("P1", 2); // country: Lyon
  const p = await m.proposalFor("L");
  assert.equal(p.city, "Paris");
  assert.ok(p.d > 380 && p.d < 400, `Paris-Lyon ${p.d} km`);
  await m.decline("L", p.pid);
  await m.widen("P1", 3); // any: Berlin (Lyon declined)
  const p2 = await m.proposalFor("B");
  assert.ok(p2.d > 850 && p2.d < 900);

  // nearest first: two guests in Versailles range, the nearer one wins though it came later
  const n = await setup(t);
  await n.hello("FAR", LYON);
  await n.hello("NEAR", VERSAILLES);
  await n.hello("R", PARIS);
  await n.request("FAR", { scope: 3 });
  await n.request("NEAR", { scope: 3 });
  await n.widen("FAR", 3);
  await n.widen("NEAR", 3);
  assert.equal(n.proposals().length, 1); // FAR widened first and found NEAR
  const first = n.proposals()[0];
  assert.equal(first.g, "NEAR");
  await n.decline("NEAR", first.pid);
  await n.request("R", { scope: 3 });
  await n.widen("R", 1);
  const pr = await n.sub.take((x) => x.t === "proposal" && x.pid !== first.pid);
  assert.equal(pr.g, "NEAR", "Versailles is nearer to Paris than Lyon");
});

test("maxDistanceKm bounds every level but the same city", async (t) => {
  const m = await setup(t);
  await m.hello("P", PARIS);
  await m.hello("V", VERSAILLES);
  await m.request("V", { scope: 3 });
  await m.request("P", { scope: 3, maxkm: 10 }); // Versailles is ~18 km away
  await m.widen("P", 3);
  await m.widen("V", 3);
  assert.equal(m.proposals().length, 0);
  await m.cancel("P");
  await m.request("P", { scope: 3, maxkm: 25 });
  await m.widen("P", 1);
  assert.equal((await m.proposalFor("V")).d, 18);
});

test("match requests are rate-limited per guest and per IP", async (t) => {
  const m = await setup(t);
  await m.hello("A");
  await m.hello("B");
  const limited = { rate: [2, 60] };
  assert.equal((await m.request("A", limited))[0], "ok");
  await m.cancel("A");
  assert.equal((await m.request("A", limited))[0], "ok");
  await m.cancel("A");
  assert.deepEqual(await m.request("A", limited), ["err", "rate_limited"]);
  const perIp = { rateIp: [1, 60], ip: "198.51.100.7" };
  assert.equal((await m.request("B", perIp))[0], "ok");
  await m.cancel("B");
  assert.deepEqual(await m.request("B", perIp), ["err", "rate_limited"]);
});

async function liveProposals(r) {
  const out = [];
  for (const key of await r.call("KEYS", "{nc}:p:*")) {
    const [req, target] = await r.call("HMGET", key, "r", "t");
    out.push({ pid: key.slice("{nc}:p:".length), r: req, t: target });
  }
  return out;
}

test("two nodes racing for the same waiting guest: one proposal, the other requester waits", async (t) => {
  const m = await setup(t);
  const other = (await import("./redis.js")).redisClient(Number((await m.r.call("CONFIG", "GET", "port"))[1]));
  t.after(() => other.close());
  for (const g of ["A", "B", "C"]) await m.hello(g);
  await m.request("A");
  const args = (g) => ["EVAL", script, 0, "request", g, 3, 0, NEARBY_KM, 5000, rid(), "192.0.2.1", 0, 60, 0, 60];
  const [rb, rc] = await Promise.all([m.r.call(...args("B")), other.call(...args("C"))]);
  assert.equal(rb[0], "ok");
  assert.equal(rc[0], "ok");
  const live = await liveProposals(m.r);
  assert.equal(live.length, 1);
  assert.equal(live[0].t, "A");
  const loser = live[0].r === "B" ? "C" : "B";
  assert.equal(await m.state(loser), "waiting");
});

test("many requests racing from several connections never pair a guest twice", async (t) => {
  const m = await setup(t, 60000);
  const port = Number((await m.r.call("CONFIG", "GET", "port"))[1]);
  const { redisClient } = await import("./redis.js");
  const clients = [m.r, redisClient(port), redisClient(port), redisClient(port)];
  t.after(() => clients.slice(1).forEach((c) => c.close()));
  const on = (i) => clients[i % clients.length];
  const N = 200;
  const ids = Array.from({ length: N }, (_, i) => `G${i}`);
  await Promise.all(ids.map((g) => m.hello(g)));
  await Promise.all(ids.map((g, i) =>
    on(i).call("EVAL", script, 0, "request", g, 3, 0, NEARBY_KM, 60000, rid(), "192.0.2.1", 0, 60, 0, 60)));
  const live = await liveProposals(m.r);
  const involved = live.flatMap((p) => [p.r, p.t]);
  assert.equal(new Set(involved).size, involved.length, "a guest is in two proposals at once");
  assert.equal(live.length, N / 2, "every requester found a waiting guest");
  // every proposal accepted at once, from all connections
  const results = await Promise.all(live.map((p, i) => on(i).call("EVAL", script, 0, "accept", p.t, p.pid, rid(),
    "R", "T", TTL, NEARBY_KM, 60000, rid())));
  assert.equal(results.filter((r) => r[0] === "ok").length, N / 2);
  const members = new Map();
  for (const key of await m.r.call("KEYS", "{nc}:gs:*")) {
    const sid = await m.r.call("GET", key);
    members.set(sid, [...(members.get(sid) || []), key]);
  }
  assert.equal(members.size, N / 2);
  for (const [sid, gs] of members) assert.equal(gs.length, 2, `session ${sid}`);
  assert.equal(await m.r.call("ZCARD", "{nc}:qa"), 0);
});

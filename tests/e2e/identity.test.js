// Namespace / with the official socket.io-client: consent, tokens, the
// session event, places from IP (trusted proxies only) and device, bans, and
// the not_authenticated rule of /match and /chat (protocol.md §2, §3).
import test from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { Manager } from "socket.io-client";
import { startChatd, geoDb } from "./harness.js";
import { startRedis } from "./redis.js";
import { connectGuest, next } from "./guests.js";

function makeToken(secret, guestId, exp) {
  const signed = `v1.${guestId}.${exp}`;
  return `${signed}.${createHmac("sha256", secret).update(signed).digest("base64url")}`;
}
const now = () => Math.floor(Date.now() / 1000);
const newId = () => randomBytes(16).toString("base64url");

async function node(t, env = {}) {
  const redis = await startRedis(t);
  const chatd = await startChatd(t, { REDIS_URL: redis.url, GEOIP_DB: geoDb, TRUSTED_PROXIES: "127.0.0.1/32", ...env });
  return { redis, chatd, url: chatd.url };
}

async function refused(t, url, opts) {
  await assert.rejects(connectGuest(t, url, opts), (e) => { assert.equal(e.message, opts.expect); return true; });
}

test("consent must be exactly true", async (t) => {
  const { url } = await node(t);
  for (const consent of [false, "true", 1, null, undefined])
    await refused(t, url, { consent, expect: "consent_required" });
});

test("a new guest gets an id, a token that verifies, and its place", async (t) => {
  const { url, chatd } = await node(t);
  const g = await connectGuest(t, url, { xff: "10.1.2.3" });
  const s = g.session;
  assert.match(s.guestId, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(s.resumed, false);
  assert.equal(s.token, makeToken(chatd.secret, s.guestId, s.expiresAt));
  assert.ok(Math.abs(s.expiresAt - (now() + 86400)) < 5);
  assert.deepEqual(s.geo, { city: "Paris", country: "FR", source: "ip" });
});

test("a valid token resumes the guest with a refreshed token, on another node sharing the secret", async (t) => {
  const { redis, chatd } = await node(t);
  const other = await startChatd(t, { REDIS_URL: redis.url }, { secret: chatd.secret });
  const gid = newId();
  const old = makeToken(chatd.secret, gid, now() + 100);
  const g = await connectGuest(t, other.url, { token: old });
  assert.equal(g.session.guestId, gid);
  assert.equal(g.session.resumed, true);
  assert.notEqual(g.session.token, old);
  assert.ok(g.session.expiresAt > now() + 86000);
});

test("forged, expired, foreign and malformed tokens give a new guest, never an error", async (t) => {
  const { url, chatd } = await node(t);
  const gid = newId();
  const good = makeToken(chatd.secret, gid, now() + 1000);
  const tokens = [
    good.slice(0, -2) + (good.endsWith("AA") ? "BB" : "AA"), // altered mac
    makeToken(chatd.secret, gid, now() - 10), // expired
    makeToken("another secret of at least thirty-two bytes", gid, now() + 1000), // another secret
    `v1.${gid}.${now() + 1000}`, "v2.x.y.z", "", "v1....", "x".repeat(5000), 42, { a: 1 },
  ];
  for (const token of tokens) {
    const g = await connectGuest(t, url, { token });
    assert.equal(g.session.resumed, false, `token ${String(token).slice(0, 40)}`);
    assert.notEqual(g.session.guestId, gid);
    g.root.disconnect();
  }
});

test("X-Forwarded-For is believed only from a trusted proxy, read from the right", async (t) => {
  const trusted = await node(t);
  const cases = [
    ["10.4.0.9", { city: "Berlin", country: "DE", source: "ip" }],
    ["10.9.1.1, 10.8.3.3", { city: "São Paulo", country: "BR", source: "ip" }], // rightmost untrusted wins
    ["2001:db8:6::5", { city: "New York", country: "US", source: "ip" }],
    ["10.20.0.1", { city: null, country: "FR", source: "ip" }],
    ["192.0.2.44", { city: null, country: null, source: "unknown" }],
    ["not an address", { city: null, country: null, source: "unknown" }],
  ];
  for (const [xff, geo] of cases) {
    const g = await connectGuest(t, trusted.url, { xff });
    assert.deepEqual(g.session.geo, geo, xff);
    g.root.disconnect();
  }
  const untrusted = await node(t, { TRUSTED_PROXIES: "" });
  const g = await connectGuest(t, untrusted.url, { xff: "10.1.2.3" });
  assert.deepEqual(g.session.geo, { city: null, country: null, source: "unknown" });
});

test("a device location is used when valid, rounded; absurd ones are ignored", async (t) => {
  const { url, redis } = await node(t);
  const g = await connectGuest(t, url, { xff: "10.1.2.3", location: { lat: 48.85837, lon: 2.294481 } });
  assert.deepEqual(g.session.geo, { city: "Paris", country: "FR", source: "device" });
  const r = redis.client();
  const [lat, lon] = await r.call("HMGET", `{nc}:g:${g.session.guestId}`, "lat", "lon");
  assert.equal(lat, "48.8600");
  assert.equal(lon, "2.2900");
  for (const location of [{ lat: 91, lon: 0 }, { lat: 0, lon: -181 }, { lat: "48", lon: "2" }, [48, 2], "here",
    { lat: 1e308 * 10, lon: 0 }, { lon: 2 }]) {
    const h = await connectGuest(t, url, { xff: "10.4.0.1", location });
    assert.deepEqual(h.session.geo, { city: "Berlin", country: "DE", source: "ip" }, JSON.stringify(location));
    h.root.disconnect();
  }
});

test("/match and /chat before / is accepted get not_authenticated", async (t) => {
  const { url } = await node(t);
  for (const nsp of ["/match", "/chat"]) {
    const manager = new Manager(url, { transports: ["websocket"], forceNew: true, reconnection: false });
    t.after(() => manager.engine?.close());
    const s = manager.socket(nsp);
    const err = await next(s, "connect_error");
    assert.equal(err.message, "not_authenticated");
  }
});

test("a banned guest id or IP is refused with banned", async (t) => {
  const { url, redis } = await node(t);
  const r = redis.client();
  const g = await connectGuest(t, url);
  const token = g.session.token;
  g.root.disconnect();
  await r.call("SET", `{nc}:ban:g:${g.session.guestId}`, "test", "EX", 60);
  await refused(t, url, { token, expect: "banned" });
  await r.call("SET", "{nc}:ban:ip:10.7.7.7", "test", "EX", 60);
  await refused(t, url, { xff: "10.7.7.7", expect: "banned" });
  const ok = await connectGuest(t, url, { xff: "10.7.7.8" });
  assert.equal(ok.session.resumed, false);
});

test("logs hold no tokens, no precise locations", async (t) => {
  const { url, chatd } = await node(t, { CHATD_LOG_LEVEL: "debug" });
  const g = await connectGuest(t, url, { xff: "10.1.2.3", location: { lat: 48.85837, lon: 2.294481 } });
  await g.ask("match:request", {});
  assert.ok(!chatd.proc.stderrText.includes(g.session.token.split(".")[3]));
  assert.ok(!chatd.proc.stderrText.includes("48.858"));
  assert.ok(!chatd.proc.stderrText.includes("48.86"));
});

test("CONNECTs to /, /match and /chat sent at once: the namespaces wait for / and connect", async (t) => {
  const { url, redis } = await node(t);
  const manager = new Manager(url, { transports: ["websocket"], forceNew: true, reconnection: false });
  t.after(() => manager.engine?.close());
  const sockets = ["/", "/match", "/chat"].map((nsp) => manager.socket(nsp, { auth: { consent: true } }));
  await Promise.all(sockets.map((s) => next(s, "connect")));
  // and when / is refused, so are they
  const r = redis.client();
  await r.call("SET", "{nc}:ban:ip:10.6.6.6", "test", "EX", 60);
  const banned = new Manager(url, { transports: ["websocket"], forceNew: true, reconnection: false,
    extraHeaders: { "X-Forwarded-For": "10.6.6.6" } });
  t.after(() => banned.engine?.close());
  const [root, match] = ["/", "/match"].map((nsp) => banned.socket(nsp, { auth: { consent: true } }));
  const [rootErr, matchErr] = [next(root, "connect_error"), next(match, "connect_error")];
  assert.equal((await rootErr).message, "banned");
  assert.equal((await matchErr).message, "not_authenticated");
});

test("a missing geo database: one clear warning at start, every guest unknown, matching still works", async (t) => {
  const { url, chatd } = await node(t, { GEOIP_DB: "/nonexistent/city.mmdb" });
  const a = await connectGuest(t, url, { xff: "10.1.2.3" });
  const b = await connectGuest(t, url, { xff: "10.4.2.3" });
  assert.deepEqual(a.session.geo, { city: null, country: null, source: "unknown" });
  await a.ask("match:request", { scope: "city" }); // nothing known: widens to any
  const prop = next(a.match, "match:proposal");
  await b.ask("match:request", { scope: "city" });
  assert.deepEqual((await prop).peer, { city: null, country: null, distanceKm: null });
  const warnings = chatd.proc.stderrText.split("\n").filter((l) => l.includes("geo database unusable"));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /nonexistent/);
});

test("malformed CONNECT payloads to / get consent_required, and the connection lives on", async (t) => {
  const { url } = await node(t);
  const { rawSocket } = await import("./harness.js");
  const ws = rawSocket(url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket");
  t.after(() => ws.terminate());
  await ws.next();
  for (const bad of ['40{"consent":"yes"}', '40{"token":"v1.a.b.c"}', '40{}', "40"]) {
    ws.send(bad);
    assert.equal((await ws.nextMessage()).data, '44{"message":"consent_required"}', bad);
  }
  ws.send('40{"consent":true,"token":{"x":1},"location":"here"}');
  assert.match((await ws.nextMessage()).data, /^40\{"sid":/);
  assert.match((await ws.nextMessage()).data, /^42\["session",\{"guestId":/);
});

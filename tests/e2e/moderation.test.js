// The moderator HTTP API (protocol.md §6) over real HTTP, against chatd nodes
// with a real redis-server and a SQLite history.
import test from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startChatd, until } from "./harness.js";
import { startRedis } from "./redis.js";
import { connectGuest, matchedPair, next } from "./guests.js";

const KEY = "mod-key-for-tests-0123456789abcdef";
const KEY2 = "second-moderator-key-fedcba9876543210";
// the fingerprint audit entries and bans name a moderator by: never the key
const fingerprint = (key) => `key:${createHash("sha256").update(key).digest("hex").slice(0, 16)}`;

async function setup(t) {
  const redis = await startRedis(t);
  const dir = mkdtempSync(path.join(os.tmpdir(), "moderation-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, "keys"), `# moderators\n${[KEY, KEY2].map((k) => createHash("sha256").update(k).digest("hex")).join("\n")}\n`);
  const env = { REDIS_URL: redis.url, HISTORY_URL: `sqlite:${path.join(dir, "history.db")}`,
    MODERATOR_KEYS_FILE: path.join(dir, "keys"), TRUSTED_PROXIES: "127.0.0.1/32" };
  const n0 = await startChatd(t, { ...env, CHATD_NODE_ID: "n0" });
  const n1 = await startChatd(t, { ...env, CHATD_NODE_ID: "n1" }, { secret: n0.secret });
  const api = async (method, p, { key = KEY, body, xff } = {}) => {
    const res = await fetch(`${n0.url}/api/v1/${p}`, {
      method, headers: { ...(key ? { Authorization: `Bearer ${key}` } : {}), ...(body ? { "Content-Type": "application/json" } : {}),
        ...(xff ? { "X-Forwarded-For": xff } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  return { nodes: [n0, n1], api };
}


test("no key or a wrong key: 401, and nothing is answered", async (t) => {
  const { api, nodes } = await setup(t);
  for (const key of [null, "wrong", "", KEY + "x"]) {
    const r = await api("GET", "sessions", { key });
    assert.equal(r.status, 401, String(key));
    assert.equal(r.body.error, "unauthorized");
  }
  const raw = await fetch(`${nodes[0].url}/api/v1/sessions`, { headers: { Authorization: KEY } }); // no Bearer
  assert.equal(raw.status, 401);
  assert.ok(!nodes[0].proc.stderrText.includes(KEY), "the key never reaches the log");
});

test("a conversation read through the API: sessions, one session, messages paginated in seq order", async (t) => {
  const { api, nodes } = await setup(t);
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  for (let i = 1; i <= 25; i++) await (i % 2 ? a : b).say({ sessionId, id: `m${i}`, text: `text ${i}` });
  const list = await until(async () => { const r = await api("GET", `sessions?guest=${a.session.guestId}`); return r.body.items.length && r; });
  assert.equal(list.status, 200);
  assert.equal(list.body.items[0].sessionId, sessionId);
  assert.equal(list.body.nextCursor, null);
  const one = await api("GET", `sessions/${sessionId}`);
  assert.deepEqual(one.body.guests.sort(), [a.session.guestId, b.session.guestId].sort());
  assert.equal(one.body.endedAt, null);
  await until(async () => (await api("GET", `sessions/${sessionId}/messages?limit=500`)).body.items.length === 25);
  const seqs = [];
  let cursor = null, pages = 0;
  do {
    const r = await api("GET", `sessions/${sessionId}/messages?limit=10${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    assert.equal(r.status, 200);
    for (const m of r.body.items) {
      seqs.push(m.seq);
      assert.equal(m.senderGuestId, m.seq % 2 ? a.session.guestId : b.session.guestId);
      assert.equal(m.text, `text ${m.seq}`);
      assert.ok(m.sentAt > 0 && m.deliveredAt >= m.sentAt);
    }
    cursor = r.body.nextCursor;
    pages++;
  } while (cursor);
  assert.equal(pages, 3);
  assert.deepEqual(seqs, Array.from({ length: 25 }, (_, i) => i + 1));
  // a cursor cannot be edited nor used on another query
  const first = await api("GET", `sessions/${sessionId}/messages?limit=10`);
  const c = first.body.nextCursor;
  const tampered = (c[0] === "7" ? "6" : "7") + c.slice(1);
  assert.equal((await api("GET", `sessions/${sessionId}/messages?limit=10&cursor=${encodeURIComponent(tampered)}`)).body.error, "invalid_cursor");
  assert.equal((await api("GET", `sessions?cursor=${encodeURIComponent(c)}`)).status, 400);
});

test("bad parameters get 400 with a code; unknown ids 404", async (t) => {
  const { api } = await setup(t);
  for (const q of ["sessions?limit=0", "sessions?limit=501", "sessions?limit=ten", "sessions?guest=nope",
    "sessions?since=-5", "reports?status=maybe", "sessions?cursor=abc"]) {
    const r = await api("GET", q);
    assert.equal(r.status, 400, q);
    assert.match(r.body.error, /^invalid_/);
    assert.equal(typeof r.body.message, "string");
  }
  assert.equal((await api("GET", "sessions/AAAAAAAAAAAAAAAAAAAAAA")).status, 404);
  assert.equal((await api("POST", "reports/nope/close")).status, 404);
  assert.equal((await api("GET", "nothing-here")).status, 404);
  assert.equal((await api("DELETE", "sessions")).status, 405);
  for (const body of [{}, { guestId: "x", reason: "r", ttlSeconds: 60 }, { ip: "999.1.1.1", reason: "r", ttlSeconds: 60 },
    { ip: "10.0.0.1", reason: "", ttlSeconds: 60 }, { ip: "10.0.0.1", reason: "r", ttlSeconds: 0 }])
    assert.equal((await api("POST", "bans", { body })).status, 400, JSON.stringify(body));
});

test("reports: a report from chat is listed open, closed by a moderator; every call is audited", async (t) => {
  const { api, nodes } = await setup(t);
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  await b.tell("chat:report", { sessionId, reason: "spam" });
  const open = await until(async () => { const r = await api("GET", "reports?status=open"); return r.body.items.length && r; });
  const rep = open.body.items[0];
  assert.equal(rep.sessionId, sessionId);
  assert.equal(rep.reporterGuestId, b.session.guestId);
  assert.equal(rep.status, "open");
  assert.equal((await api("POST", `reports/${rep.reportId}/close`)).status, 200);
  assert.equal((await api("GET", "reports?status=open")).body.items.length, 0);
  assert.equal((await api("GET", "reports?status=closed")).body.items[0].status, "closed");
  // audit entries are stored in batches (up to 200 ms): wait for the close's, not for a count
  const closed = (x) => x.action === `POST /api/v1/reports/${rep.reportId}/close`;
  const audit = await until(async () => { const r = await api("GET", "audit"); return r.body.items.some(closed) && r; });
  assert.ok(audit.body.items.length >= 4);
  assert.ok(/^key:/.test(audit.body.items.find(closed).moderator));
  void a;
});

test("a ban made through one node disconnects the guest on another within a second, refuses it, and can be lifted", async (t) => {
  const { api, nodes } = await setup(t);
  const g = await connectGuest(t, nodes[1].url);
  const gone = next(g.root, "disconnect", 1000);
  const made = await api("POST", "bans", { body: { guestId: g.session.guestId, reason: "abuse", ttlSeconds: 600 } });
  assert.equal(made.status, 201);
  assert.equal(made.body.guestId, g.session.guestId);
  await gone;
  await assert.rejects(connectGuest(t, nodes[0].url, { token: g.session.token }), /banned/);
  const listed = await api("GET", "bans");
  assert.deepEqual(listed.body.items.map((x) => x.banId), [made.body.banId]);
  assert.equal((await api("DELETE", `bans/${made.body.banId}`)).status, 204);
  assert.equal((await api("DELETE", `bans/${made.body.banId}`)).status, 404);
  const back = await connectGuest(t, nodes[0].url, { token: g.session.token });
  assert.equal(back.session.guestId, g.session.guestId);
});

test("IP bans compare addresses, not spellings: IPv6 forms and IPv4-mapped IPv6", async (t) => {
  const { api, nodes } = await setup(t);
  const cases = [
    { ban: "2001:DB8:1:0:0:0:0:77", client: "2001:db8:1::77", stored: "2001:db8:1::77" },
    { ban: "::ffff:10.1.0.78", client: "10.1.0.78", stored: "10.1.0.78" },
    { ban: "10.1.0.79", client: "::ffff:10.1.0.79", stored: "10.1.0.79" },
    { ban: "::ffff:10.2.0.0/112", client: "10.2.3.4", stored: "10.2.0.0/16" },
  ];
  for (const c of cases) {
    const g = await connectGuest(t, nodes[1].url, { xff: c.client });
    const gone = next(g.root, "disconnect", 1000);
    const made = await api("POST", "bans", { body: { ip: c.ban, reason: "abuse", ttlSeconds: 600 } });
    assert.equal(made.status, 201);
    assert.equal(made.body.ip, c.stored);
    await gone;
    await assert.rejects(connectGuest(t, nodes[0].url, { xff: c.client }), /banned/, c.ban);
  }
  // a neighbour is not covered
  await connectGuest(t, nodes[0].url, { xff: "2001:db8:1::78" });
});

test("the audit answers who banned whom: moderator fingerprint, target, reason and TTL, for the ban and its lifting", async (t) => {
  const { api, nodes } = await setup(t);
  const g = await connectGuest(t, nodes[1].url);
  const gid = g.session.guestId;
  const made = await api("POST", "bans", { body: { guestId: gid, reason: "spam links", ttlSeconds: 600 } });
  assert.equal(made.status, 201);
  assert.equal(made.body.moderator, fingerprint(KEY));
  assert.ok(!JSON.stringify(made.body).includes(KEY));
  assert.equal((await api("GET", "bans")).body.items[0].moderator, fingerprint(KEY));
  const other = await api("POST", "bans", { key: KEY2, body: { ip: "2001:DB8:0:0:0:0:0:5", reason: "abuse", ttlSeconds: 120 } });
  assert.equal(other.status, 201);
  assert.equal(other.body.moderator, fingerprint(KEY2));
  assert.notEqual(fingerprint(KEY), fingerprint(KEY2));
  assert.equal((await api("DELETE", `bans/${made.body.banId}`)).status, 204);

  // entries are stored in batches: wait for the lifting's, then read both
  const lifted = (x) => x.action === `DELETE /api/v1/bans/${made.body.banId}`;
  const byGuest = await until(async () => { const r = await api("GET", `audit?target=${gid}`); return r.body.items.some(lifted) && r; });
  assert.equal(byGuest.body.items.length, 2, JSON.stringify(byGuest.body.items));
  const [lift, create] = byGuest.body.items; // newest first
  for (const e of [lift, create]) {
    assert.equal(e.moderator, fingerprint(KEY));
    assert.equal(e.target, gid);
    assert.equal(e.info.banId, made.body.banId);
    assert.equal(e.info.guestId, gid);
    assert.equal(e.info.reason, "spam links");
    assert.equal(e.info.expiresAt, made.body.expiresAt);
    assert.equal(typeof e.detail, "string"); // the field kept from before
  }
  assert.equal(create.action, "POST /api/v1/bans");
  assert.equal(create.info.ttlSeconds, 600);
  assert.equal(create.info.status, 201);
  assert.equal(lift.info.status, 204);
  assert.equal(lift.info.bannedBy, fingerprint(KEY));

  // an address is found in any spelling; the second moderator shows as another fingerprint
  const byIp = await api("GET", `audit?target=${encodeURIComponent("2001:db8::0:5")}`);
  assert.equal(byIp.status, 200);
  assert.equal(byIp.body.items.length, 1);
  assert.equal(byIp.body.items[0].moderator, fingerprint(KEY2));
  assert.equal(byIp.body.items[0].info.ip, "2001:db8::5");
  assert.equal(byIp.body.items[0].info.ttlSeconds, 120);
  assert.equal(byIp.body.items[0].info.reason, "abuse");
  assert.equal((await api("GET", `audit?target=${"x".repeat(65)}`)).status, 400);
  const all = (await api("GET", "audit?limit=500")).body.items;
  assert.ok(all.every((e) => e.moderator === "anonymous" || /^key:[0-9a-f]{16}$/.test(e.moderator)));
  assert.ok(!nodes[0].proc.stderrText.includes(KEY) && !nodes[0].proc.stderrText.includes(KEY2));
});

test("200 calls with a bad key from one address: 10 get 401, the rest 429, and only the 401s leave an audit row and a log line", async (t) => {
  const { api, nodes } = await setup(t);
  const statuses = [];
  for (let i = 0; i < 200; i++) {
    const r = await api("POST", "bans", { key: `wrong-${i}`, xff: "203.0.113.7", body: { ip: "10.0.0.1", reason: "x".repeat(400), ttlSeconds: 60 } });
    statuses.push(r.status);
    if (r.status === 429) assert.equal(r.body.error, "rate_limited");
  }
  assert.deepEqual(statuses, [...Array(10).fill(401), ...Array(190).fill(429)]);
  // another address has its own bucket, and a good key is never refused
  assert.equal((await api("GET", "bans", { key: "wrong", xff: "203.0.113.8" })).status, 401);
  assert.equal((await api("GET", "bans", { xff: "203.0.113.7" })).status, 200);
  // the good call's entry is queued after every refused one: once it shows, they all were stored
  const entries = await until(async () => {
    const r = await api("GET", "audit?limit=500");
    return r.body.items.some((e) => e.moderator === fingerprint(KEY)) && r.body.items;
  });
  const anonymous = entries.filter((e) => e.moderator === "anonymous");
  assert.equal(anonymous.length, 11);
  for (const e of anonymous) {
    assert.ok(e.detail === null && e.info === null && e.target === null, JSON.stringify(e));
    assert.ok(JSON.stringify(e).length < 200);
  }
  const logged = nodes[0].proc.stderrText.split("\n").filter((l) => l.includes("moderator call refused"));
  assert.equal(logged.length, 11);
  const metrics = await (await fetch(`${nodes[0].url}/metrics`)).text();
  assert.match(metrics, /^chatd_modapi_auth_failures_total\{result="unauthorized"\} 11$/m);
  assert.match(metrics, /^chatd_modapi_auth_failures_total\{result="rate_limited"\} 190$/m);
});

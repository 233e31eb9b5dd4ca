// Bounds per client address and per guest (issue 13 B5): refusals are an
// HTTP 429 or CONNECT_ERROR rate_limited, counted in /metrics, and touch no
// other address. Clients come through a trusted proxy hop (X-Forwarded-For)
// so that each test can choose its addresses.
import test from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { startChatd, geoDb, until } from "./harness.js";
import { startRedis } from "./redis.js";
import { connectGuest } from "./guests.js";

async function node(t, env) {
  const redis = await startRedis(t);
  return startChatd(t, { REDIS_URL: redis.url, GEOIP_DB: geoDb, TRUSTED_PROXIES: "127.0.0.1/32", ...env });
}

const handshake = (url, ip) =>
  fetch(`${url}/socket.io/?EIO=4&transport=polling`, { headers: { "X-Forwarded-For": ip } });

async function refusals(url, limit) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^chatd_limit_refusals_total\\{limit="${limit}"\\} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

// resolves "open" or the HTTP status that refused the upgrade
function wsOutcome(url, ip) {
  const ws = new WebSocket(`${url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`,
    { headers: { "X-Forwarded-For": ip } });
  ws.on("error", () => {});
  return new Promise((resolve) => {
    ws.once("open", () => resolve({ ws, outcome: "open" }));
    ws.once("unexpected-response", (req, res) => resolve({ ws, outcome: res.statusCode }));
  });
}

test("new sessions per address per time are bounded with 429, and other addresses go on", async (t) => {
  const { url } = await node(t, { CHATD_HANDSHAKE_RATE_IP: "5/60" });
  for (let i = 0; i < 5; i++) assert.equal((await handshake(url, "10.20.0.1")).status, 200);
  const refused = await handshake(url, "10.20.0.1");
  assert.equal(refused.status, 429);
  assert.deepEqual(await refused.json(), { code: 3, message: "rate_limited" });
  assert.equal((await wsOutcome(url, "10.20.0.1")).outcome, 429);
  assert.equal((await handshake(url, "10.20.0.2")).status, 200);
  assert.equal(await refusals(url, "handshake_ip"), 2);
});

test("open sessions per address are bounded, and a closed one frees its place", async (t) => {
  const { url } = await node(t, { CHATD_MAX_CONN_PER_IP: "3" });
  const open = [];
  for (let i = 0; i < 3; i++) {
    const r = await wsOutcome(url, "10.21.0.1");
    assert.equal(r.outcome, "open");
    open.push(r.ws);
  }
  const fourth = await wsOutcome(url, "10.21.0.1");
  assert.equal(fourth.outcome, 429);
  assert.equal((await handshake(url, "10.21.0.1")).status, 429); // polling counts the same
  assert.equal((await wsOutcome(url, "10.21.0.2")).outcome, "open");
  open[0].close();
  await until(async () => (await wsOutcome(url, "10.21.0.1")).outcome === "open");
  assert.ok((await refusals(url, "conn_ip")) >= 2);
  for (const ws of open) ws.terminate();
});

test("new guests per address are bounded with rate_limited; a returning guest is welcome", async (t) => {
  const { url } = await node(t, { GUEST_RATE_IP: "3/60" });
  const guests = [];
  for (let i = 0; i < 3; i++) guests.push(await connectGuest(t, url, { xff: "10.22.0.1" }));
  await assert.rejects(connectGuest(t, url, { xff: "10.22.0.1" }), /rate_limited/);
  await connectGuest(t, url, { xff: "10.22.0.2" });
  guests[0].root.disconnect();
  await connectGuest(t, url, { xff: "10.22.0.1", token: guests[0].session.token });
  assert.equal(await refusals(url, "guest_ip"), 1);
});

test("connections of one guest are bounded", async (t) => {
  const { url } = await node(t, { CHATD_MAX_CONN_PER_GUEST: "2" });
  const g = await connectGuest(t, url, { xff: "10.23.0.1" });
  await connectGuest(t, url, { xff: "10.23.0.1", token: g.session.token });
  await assert.rejects(connectGuest(t, url, { xff: "10.23.0.1", token: g.session.token }), /rate_limited/);
  assert.equal(await refusals(url, "conn_guest"), 1);
});

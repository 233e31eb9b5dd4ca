// Bans as every node enforces them (protocol.md §3 banned, §6): written into
// Redis and announced on nc:bans, as the moderator API does.
import test from "node:test";
import assert from "node:assert/strict";
import { startChatd, geoDb } from "./harness.js";
import { startRedis } from "./redis.js";
import { connectGuest, next } from "./guests.js";

async function twoNodes(t) {
  const redis = await startRedis(t);
  const env = { REDIS_URL: redis.url, GEOIP_DB: geoDb, TRUSTED_PROXIES: "127.0.0.1/32" };
  const n0 = await startChatd(t, { ...env, CHATD_NODE_ID: "n0" });
  const n1 = await startChatd(t, { ...env, CHATD_NODE_ID: "n1" }, { secret: n0.secret });
  return { r: redis.client(), nodes: [n0, n1] };
}

test("a guest banned on one node is disconnected on another within a second, and refused after", async (t) => {
  const { r, nodes } = await twoNodes(t);
  const g = await connectGuest(t, nodes[1].url, { xff: "10.1.0.5" });
  await g.ask("match:request", {});
  const bystander = await connectGuest(t, nodes[1].url, { xff: "10.1.0.6" });
  const gone = next(g.root, "disconnect", 1000);
  await r.call("SET", `{nc}:ban:g:${g.session.guestId}`, "b1", "EX", 60);
  await r.call("PUBLISH", "nc:bans", JSON.stringify({ banId: "b1", guestId: g.session.guestId }));
  await gone;
  // its waiting request was withdrawn with it
  assert.equal(await r.call("EXISTS", `{nc}:w:${g.session.guestId}`), 0);
  await assert.rejects(connectGuest(t, nodes[0].url, { token: g.session.token }), /banned/);
  assert.equal(bystander.root.connected, true);
});

test("a CIDR ban closes every connection from that network and refuses new ones", async (t) => {
  const { r, nodes } = await twoNodes(t);
  const inside = await connectGuest(t, nodes[0].url, { xff: "10.9.3.4" });
  const outside = await connectGuest(t, nodes[0].url, { xff: "10.8.3.4" });
  const gone = next(inside.root, "disconnect", 1000);
  await r.call("HSET", "{nc}:bancidr", "b2", `${Date.now() + 60000}|10.9.0.0/16`);
  await r.call("PUBLISH", "nc:bans", JSON.stringify({ banId: "b2", ip: "10.9.0.0/16" }));
  await gone;
  await assert.rejects(connectGuest(t, nodes[1].url, { xff: "10.9.200.1" }), /banned/);
  assert.equal(outside.root.connected, true);
  // lifted: welcome again
  await r.call("HDEL", "{nc}:bancidr", "b2");
  await r.call("PUBLISH", "nc:bans", JSON.stringify({ banId: "b2", lifted: true }));
  const deadline = Date.now() + 2000;
  for (;;) {
    try {
      await connectGuest(t, nodes[1].url, { xff: "10.9.200.1" });
      break;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((res) => setTimeout(res, 50));
    }
  }
});

test("an IP ban closes every matching connection of a worker, past 256 of them", async (t) => {
  const redis = await startRedis(t);
  const node = await startChatd(t, {
    REDIS_URL: redis.url, GEOIP_DB: geoDb, TRUSTED_PROXIES: "127.0.0.1/32", CHATD_WORKERS: "1",
    CHATD_MAX_CONN_PER_IP: "0", CHATD_HANDSHAKE_RATE_IP: "0/1", GUEST_RATE_IP: "0/1",
  });
  const r = redis.client();
  const guests = [];
  for (let i = 0; i < 300; i++) guests.push(await connectGuest(t, node.url, { xff: "10.7.0.9" }));
  const gone = guests.map((g) => next(g.root, "disconnect", 2000));
  await r.call("SET", "{nc}:ban:ip:10.7.0.9", "b3", "EX", 60);
  await r.call("PUBLISH", "nc:bans", JSON.stringify({ banId: "b3", ip: "10.7.0.9" }));
  await Promise.all(gone);
  assert.equal(guests.filter((g) => g.root.connected).length, 0);
});

// The promise of §5 end to end: no message acked to its sender is ever lost.
// chatd nodes with a real redis-server and a real rabbitmq-server.
import test from "node:test";
import assert from "node:assert/strict";
import { startChatd, until } from "./harness.js";
import { startRedis } from "./redis.js";
import { startRabbit } from "./rabbit.js";
import { connectGuest, matchedPair, next, record } from "./guests.js";

async function cluster(t, env = {}) {
  const [redis, rabbit] = await Promise.all([startRedis(t), startRabbit(t)]);
  const base = { REDIS_URL: redis.url, AMQP_URL: rabbit.url, CHAT_DELIVERY_TIMEOUT_MS: "1000", ...env };
  const n0 = await startChatd(t, { ...base, CHATD_NODE_ID: "n0" });
  const n1 = await startChatd(t, { ...base, CHATD_NODE_ID: "n1" }, { secret: n0.secret });
  return { redis, rabbit, nodes: [n0, n1] };
}


// Sends until the ack is ok (the client may retry `unavailable` with the same id).
async function sendAcked(g, payload) {
  let last;
  for (let i = 0; i < 200; i++) {
    const ack = await g.say(payload).catch(() => ({ ok: false, error: "timeout" }));
    last = ack;
    if (ack.ok) return ack;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never acked: ${payload.id} (${JSON.stringify(last)})`);
}

test("the peer is away: messages are queued; it comes back on the other node and gets them in order, once", async (t) => {
  const { nodes } = await cluster(t);
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  const offline = next(a.root, "peer-status");
  b.manager.engine.close();
  await offline;
  const acks = [];
  for (let i = 1; i <= 5; i++) acks.push(await a.say({ sessionId, id: `q${i}`, text: `queued ${i}` }));
  assert.deepEqual(acks.map((x) => [x.seq, x.status]), [1, 2, 3, 4, 5].map((s) => [s, "queued"]));
  const delivered = [];
  a.chat.on("chat:delivered", (d) => delivered.push(d.id));
  const back = await connectGuest(t, nodes[0].url, { token: b.session.token });
  assert.equal(back.userSessions[0].resumed, true);
  await until(() => back.inbox.length >= 5 && delivered.length >= 5);
  assert.deepEqual(back.inbox.map((m) => [m.seq, m.id, m.text]), [1, 2, 3, 4, 5].map((s) => [s, `q${s}`, `queued ${s}`]));
  // once: a new connection of the same guest finds its queue empty
  const again = await connectGuest(t, nodes[1].url, { token: b.session.token });
  const live = await a.say({ sessionId, id: "live", text: "now" });
  assert.equal(live.status, "delivered");
  assert.deepEqual(again.inbox.map((m) => m.id), ["live"]);
});

test("a chatd node killed with SIGKILL mid-conversation: every acked message arrives", async (t) => {
  const { nodes } = await cluster(t);
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  const acked = new Set();
  let stop = false;
  let n = 0;
  const sender = (async () => {
    while (!stop) {
      const id = `m${++n}`;
      await sendAcked(a, { sessionId, id, text: `message ${n}` });
      acked.add(id);
    }
  })();
  await until(() => acked.size >= 20);
  nodes[1].proc.kill("SIGKILL"); // b's node dies with whatever it held
  await until(() => acked.size >= 40, 30000);
  const back = await connectGuest(t, nodes[0].url, { token: b.session.token });
  await until(() => acked.size >= 60, 30000);
  stop = true;
  await sender;
  const got = new Set([...b.inbox, ...back.inbox].map((m) => m.id));
  await until(() => [...acked].every((id) => new Set([...b.inbox, ...back.inbox].map((m) => m.id)).has(id)), 15000)
    .catch(() => {});
  const missing = [...acked].filter((id) => !new Set([...b.inbox, ...back.inbox].map((m) => m.id)).has(id));
  assert.deepEqual(missing, [], `acked ${acked.size}, received ${got.size}`);
});

test("a chatd node killed with SIGKILL: the peers of its guests hear they went, within the location TTL", async (t) => {
  const { nodes } = await cluster(t);
  const pairs = [];
  for (let i = 0; i < 4; i++) pairs.push(await matchedPair(t, nodes[0].url, nodes[1].url));
  const notices = pairs.map(({ a }) => record(a.root, "peer-status"));
  const LOCATION_TTL_MS = 30000; // a dead node's guests' locations are gone by then, and with them any way to tell
  const gone = pairs.slice(1).map(({ a }) => next(a.root, "peer-status", LOCATION_TTL_MS));
  nodes[1].proc.kill("SIGKILL"); // every b was on this node
  // the first b comes back at once on the live node: its peer hears so, and never that it went
  const back = await connectGuest(t, nodes[0].url, { token: pairs[0].b.session.token });
  assert.equal(back.userSessions[0].resumed, true);
  await until(() => notices[0].length >= 1);
  assert.deepEqual(await Promise.all(gone), pairs.slice(1).map(({ sessionId }) => ({ sessionId, online: false })));
  assert.deepEqual(notices[0], [{ sessionId: pairs[0].sessionId, online: true }]);
  // one that went and comes back later: its peer hears that too
  const online = next(pairs[1].a.root, "peer-status");
  await connectGuest(t, nodes[0].url, { token: pairs[1].b.session.token });
  assert.deepEqual(await online, { sessionId: pairs[1].sessionId, online: true });
});

test("a node frozen past the liveness deadline: its guests' peers hear they went, then that they are back, and chat goes on", async (t) => {
  const { nodes } = await cluster(t);
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  const went = next(a.root, "peer-status", 30000);
  nodes[1].proc.kill("SIGSTOP"); // alive, but for the others as good as dead
  t.after(() => { try { nodes[1].proc.kill("SIGCONT"); } catch { /* gone */ } });
  assert.deepEqual(await went, { sessionId, online: false });
  const back = next(a.root, "peer-status");
  nodes[1].proc.kill("SIGCONT");
  assert.deepEqual(await back, { sessionId, online: true });
  assert.equal((await sendAcked(a, { sessionId, id: "after", text: "still there?" })).status, "delivered");
  assert.deepEqual(b.inbox.map((m) => m.id), ["after"]);
});

test("rabbitmq-server restarted mid-conversation: nothing acked is lost", async (t) => {
  const { nodes, rabbit } = await cluster(t);
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  const offline = next(a.root, "peer-status");
  b.manager.engine.close();
  await offline;
  const acked = [];
  for (let i = 1; i <= 5; i++) acked.push((await sendAcked(a, { sessionId, id: `r${i}`, text: `${i}` })).id);
  await rabbit.restart();
  for (let i = 6; i <= 10; i++) acked.push((await sendAcked(a, { sessionId, id: `r${i}`, text: `${i}` })).id);
  const back = await connectGuest(t, nodes[1].url, { token: b.session.token });
  await until(() => acked.every((id) => back.inbox.some((m) => m.id === id)), 20000);
  const seqs = back.inbox.map((m) => m.seq);
  assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
});

test("RabbitMQ down: a message that cannot be delivered live is answered unavailable, never queued", async (t) => {
  const { nodes, rabbit } = await cluster(t);
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  const offline = next(a.root, "peer-status");
  b.manager.engine.close();
  await offline;
  await rabbit.stop();
  assert.deepEqual(await a.say({ sessionId, id: "x1", text: "lost?" }), { ok: false, error: "unavailable" });
  await rabbit.start();
  const ack = await sendAcked(a, { sessionId, id: "x1", text: "lost?" });
  assert.equal(ack.status, "queued");
  assert.equal(ack.seq, 1); // the retry kept its number
});

test("a receipt slower than the delivery timeout: queued and delivered, yet handed to the client once, now and after a reconnect", async (t) => {
  const { nodes } = await cluster(t, { CHAT_DELIVERY_TIMEOUT_MS: "300" });
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  b.holdReceipts = true;
  const ack = await a.say({ sessionId, id: "slow", text: "take your time" });
  assert.equal(ack.status, "queued", "no receipt within the timeout: the broker has it");
  assert.equal(b.inbox.length, 1);
  const delivered = next(a.chat, "chat:delivered");
  b.held.shift()();
  assert.equal((await delivered).id, "slow");
  // a second message shows that nothing else came first; then the same after a reconnect
  b.holdReceipts = false;
  await a.say({ sessionId, id: "after", text: "second" });
  await until(() => b.inbox.length >= 2);
  assert.deepEqual(b.inbox.map((m) => m.id), ["slow", "after"]);
  b.manager.engine.close();
  const back = await connectGuest(t, nodes[1].url, { token: b.session.token });
  await a.say({ sessionId, id: "third", text: "third" });
  await until(() => back.inbox.length >= 1);
  assert.deepEqual(back.inbox.map((m) => m.id), ["third"], "the queued copy of a delivered message is never handed over again");
});

test("a node frozen for 5 s (SIGSTOP) and thawed delivers each message once", async (t) => {
  const { nodes, redis } = await cluster(t, { CHAT_DELIVERY_TIMEOUT_MS: "3000", CHAT_RATE_GUEST: "0/1", CHAT_RATE_IP: "0/1" });
  const { a, b, sessionId } = await matchedPair(t, nodes[0].url, nodes[1].url);
  const r = redis.client();
  const sends = [];
  let i = 0;
  const send = () => { i++; sends.push(sendAcked(a, { sessionId, id: `f${i}`, text: `frozen ${i}` })); };
  for (let k = 0; k < 5; k++) send();
  await Promise.all(sends);
  // frozen with Redis commands in flight: receipts of a burst b is acking
  await new Promise((resolve) => {
    const seen = b.inbox.length;
    const onMessage = () => {
      if (b.inbox.length < seen + 100) return;
      b.chat.off("chat:message", onMessage);
      // Redis holds its answers until 1.5 s after the thaw: the node freezes with
      // receipts in flight, and wakes with a reply timeout long past and no reply
      // yet, the very moment a watchdog that counts the frozen time gives up
      r.call("CLIENT", "PAUSE", "6500", "ALL").then(() => { nodes[1].proc.kill("SIGSTOP"); resolve(); }, resolve);
    };
    b.chat.on("chat:message", onMessage);
    for (let k = 0; k < 300; k++) send();
  });
  t.after(() => { try { nodes[1].proc.kill("SIGCONT"); } catch { /* gone */ } });
  // while b's node stands still, messages wait for their delivery timeout and go to b's queue
  const frozen = setInterval(send, 200);
  await new Promise((r) => setTimeout(r, 5000)); // the freeze itself is what is tested
  clearInterval(frozen);
  nodes[1].proc.kill("SIGCONT");
  for (let k = 0; k < 5; k++) send();
  await Promise.all(sends);
  const ids = Array.from({ length: i }, (_, k) => `f${k + 1}`);
  // at-least-once to b, and exactly once since no node died
  await until(() => ids.every((id) => b.inbox.some((m) => m.id === id)), 30000).catch(() => {});
  assert.deepEqual(ids.filter((id) => !b.inbox.some((m) => m.id === id)), [], "acked, never handed to b");
  // whatever is still queued for b comes to its next connection, ahead of a live message
  b.manager.engine.close();
  const again = await connectGuest(t, nodes[0].url, { token: b.session.token });
  assert.equal((await sendAcked(a, { sessionId, id: "live", text: "after" })).status, "delivered");
  await until(() => again.inbox.some((m) => m.id === "live"));
  const got = [...b.inbox, ...again.inbox].map((m) => m.id);
  assert.deepEqual(ids.filter((id) => got.filter((x) => x === id).length > 1), [], "delivered twice");
});

// The protocol module alone (build/sio-testserver), checked against the
// Engine.IO v4 and Socket.IO v5 specifications.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startTestServer, rawSocket, once } from "./harness.js";

async function pollingSession(base) {
  const r = await fetch(`${base}&transport=polling`);
  assert.equal(r.status, 200);
  const text = await r.text();
  assert.equal(text[0], "0");
  return JSON.parse(text.slice(1)).sid;
}

test("engine: polling handshake, messages both ways, text and binary", async (t) => {
  const { url } = await startTestServer(t, true);
  const base = `${url}/engine.io/?EIO=4`;
  const sid = await pollingSession(base);
  const post = await fetch(`${base}&transport=polling&sid=${sid}`, { method: "POST", body: "4hello\x1ebAQIDBA==\x1e4two" });
  assert.equal(post.status, 200);
  assert.equal(await post.text(), "ok");
  const poll = await fetch(`${base}&transport=polling&sid=${sid}`);
  assert.equal(await poll.text(), "4hello\x1ebAQIDBA==\x1e4two");
});

test("engine: websocket echo of text and binary frames", async (t) => {
  const { url } = await startTestServer(t, true);
  const ws = rawSocket(url.replace("http", "ws") + "/engine.io/?EIO=4&transport=websocket");
  t.after(() => ws.terminate());
  await ws.next();
  ws.send("4hello");
  assert.equal((await ws.nextMessage()).data, "4hello");
  ws.send(Buffer.from([1, 2, 3, 4]));
  const bin = await ws.nextMessage();
  assert.ok(bin.isBinary);
  assert.deepEqual([...bin.data], [1, 2, 3, 4]);
});

test("engine: bad payloads, duplicate polls and timeouts end the session", async (t) => {
  const { url } = await startTestServer(t, true);
  const base = `${url}/engine.io/?EIO=4`;
  let sid = await pollingSession(base);
  const bad = await fetch(`${base}&transport=polling&sid=${sid}`, { method: "POST", body: "abc" });
  assert.equal(bad.status, 400);
  assert.equal((await fetch(`${base}&transport=polling&sid=${sid}`)).status, 400);

  sid = await pollingSession(base);
  const first = fetch(`${base}&transport=polling&sid=${sid}`);
  await new Promise((r) => setTimeout(r, 20)); // let the first poll be held before the second
  const second = await fetch(`${base}&transport=polling&sid=${sid}&t=2`);
  assert.equal(second.status, 400);
  assert.equal(await (await first).text(), "1");

  sid = await pollingSession(base);
  await new Promise((r) => setTimeout(r, 600)); // the timer under test: 300 ms ping + 200 ms timeout
  assert.equal((await fetch(`${base}&transport=polling&sid=${sid}`)).status, 400);
});

test("engine: heartbeat over polling, and close by the client", async (t) => {
  const { url } = await startTestServer(t, true);
  const base = `${url}/engine.io/?EIO=4`;
  let sid = await pollingSession(base);
  for (let i = 0; i < 3; i++) {
    const poll = await fetch(`${base}&transport=polling&sid=${sid}`);
    assert.equal(await poll.text(), "2");
    assert.equal((await fetch(`${base}&transport=polling&sid=${sid}`, { method: "POST", body: "3" })).status, 200);
  }
  sid = await pollingSession(base);
  const [poll] = await Promise.all([
    fetch(`${base}&transport=polling&sid=${sid}`),
    fetch(`${base}&transport=polling&sid=${sid}`, { method: "POST", body: "1" }),
  ]);
  assert.equal(await poll.text(), "6");
  assert.equal((await fetch(`${base}&transport=polling&sid=${sid}`)).status, 400);

  // a poll that loses the race against the close on another connection
  // still ends with a noop, once; after that the session is unknown
  sid = await pollingSession(base);
  assert.equal(await (await fetch(`${base}&transport=polling&sid=${sid}`, { method: "POST", body: "1" })).text(), "ok");
  assert.equal(await (await fetch(`${base}&transport=polling&sid=${sid}`)).text(), "6");
  assert.equal((await fetch(`${base}&transport=polling&sid=${sid}`)).status, 400);
});

test("engine: upgrade from polling to websocket", async (t) => {
  const { url } = await startTestServer(t, true);
  const base = `${url}/engine.io/?EIO=4`;
  const sid = await pollingSession(base);
  const ws = rawSocket(`${url.replace("http", "ws")}/engine.io/?EIO=4&transport=websocket&sid=${sid}`);
  t.after(() => ws.terminate());
  await ws.opened;
  ws.send("2probe");
  assert.equal((await ws.nextMessage()).data, "3probe");
  const poll = await fetch(`${base}&transport=polling&sid=${sid}`);
  assert.equal(await poll.text(), "6");
  ws.send("5");
  ws.send("4hello");
  assert.equal((await ws.nextMessage()).data, "4hello");
  assert.equal((await fetch(`${base}&transport=polling&sid=${sid}`)).status, 400);
  const second = rawSocket(`${url.replace("http", "ws")}/engine.io/?EIO=4&transport=websocket&sid=${sid}`);
  const end = await second.untilClose();
  assert.ok(end.type === "close" || end.status === 400);
  second.terminate();
  ws.send("4still");
  assert.equal((await ws.nextMessage()).data, "4still");
});

async function sioSocket(url) {
  const ws = rawSocket(url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket");
  await ws.next();
  return ws;
}

test("socket.io: connect to namespaces, auth echo, unknown namespace", async (t) => {
  const { url } = await startTestServer(t);
  const ws = await sioSocket(url);
  t.after(() => ws.terminate());
  ws.send('40{"token":"123"}');
  const hs = (await ws.nextMessage()).data;
  assert.match(hs, /^40\{"sid":"[A-Za-z0-9_-]+"\}$/);
  assert.equal((await ws.nextMessage()).data, '42["auth",{"token":"123"}]');
  ws.send('40/custom,{"token":"abc"}');
  assert.match((await ws.nextMessage()).data, /^40\/custom,\{"sid":/);
  assert.equal((await ws.nextMessage()).data, '42/custom,["auth",{"token":"abc"}]');
  ws.send("40/random");
  assert.equal((await ws.nextMessage()).data, '44/random,{"message":"Invalid namespace"}');
  ws.send("41/custom");
  ws.send('42["message","main"]');
  assert.equal((await ws.nextMessage()).data, '42["message-back","main"]');
});

test("socket.io: events, acks and binary attachments", async (t) => {
  const { url } = await startTestServer(t);
  const ws = await sioSocket(url);
  t.after(() => ws.terminate());
  ws.send("40");
  await ws.nextMessage();
  await ws.nextMessage();
  ws.send('42["message",1,"2",{"3":[true]}]');
  assert.equal((await ws.nextMessage()).data, '42["message-back",1,"2",{"3":[true]}]');
  ws.send('42456["message-with-ack",1,"2",{"3":[false]}]');
  assert.equal((await ws.nextMessage()).data, '43456[1,"2",{"3":[false]}]');
  ws.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
  ws.send(Buffer.from([1, 2, 3]));
  ws.send(Buffer.from([4, 5, 6]));
  assert.equal((await ws.nextMessage()).data, '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
  assert.deepEqual([...(await ws.nextMessage()).data], [1, 2, 3]);
  assert.deepEqual([...(await ws.nextMessage()).data], [4, 5, 6]);
  ws.send('452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
  ws.send(Buffer.from([7]));
  ws.send(Buffer.from([8]));
  assert.equal((await ws.nextMessage()).data, '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
  assert.deepEqual([...(await ws.nextMessage()).data], [7]);
  assert.deepEqual([...(await ws.nextMessage()).data], [8]);
});

test("socket.io: invalid packets and a missing CONNECT close the connection", async (t) => {
  const { url } = await startTestServer(t);
  for (const bad of ["4abc", "42{}", '42abc["message-with-ack",1]', '42["connect"]', "40{]"]) {
    const ws = await sioSocket(url);
    ws.send("40");
    await ws.nextMessage();
    await ws.nextMessage();
    ws.send(bad);
    assert.equal((await ws.untilClose()).type, "close", bad);
    ws.terminate();
  }
  const idle = await sioSocket(url);
  assert.equal((await idle.untilClose()).type, "close"); // 1000 ms connect timeout
  idle.terminate();
});

test("socket.io-client: event with ack in both directions, polling and websocket", async (t) => {
  const { url } = await startTestServer(t);
  for (const transports of [["polling"], ["websocket"], ["polling", "websocket"]]) {
    const socket = io(url, { transports, forceNew: true, reconnection: false });
    t.after(() => socket.close());
    await once(socket, "connect");
    const answer = await socket.timeout(2000).emitWithAck("message-with-ack", "hi", { n: 1 });
    assert.deepEqual(answer, "hi"); // the first ack argument
    socket.on("ack-request", (a, b, cb) => cb({ got: [a, b] }));
    const result = once(socket, "ack-result");
    socket.emit("request-ack", "x", 2);
    assert.deepEqual(await result, [{ got: ["x", 2] }]);
    const bin = once(socket, "message-back");
    socket.emit("message", Buffer.from([9, 8, 7]));
    const [back] = await bin;
    assert.deepEqual([...back], [9, 8, 7]);
  }
});

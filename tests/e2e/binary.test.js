// Socket.IO binary packets whose attachments come in a later read than their
// header (issue 13, A2): the waiting packet must own what it keeps, since the
// input that carried the header (a WebSocket read buffer, a fragmented
// message's buffer, a polling body) is gone when the attachment arrives.
// Run with BUILD=build-asan to see a use after free as a sanitizer report.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startTestServer, rawSocket, once } from "./harness.js";

const big = "x".repeat(20000);
const header = `451-/custom,["message",{"_placeholder":true,"num":0},"${big}"]`;
const echoed = `451-/custom,["message-back",{"_placeholder":true,"num":0},"${big}"]`;
const attachment = Buffer.from([1, 2, 3, 250, 0, 7]);

// The server is alive and printed no sanitizer report.
async function assertHealthy(proc, url) {
  const r = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(r.status, 200);
  const report = /(AddressSanitizer|LeakSanitizer|runtime error:)[^\n]*/.exec(proc.stderrText);
  assert.equal(report, null, report && proc.stderrText.slice(report.index, report.index + 3000));
  assert.equal(proc.exitCode, null);
}

async function connectCustom(url) {
  const ws = rawSocket(url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket");
  assert.match((await ws.nextMessage()).data, /^0\{/);
  ws.send("40/custom,");
  assert.match((await ws.nextMessage()).data, /^40\/custom,\{"sid":/);
  assert.equal((await ws.nextMessage()).data, '42/custom,["auth",{}]');
  return ws;
}

// A pong proves the server parsed every frame sent before the ping, so the
// attachment is sure to come in a later read than the header.
async function pingPong(ws) {
  const pong = once(ws, "pong");
  ws.ping();
  await pong;
}

// Compares without printing 20 KB when it fails.
function assertSame(got, want) {
  assert.ok(got === want, `got ${String(got).slice(0, 120)}... (${String(got).length} chars), want ${want.length} chars`);
}

async function assertEcho(ws) {
  const text = await ws.nextMessage();
  assertSame(text.data, echoed);
  const bin = await ws.nextMessage();
  assert.ok(bin.isBinary);
  assert.deepEqual([...bin.data], [...attachment]);
}

test("binary event: a 20 KB header, then its attachment in a later read", { timeout: 20000 }, async (t) => {
  const { proc, url } = await startTestServer(t);
  const ws = await connectCustom(url);
  t.after(() => ws.terminate());
  ws.send(header);
  await pingPong(ws);
  ws.send(attachment);
  await assertEcho(ws);
  await assertHealthy(proc, url);
});

test("binary event: a fragmented header, then its attachment fragmented too", { timeout: 20000 }, async (t) => {
  const { proc, url } = await startTestServer(t);
  const ws = await connectCustom(url);
  t.after(() => ws.terminate());
  ws.send(header.slice(0, 5000), { fin: false });
  ws.send(header.slice(5000), { fin: true });
  await pingPong(ws);
  ws.send(attachment.subarray(0, 2), { binary: true, fin: false });
  ws.send(attachment.subarray(2), { binary: true, fin: true });
  await assertEcho(ws);
  await assertHealthy(proc, url);
});

test("binary event over polling: header and attachment in two POSTs", { timeout: 20000 }, async (t) => {
  const { proc, url } = await startTestServer(t);
  const base = `${url}/socket.io/?EIO=4&transport=polling`;
  const open = await (await fetch(base)).text();
  const at = `${base}&sid=${JSON.parse(open.slice(1)).sid}`;
  const post = async (body) => assert.equal(await (await fetch(at, { method: "POST", body })).text(), "ok");
  // the next packets that are not pings (each ping is answered)
  const received = [];
  const poll = async (n) => {
    while (received.length < n) {
      for (const pkt of (await (await fetch(at)).text()).split("\x1e")) {
        if (pkt === "2") await post("3");
        else received.push(pkt);
      }
    }
    return received.splice(0, n);
  };
  await post("40/custom,");
  const [connected, auth] = await poll(2);
  assert.match(connected, /^40\/custom,\{"sid":/);
  assert.equal(auth, '42/custom,["auth",{}]');
  await post(header);
  await post("b" + attachment.toString("base64"));
  const [text, bin] = await poll(2);
  assertSame(text, echoed);
  assert.equal(bin, "b" + attachment.toString("base64"));
  await assertHealthy(proc, url);
});

test("binary event: attachments past the largest payload close the connection", { timeout: 20000 }, async (t) => {
  const { proc, url } = await startTestServer(t);
  const ws = rawSocket(url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket");
  t.after(() => ws.terminate());
  assert.match((await ws.nextMessage()).data, /^0\{/);
  ws.send("40");
  assert.match((await ws.nextMessage()).data, /^40\{"sid":/);
  assert.equal((await ws.nextMessage()).data, '42["auth",{}]');
  // the test server's max payload is 1,000,000 bytes per message; three
  // attachments of 400,000 each are allowed one by one, not together
  const holders = [0, 1, 2].map((num) => `{"_placeholder":true,"num":${num}}`).join(",");
  ws.send(`453-["message",${holders}]`);
  const part = Buffer.alloc(400000, 1);
  for (let i = 0; i < 3; i++) ws.send(part);
  const end = await ws.nextMessage();
  assert.equal(end.type, "close", `got ${String(end.data).slice(0, 40)} instead of a close`);
  assert.equal(end.code, 1009);
  await assertHealthy(proc, url);
});

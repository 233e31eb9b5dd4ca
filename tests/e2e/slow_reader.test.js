// A client that does not read never makes the node buffer without bound.
// Ping replies never pile up: over polling, one pong waits for the next GET
// however many pings were POSTed. Anything else stops at
// CHATD_MAX_QUEUED_BYTES per connection: the client is closed with 1008, and
// its socket dropped if it does not take even that.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { startChatd, startTestServer, until } from "./harness.js";

test("pings POSTed over polling with no GET are answered by one pong", async (t) => {
  const { url } = await startTestServer(t, true);
  const open = await (await fetch(`${url}/engine.io/?EIO=4&transport=polling`)).text();
  const sid = JSON.parse(open.slice(1)).sid;
  for (let i = 0; i < 200; i++) {
    const r = await fetch(`${url}/engine.io/?EIO=4&transport=polling&sid=${sid}`, { method: "POST", body: "2" });
    assert.equal(r.status, 200);
  }
  const body = await (await fetch(`${url}/engine.io/?EIO=4&transport=polling&sid=${sid}`)).text();
  // the server's own pings may wait there too
  assert.deepEqual(body.split("\x1e").filter((p) => p === "3"), ["3"]);
});

// A WebSocket client on a raw socket that stops reading after the upgrade and
// makes the server answer fast: every "40/nope," (a CONNECT to a namespace
// that does not exist) costs 14 bytes in and gets a CONNECT_ERROR of 40 out.
async function floodingReader(t, port) {
  const s = net.connect(port, "127.0.0.1");
  t.after(() => s.destroy());
  s.on("error", () => {});
  const closed = new Promise((resolve) => s.on("close", resolve));
  await new Promise((resolve) => s.once("connect", resolve));
  s.write(`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  let head = Buffer.alloc(0);
  while (!head.includes("\r\n\r\n")) head = Buffer.concat([head, await new Promise((r) => s.once("data", r))]);
  assert.match(head.toString(), /^HTTP\/1\.1 101/);
  s.pause();
  const rest = head.subarray(head.indexOf("\r\n\r\n") + 4);
  const payload = Buffer.from("40/nope,");
  const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0]), payload]); // masked, key 0
  const burst = Buffer.concat(Array(300).fill(frame));
  const flood = setInterval(() => s.write(burst), 10); // load, not a wait: ~420 KB/s in, 1.2 MB/s out
  t.after(() => clearInterval(flood));
  return { s, closed, rest, stopFlood: () => clearInterval(flood) };
}

async function slowReaderCloses(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^chatd_slow_reader_closes_total (\d+)/m.exec(text)[1]);
}

const deadDeps = { REDIS_URL: "redis://127.0.0.1:1/0", AMQP_URL: "amqp://127.0.0.1:1", CHATD_MAX_QUEUED_BYTES: "262144" };

test("a WebSocket client that stops reading is cut off at CHATD_MAX_QUEUED_BYTES, and dropped if it never reads", async (t) => {
  const node = await startChatd(t, deadDeps);
  const reader = await floodingReader(t, node.port);
  await until(async () => (await slowReaderCloses(node.url)) === 1, 30000);
  // it writes on and never reads: once the node drops the socket, a write fails and tells
  let timer;
  const deadline = new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error("never dropped")), 20000); });
  await Promise.race([reader.closed, deadline]).finally(() => clearTimeout(timer));
  reader.stopFlood();
  const open = await fetch(`${node.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(open.status, 200, "the node serves others");
  assert.equal(await slowReaderCloses(node.url), 1);
});

test("a client cut off for not reading finds close code 1008 behind what was queued when it reads again", async (t) => {
  const node = await startChatd(t, deadDeps);
  const reader = await floodingReader(t, node.port);
  await until(async () => (await slowReaderCloses(node.url)) === 1, 30000);
  reader.stopFlood();
  let buf = reader.rest;
  let answers = 0;
  const close = await new Promise((resolve, reject) => {
    const parse = () => {
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1] & 0x7f, off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf.length < off + len) return;
        const op = buf[0] & 0x0f, body = buf.subarray(off, off + len);
        buf = buf.subarray(off + len);
        if (op === 0x8) return resolve(body.readUInt16BE(0));
        if (op === 0x1 && body.toString().startsWith("44/nope,")) answers++;
      }
    };
    reader.s.on("data", (d) => { buf = Buffer.concat([buf, d]); parse(); });
    reader.s.on("close", () => reject(new Error(`closed without a close frame after ${answers} answers`)));
    reader.s.resume();
  });
  assert.equal(close, 1008);
  assert.ok(answers > 1000, `the answers queued before the cut come first (${answers})`);
});

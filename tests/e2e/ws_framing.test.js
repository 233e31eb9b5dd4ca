// WebSocket framing as a hostile or strict peer sees it: lengths that would
// wrap, close codes that may not be sent, and a second WebSocket on a session
// that was already upgraded.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { randomBytes } from "node:crypto";
import { WebSocket } from "ws";
import { startTestServer } from "./harness.js";

// A WebSocket over a bare TCP socket: the frames we write are ours to get wrong.
async function rawUpgrade(port, path = "/engine.io/?EIO=4&transport=websocket") {
  const sock = net.connect(port, "127.0.0.1");
  await new Promise((resolve, reject) => { sock.once("connect", resolve); sock.once("error", reject); });
  sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  let buf = Buffer.alloc(0);
  const waiters = [];
  let ended = false;
  const wake = () => { for (const w of waiters.splice(0)) w(); };
  sock.on("data", (d) => { buf = Buffer.concat([buf, d]); wake(); });
  sock.on("close", () => { ended = true; wake(); });
  sock.on("error", () => {});
  const more = () => new Promise((r) => (ended ? r() : waiters.push(r)));
  while (buf.indexOf("\r\n\r\n") < 0) {
    if (ended) throw new Error("closed before the 101");
    await more();
  }
  const head = buf.subarray(0, buf.indexOf("\r\n\r\n")).toString();
  assert.match(head, /^HTTP\/1\.1 101 /);
  buf = buf.subarray(buf.indexOf("\r\n\r\n") + 4);
  // the next frame from the server, or null once the connection has ended
  const frame = async () => {
    for (;;) {
      if (buf.length >= 2) {
        let len = buf[1] & 0x7f, h = 2;
        if (len === 126) { len = buf.length >= 4 ? buf.readUInt16BE(2) : -1; h = 4; }
        else if (len === 127) { len = buf.length >= 10 ? Number(buf.readBigUInt64BE(2)) : -1; h = 10; }
        if (len >= 0 && buf.length >= h + len) {
          const f = { opcode: buf[0] & 0x0f, payload: buf.subarray(h, h + len) };
          buf = buf.subarray(h + len);
          return f;
        }
      }
      if (ended) return null;
      await more();
    }
  };
  const closeFrame = async () => {
    for (;;) {
      const f = await frame();
      if (f === null || f.opcode === 8) return f;
    }
  };
  return { sock, frame, closeFrame, ended: () => ended };
}

// One masked client frame; `lenField` replaces the real length with a 64-bit one.
function clientFrame(byte0, payload, lenField) {
  const mask = randomBytes(4);
  let head;
  if (lenField !== undefined) {
    head = Buffer.alloc(10);
    head[0] = byte0; head[1] = 0x80 | 127; head.writeBigUInt64BE(lenField, 2);
  } else if (payload.length < 126) {
    head = Buffer.from([byte0, 0x80 | payload.length]);
  } else {
    head = Buffer.alloc(4); head[0] = byte0; head[1] = 0x80 | 126; head.writeUInt16BE(payload.length, 2);
  }
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
  return Buffer.concat([head, mask, body]);
}

const closeCode = (f) => (f && f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null);

async function stillServes(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/engine.io/?EIO=4&transport=websocket`);
  const first = await new Promise((resolve, reject) => {
    ws.once("message", (d) => resolve(d.toString()));
    ws.once("error", reject);
  });
  assert.match(first, /^0\{"sid":/);
  ws.close();
}

test("a continuation frame declaring nearly 2^64 bytes is refused, and the node lives on", async (t) => {
  const { port } = await startTestServer(t, true);
  const lengths = [0xfffffffffffffff0n, 0xffffffffffffffeen - 20n, 0x7fffffffffffffffn];
  for (const len of lengths) {
    const c = await rawUpgrade(port);
    c.sock.write(clientFrame(0x01, Buffer.alloc(20, 0x61))); // text, FIN=0, 20 bytes
    c.sock.write(Buffer.concat([clientFrame(0x80, Buffer.alloc(0), len), randomBytes(64)]));
    const f = await c.closeFrame();
    // the top bit set is a protocol error; below it, more than the message limit
    assert.equal(closeCode(f), len >= 0x8000000000000000n ? 1002 : 1009, `length ${len}`);
    c.sock.destroy();
  }
  await stillServes(port);
});

test("a message past maxPayload across fragments is closed with 1009", async (t) => {
  const { port } = await startTestServer(t, true);
  const c = await rawUpgrade(port);
  const chunk = Buffer.alloc(60000, 0x61);
  c.sock.write(clientFrame(0x01, Buffer.concat([Buffer.from("4"), chunk])));
  for (let i = 0; i < 17; i++) c.sock.write(clientFrame(0x00, chunk)); // 18 * 60000 > 1,000,000
  assert.equal(closeCode(await c.closeFrame()), 1009);
  c.sock.destroy();
});

test("close codes that may not be sent are answered 1002, valid ones are echoed", async (t) => {
  const { port } = await startTestServer(t, true);
  const code = (n) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
  const cases = [
    ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535].map((n) => [code(n), 1002]),
    [Buffer.from([3]), 1002], // a 1-byte payload
    [Buffer.concat([code(1000), Buffer.from([0xc0, 0xaf])]), 1007], // a reason that is not UTF-8
    [Buffer.alloc(0), 1000],
    [code(1000), 1000], [code(1001), 1001], [code(3000), 3000], [code(4999), 4999],
  ];
  for (const [payload, want] of cases) {
    const c = await rawUpgrade(port);
    c.sock.write(clientFrame(0x88, payload));
    assert.equal(closeCode(await c.closeFrame()), want, `payload ${payload.toString("hex")}`);
    c.sock.destroy();
  }
});

test("a ping timeout closes with a code a strict client accepts, never 1006", async (t) => {
  const { port } = await startTestServer(t, true); // pingInterval 300, pingTimeout 200
  const ws = new WebSocket(`ws://127.0.0.1:${port}/engine.io/?EIO=4&transport=websocket`, { autoPong: true });
  const errors = [];
  ws.on("error", (e) => errors.push(e.message));
  const code = await new Promise((resolve) => ws.on("close", resolve)); // we never answer the Engine.IO pings
  assert.deepEqual(errors, []);
  assert.equal(code, 1000);
});

test("a second WebSocket on an upgraded session is opened and closed, not refused", async (t) => {
  const { port, url } = await startTestServer(t, true);
  const open = await (await fetch(`${url}/engine.io/?EIO=4&transport=polling`)).text();
  const sid = JSON.parse(open.slice(1)).sid;
  const wsUrl = `ws://127.0.0.1:${port}/engine.io/?EIO=4&transport=websocket&sid=${sid}`;
  const first = new WebSocket(wsUrl);
  await new Promise((r) => first.once("open", r));
  const probe = new Promise((r) => first.once("message", (d) => r(d.toString())));
  first.send("2probe");
  assert.equal(await probe, "3probe");
  first.send("5");
  const second = new WebSocket(wsUrl);
  const seen = [];
  second.on("unexpected-response", (req, res) => seen.push(`http ${res.statusCode}`));
  second.on("error", (e) => seen.push(`error ${e.message}`));
  second.on("open", () => seen.push("open"));
  const code = await new Promise((r) => second.on("close", r));
  assert.deepEqual(seen, ["open"]);
  assert.equal(code, 1008);
  const echo = new Promise((r) => first.on("message", (d) => d.toString() !== "2" && r(d.toString())));
  first.send("4hello");
  assert.equal(await echo, "4hello");
  first.close();
});

// HTTP/1.1 only: neither the h2c upgrade nor an HTTP/2 connection preface
// gets HTTP/2 (libh2o 2.2's HTTP/2 has known flood issues, and nothing needs it).
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { startTestServer } from "./harness.js";

// Writes `data` on a fresh connection and resolves with what was read when
// `done(text)` holds or the server closed.
function exchange(port, data, done = () => false) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    const chunks = [];
    s.on("connect", () => s.write(data));
    s.on("data", (d) => {
      chunks.push(d);
      const text = Buffer.concat(chunks).toString("latin1");
      // an HTTP/2 SETTINGS frame is not followed by a close: stop at its first bytes
      if (!text.startsWith("HTTP/1.1") || done(text)) s.destroy();
    });
    s.on("error", reject);
    s.on("close", () => resolve(Buffer.concat(chunks)));
  });
}

test("the HTTP/2 connection preface is refused, not answered with HTTP/2", async (t) => {
  const { port } = await startTestServer(t);
  const preface = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
  const out = await exchange(port, preface);
  assert.match(out.toString("latin1"), /^HTTP\/1\.1 400 /);
});

test("an h2c upgrade is answered as plain HTTP/1.1", async (t) => {
  const { port } = await startTestServer(t);
  const out = await exchange(port,
    "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n" +
    "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", (text) => text.includes("maxPayload"));
  const text = out.toString("latin1");
  assert.match(text, /^HTTP\/1\.1 200 /);
  assert.doesNotMatch(text, /101 Switching/);
  assert.match(text, /"sid":"/);
});

// Bodies framed two ways get 400 and a closed connection: the request behind
// the body, which a proxy in front may not have seen as a request, is never served.
test("conflicting Content-Length, or Content-Length with Transfer-Encoding: 400, closed, nothing behind served", async (t) => {
  const { port, url } = await startTestServer(t);
  const open = await (await fetch(`${url}/socket.io/?EIO=4&transport=polling`)).text();
  const sid = JSON.parse(open.slice(1)).sid;
  const post = `POST /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\n`;
  const behind = "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n";
  const framings = {
    "two lengths": "Content-Length: 2\r\nContent-Length: 40\r\n\r\n4a",
    "length then chunked": "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n4a\r\n0\r\n\r\n",
    "chunked then length": "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n4a\r\n0\r\n\r\n",
    "a list of lengths": "Content-Length: 2, 40\r\n\r\n4a",
  };
  for (const [name, framing] of Object.entries(framings)) {
    const text = (await exchange(port, post + framing + behind)).toString("latin1"); // resolves on close
    assert.match(text, /^HTTP\/1\.1 400 /, name);
    assert.equal(text.match(/HTTP\/1\.1 \d{3}/g).length, 1, `${name}: only one response`);
  }
  // the same length twice is one framing: served, and the connection stays usable
  const text = (await exchange(port, post + "Content-Length: 2\r\nContent-Length: 2\r\n\r\n4a" + behind,
    (t) => (t.match(/HTTP\/1\.1 \d{3}/g) || []).length === 2)).toString("latin1");
  assert.deepEqual(text.match(/HTTP\/1\.1 \d{3}/g), ["HTTP/1.1 200", "HTTP/1.1 200"]);
});

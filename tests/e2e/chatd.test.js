// chatd with the official socket.io-client and raw WebSockets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io, Manager } from "socket.io-client";
import { startChatd, rawSocket, once, stop, until } from "./harness.js";

const wsUrl = (url, q = "") => url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket" + q;

test("default transports: polling, then the upgrade to websocket", async (t) => {
  const { url } = await startChatd(t);
  const socket = io(url, { auth: { consent: true }, forceNew: true, reconnection: false });
  t.after(() => socket.close());
  assert.equal(socket.io.engine.transport.name, "polling");
  const upgraded = once(socket.io.engine, "upgrade");
  await once(socket, "connect");
  await upgraded;
  assert.equal(socket.io.engine.transport.name, "websocket");
  assert.ok(socket.connected);
  // after the upgrade the same connection still opens another namespace
  const chat = socket.io.socket("/chat");
  t.after(() => chat.close());
  await once(chat, "connect");
});

test("websocket only, and CONNECT to /, /match and /chat with an auth payload", async (t) => {
  const { url } = await startChatd(t);
  const manager = new Manager(url, { transports: ["websocket"], reconnection: false, forceNew: true });
  const sockets = ["/", "/match", "/chat"].map((nsp) => manager.socket(nsp, { auth: { consent: true } }));
  t.after(() => sockets.forEach((s) => s.close()));
  await Promise.all(sockets.map((s) => once(s, "connect")));
  assert.equal(manager.engine.transport.name, "websocket");
  for (const s of sockets) assert.ok(typeof s.id === "string" && s.id.length > 0);
});

test("an unknown namespace gets connect_error Invalid namespace", async (t) => {
  const { url } = await startChatd(t);
  const socket = io(url + "/nope", { transports: ["websocket"], forceNew: true, reconnection: false });
  t.after(() => socket.close());
  const [err] = await once(socket, "connect_error");
  assert.equal(err.message, "Invalid namespace");
});

test("handshake carries the configured numbers", async (t) => {
  const { url } = await startChatd(t, { CHATD_PING_INTERVAL_MS: "1234", CHATD_PING_TIMEOUT_MS: "567", CHATD_MAX_PAYLOAD: "4321" });
  const ws = rawSocket(wsUrl(url));
  t.after(() => ws.terminate());
  const { data } = await ws.next();
  assert.match(data, /^0\{/);
  const open = JSON.parse(data.slice(1));
  assert.deepEqual(Object.keys(open).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
  assert.match(open.sid, /^[A-Za-z0-9_-]{20,}$/);
  assert.deepEqual(open.upgrades, []);
  assert.equal(open.pingInterval, 1234);
  assert.equal(open.pingTimeout, 567);
  assert.equal(open.maxPayload, 4321);
});

test("a client that does not answer pings is closed and counted as a zombie", async (t) => {
  const { url } = await startChatd(t, { CHATD_PING_INTERVAL_MS: "300", CHATD_PING_TIMEOUT_MS: "200" });
  const ws = rawSocket(wsUrl(url));
  t.after(() => ws.terminate());
  await ws.next(); // open
  ws.send(`40{"consent":true}`);
  assert.equal((await ws.next()).data.slice(0, 2), "40");
  assert.match((await ws.next()).data, /^42\["session",/);
  assert.equal((await ws.next()).data, "2"); // the ping we do not answer
  const closed = await ws.untilClose();
  assert.equal(closed.type, "close");
  const metrics = await (await fetch(url + "/metrics")).text();
  const zombies = Number(/^chatd_zombie_reaps_total (\d+)$/m.exec(metrics)[1]);
  assert.ok(zombies >= 1, `zombies=${zombies}`);
});

test("a client that answers pings stays connected", async (t) => {
  const { url } = await startChatd(t, { CHATD_PING_INTERVAL_MS: "200", CHATD_PING_TIMEOUT_MS: "200" });
  const ws = rawSocket(wsUrl(url));
  t.after(() => ws.terminate());
  await ws.next();
  ws.send(`40{"consent":true}`);
  await ws.next();
  assert.match((await ws.next()).data, /^42\["session",/);
  for (let i = 0; i < 3; i++) {
    assert.equal((await ws.next()).data, "2");
    ws.send("3");
  }
  assert.equal(ws.readyState, ws.OPEN);
});

test("a frame over maxPayload closes with 1009; other clients are unaffected", async (t) => {
  const { url } = await startChatd(t, { CHATD_MAX_PAYLOAD: "10000" });
  const other = io(url, { transports: ["websocket"], forceNew: true, reconnection: false, auth: { consent: true } });
  t.after(() => other.close());
  await once(other, "connect");
  const ws = rawSocket(wsUrl(url));
  t.after(() => ws.terminate());
  await ws.next();
  ws.send("4" + "x".repeat(20000));
  const closed = await ws.untilClose();
  assert.deepEqual(closed, { type: "close", code: 1009 });
  assert.ok(other.connected);
});

test("a malformed packet closes only its own connection", async (t) => {
  const { url } = await startChatd(t);
  const other = io(url, { transports: ["websocket"], forceNew: true, reconnection: false, auth: { consent: true } });
  t.after(() => other.close());
  await once(other, "connect");
  for (const bad of ["4abc", '42{}', '42abc["x"]', "9", "", "47", '40/chat,{"a":']) {
    const ws = rawSocket(wsUrl(url));
    await ws.next();
    ws.send(`40{"consent":true}`);
    await ws.next();
    ws.send(bad);
    const closed = await ws.untilClose();
    assert.equal(closed.type, "close", `input ${JSON.stringify(bad)}`);
    ws.terminate();
  }
  assert.ok(other.connected);
  // the healthy client still gets answers
  const r = await fetch(url + "/healthz");
  assert.equal(r.status, 200);
});

test("Origin allow-list: 403 for a foreign origin on websocket and polling", async (t) => {
  const { url } = await startChatd(t, { ALLOWED_ORIGINS: "http://good.example" });
  const bad = rawSocket(wsUrl(url), { origin: "http://evil.example" });
  assert.deepEqual(await bad.untilClose(), { type: "http", status: 403 });
  bad.terminate();
  const r = await fetch(url + "/socket.io/?EIO=4&transport=polling", { headers: { origin: "http://evil.example" } });
  assert.equal(r.status, 403);
  const good = rawSocket(wsUrl(url), { origin: "http://good.example" });
  t.after(() => good.terminate());
  assert.match((await good.next()).data, /^0\{/);
  const r2 = await fetch(url + "/socket.io/?EIO=4&transport=polling", { headers: { origin: "http://good.example" } });
  assert.equal(r2.status, 200);
  assert.equal(r2.headers.get("access-control-allow-origin"), "http://good.example");
});

test("handshake errors answer as the reference server", async (t) => {
  const { url } = await startChatd(t);
  const cases = [
    ["/socket.io/?EIO=4&transport=carrier-pigeon", { code: 0, message: "Transport unknown" }],
    ["/socket.io/?transport=polling", { code: 5, message: "Unsupported protocol version" }],
    ["/socket.io/?EIO=3&transport=polling", { code: 5, message: "Unsupported protocol version" }],
    ["/socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAAA", { code: 1, message: "Session ID unknown" }],
    ["/socket.io/?EIO=4&transport=polling&sid=nope", { code: 1, message: "Session ID unknown" }],
  ];
  for (const [p, body] of cases) {
    const r = await fetch(url + p);
    assert.equal(r.status, 400, p);
    assert.deepEqual(await r.json(), body, p);
  }
});

test("a connection without a Socket.IO CONNECT is closed after the connect timeout", async (t) => {
  const { url } = await startChatd(t, { CHATD_CONNECT_TIMEOUT_MS: "500" });
  const ws = rawSocket(wsUrl(url));
  t.after(() => ws.terminate());
  await ws.next();
  const closed = await ws.untilClose();
  assert.equal(closed.type, "close");
});

test("healthz and metrics", async (t) => {
  const { url } = await startChatd(t);
  const ws = rawSocket(wsUrl(url));
  t.after(() => ws.terminate());
  await ws.next();
  assert.equal((await fetch(url + "/healthz")).status, 200);
  const r = await fetch(url + "/metrics");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^text\/plain/);
  const text = await r.text();
  assert.match(text, /^# TYPE chatd_connections_open gauge$/m);
  assert.match(text, /^chatd_connections_open\{transport="websocket"\} 1$/m);
  assert.match(text, /^chatd_connections_open\{transport="polling"\} 0$/m);
  for (const name of ["chatd_connections_closed_total", "chatd_packets_in_total", "chatd_packets_out_total", "chatd_zombie_reaps_total"])
    assert.match(text, new RegExp(`^# TYPE ${name} counter$`, "m"));
});

test("SIGTERM drains: websockets close with 1001 and chatd exits 0", async (t) => {
  const { proc, url } = await startChatd(t);
  const ws = rawSocket(wsUrl(url));
  await ws.next();
  const started = Date.now();
  const exited = stop(proc);
  assert.deepEqual(await ws.untilClose(), { type: "close", code: 1001 });
  const { code } = await exited;
  assert.equal(code, 0);
  assert.ok(Date.now() - started < 5000);
});

test("chatd --help lists the configuration", async () => {
  const { execFileSync } = await import("node:child_process");
  const path = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
  const out = execFileSync(path.resolve(root, process.env.BUILD || "build", "chatd"), ["--help"]).toString();
  for (const v of ["CHATD_LISTEN", "CHATD_WORKERS", "CHATD_NODE_ID", "CHATD_SECRET_FILE", "REDIS_URL", "AMQP_URL",
                   "HISTORY_URL", "GEOIP_DB", "TRUSTED_PROXIES", "ALLOWED_ORIGINS", "MODERATOR_KEYS_FILE",
                   "CHATD_PING_INTERVAL_MS", "CHATD_PING_TIMEOUT_MS", "CHATD_MAX_PAYLOAD", "CHATD_CONNECT_TIMEOUT_MS"])
    assert.ok(out.includes(v), v);
});

// SO_REUSEPORT spreads connections over the workers by their address, so a
// session's requests arrive on any worker. Forty fresh connections all
// landing on the session's own worker has odds of 2^-40; the handoff counter
// proves the other path ran, and every answer must still be right.
test("polling and upgrades work whichever worker receives the request", async (t) => {
  const { url } = await startChatd(t, { CHATD_WORKERS: "2" });
  const http = await import("node:http");
  const agent = new http.Agent({ keepAlive: false });
  const request = (method, path, body) => new Promise((resolve, reject) => {
    const req = http.request(url + path, { method, agent }, (res) => {
      let data = "";
      res.on("data", (d) => { data += d; });
      res.on("end", () => resolve({ status: res.statusCode, body: data }));
    });
    req.on("error", reject);
    req.end(body);
  });
  for (let i = 0; i < 10; i++) {
    const hs = await request("GET", "/socket.io/?EIO=4&transport=polling");
    const sid = JSON.parse(hs.body.slice(1)).sid;
    const q = `/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    assert.equal((await request("POST", q, `40{"consent":true}`)).body, "ok");
    assert.match((await request("GET", q)).body, /^40\{"sid":/);
    assert.equal((await request("POST", q, "1")).body, "ok");
    assert.equal((await request("GET", q)).body, "6"); // the poll racing the close
    assert.equal((await request("GET", q)).status, 400);
  }
  const clients = Array.from({ length: 10 }, () => io(url, { forceNew: true, reconnection: false, auth: { consent: true } }));
  t.after(() => clients.forEach((c) => c.close()));
  await Promise.all(clients.map((c) => once(c.io.engine, "upgrade")));
  for (const c of clients) assert.equal(c.io.engine.transport.name, "websocket");
  const metrics = await (await fetch(url + "/metrics")).text();
  const poll = Number(/^chatd_worker_handoffs_total\{kind="poll"\} (\d+)$/m.exec(metrics)[1]);
  assert.ok(poll > 0, `poll handoffs: ${poll}`);
});

test("close codes a client chooses do not become metric series", async (t) => {
  const { url } = await startChatd(t);
  for (let code = 3000; code < 3040; code++) {
    const ws = rawSocket(wsUrl(url));
    await ws.next();
    ws.close(code);
    await ws.untilClose();
  }
  const text = await (await fetch(url + "/metrics")).text();
  const series = text.split("\n").filter((l) => l.startsWith("chatd_connections_closed_total{"));
  assert.deepEqual(series.filter((l) => !/code="(10(0\d|1[0-5])|other)"/.test(l)), []);
  await until(async () => {
    const m = /^chatd_connections_closed_total\{code="other"\} (\d+)$/m.exec(await (await fetch(url + "/metrics")).text());
    return m && Number(m[1]) >= 40;
  });
});

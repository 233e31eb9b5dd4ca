// A real redis-server for tests (free port, throw-away folder, stopped after
// the test) and a minimal RESP client to look inside it.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { freePort, stop, track, waitForPort } from "./harness.js";

function encode(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const s = Buffer.from(String(a));
    out += `$${s.length}\r\n${s}\r\n`;
  }
  return out;
}

// Parses one reply at `i`; returns [value, next] or null when incomplete.
function parse(buf, i) {
  if (i >= buf.length) return null;
  const eol = buf.indexOf("\r\n", i);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[i]);
  const line = buf.toString("utf8", i + 1, eol);
  const next = eol + 2;
  if (type === "+") return [line, next];
  if (type === "-") return [new Error(line), next];
  if (type === ":") return [Number(line), next];
  if (type === "$") {
    const n = Number(line);
    if (n < 0) return [null, next];
    if (buf.length < next + n + 2) return null;
    return [buf.toString("utf8", next, next + n), next + n + 2];
  }
  if (type === "*") {
    const n = Number(line);
    if (n < 0) return [null, next];
    const arr = [];
    let j = next;
    for (let k = 0; k < n; k++) {
      const r = parse(buf, j);
      if (!r) return null;
      arr.push(r[0]);
      j = r[1];
    }
    return [arr, j];
  }
  throw new Error(`bad RESP type ${type}`);
}

// A connection that pipelines commands; call(...args) resolves with the reply
// (error replies reject).
export function redisClient(port) {
  const sock = net.connect(port, "127.0.0.1");
  let buf = Buffer.alloc(0);
  const waiting = [];
  sock.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const r = parse(buf, 0);
      if (!r) break;
      buf = buf.subarray(r[1]);
      const w = waiting.shift();
      if (r[0] instanceof Error) w.reject(r[0]); else w.resolve(r[0]);
    }
  });
  sock.on("error", (e) => { while (waiting.length) waiting.shift().reject(e); });
  return {
    call(...args) {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        sock.write(encode(args));
      });
    },
    close() { sock.destroy(); },
  };
}

// Starts redis-server; `srv.restart()` stops it and starts it again on the same port.
export async function startRedis(t) {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "redis-"));
  const srv = { port, url: `redis://127.0.0.1:${port}/0`, proc: null, clients: [] };
  srv.start = async () => {
    srv.proc = track(spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "",
      "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--protected-mode", "no"],
      { stdio: ["ignore", "ignore", "pipe"] }));
    await waitForPort(port, srv.proc);
  };
  srv.stop = () => stop(srv.proc);
  srv.restart = async () => { await srv.stop(); await srv.start(); };
  srv.client = () => { const c = redisClient(port); srv.clients.push(c); return c; };
  t.after(async () => {
    for (const c of srv.clients) c.close();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await srv.start();
  return srv;
}

// A pattern subscriber: every published message whose channel matches is
// kept, parsed as JSON; take(pred) resolves with the first one that matches.
export async function redisSubscriber(port, pattern) {
  const sock = net.connect(port, "127.0.0.1");
  let buf = Buffer.alloc(0);
  const seen = [];
  const waiters = [];
  let ready;
  const subscribed = new Promise((r) => { ready = r; });
  sock.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const r = parse(buf, 0);
      if (!r) break;
      buf = buf.subarray(r[1]);
      const [kind, , channel, payload] = r[0];
      if (kind === "psubscribe") ready();
      if (kind !== "pmessage") continue;
      const msg = { channel, ...JSON.parse(payload) };
      seen.push(msg);
      for (const w of [...waiters]) if (w.pred(msg)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(msg); }
    }
  });
  sock.write(encode(["PSUBSCRIBE", pattern]));
  await subscribed;
  return {
    seen,
    take(pred, ms = 5000) {
      const found = seen.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve: (m) => { clearTimeout(timer); resolve(m); } };
        const timer = setTimeout(() => { waiters.splice(waiters.indexOf(w), 1); reject(new Error("no such message")); }, ms);
        waiters.push(w);
      });
    },
    close() { sock.destroy(); },
  };
}

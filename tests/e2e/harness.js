// Starts and stops the servers under test, and collects WebSocket frames so
// that no frame is missed between two awaits (the ws package emits every
// frame of one TCP read synchronously).
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const build = path.resolve(root, process.env.BUILD || "build");
const live = new Set();

process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function waitForPort(port, proc) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 10000;
    const attempt = () => {
      if (proc.exitCode !== null) return reject(new Error(`server exited with ${proc.exitCode}`));
      const s = net.connect(port, "127.0.0.1");
      s.on("connect", () => { s.destroy(); resolve(); });
      s.on("error", () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error("server did not listen"));
        else setTimeout(attempt, 25);
      });
    };
    attempt();
  });
}

export function track(proc) {
  live.add(proc);
  proc.exited = new Promise((resolve) => proc.on("exit", (code, signal) => { live.delete(proc); resolve({ code, signal }); }));
  proc.stderrText = "";
  proc.stderr.on("data", (d) => { proc.stderrText += d; });
  return proc;
}

export async function stop(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exited;
  proc.kill("SIGTERM");
  const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
  const r = await proc.exited;
  clearTimeout(t);
  return r;
}

// Every test client comes from 127.0.0.1, like a whole NAT at once: the
// per-address bounds are off unless a test sets them (limits.test.js does).
export const unboundedAddress = { CHATD_MAX_CONN_PER_IP: "0", CHATD_HANDSHAKE_RATE_IP: "0/1", GUEST_RATE_IP: "0/1" };

// Starts build/chatd on a free port; `env` overrides configuration.
export async function startChatd(t, env = {}, { secret = randomBytes(40).toString("hex") } = {}) {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "chatd-"));
  writeFileSync(path.join(dir, "secret"), secret);
  const proc = track(spawn(path.join(build, "chatd"), [], {
    cwd: dir,
    env: { ...process.env, CHATD_LISTEN: `127.0.0.1:${port}`, CHATD_WORKERS: "2",
           CHATD_SECRET_FILE: path.join(dir, "secret"), ...unboundedAddress, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  }));
  t.after(async () => {
    await stop(proc);
    rmSync(dir, { recursive: true, force: true });
    // under `make asan`, a sanitizer report fails the test that ran the server
    const report = /(AddressSanitizer|LeakSanitizer|runtime error:)[^\n]*/.exec(proc.stderrText);
    if (report) throw new Error(`chatd: ${report[0]}\n${proc.stderrText.slice(report.index, report.index + 3000)}`);
  });
  await waitForPort(port, proc);
  return { proc, port, url: `http://127.0.0.1:${port}`, secret, dir };
}

// Runs build/histctl (the history read side) with `env`; resolves with its parsed JSON output.
export function histctl(args, env) {
  return new Promise((resolve, reject) => {
    const p = spawn(path.join(build, "histctl"), args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    p.stdout.on("data", (d) => { out += d; });
    p.stderr.on("data", (d) => { err += d; });
    p.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`histctl ${args.join(" ")}: ${err}`))));
  });
}

// Resolves with check()'s first truthy value (a rejection counts as not yet),
// polling every 25 ms; for state that no event announces. Rejects after `ms`.
export async function until(check, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve().then(check).catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 25));
  }
}

// The test City database that `make` generates from tests/fixtures/geo/cities.csv.
export const geoDb = path.join(build, "geo/test-city.mmdb");

// Starts build/sio-testserver on a free port (with --engine when asked).
export async function startTestServer(t, engine = false) {
  const port = await freePort();
  const proc = track(spawn(path.join(build, "sio-testserver"), engine ? ["--engine"] : [], {
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "ignore", "pipe"],
  }));
  t.after(() => stop(proc));
  await waitForPort(port, proc);
  return { proc, port, url: `http://127.0.0.1:${port}` };
}

// A raw WebSocket whose frames and close are queued for `next()`.
export function rawSocket(url, options = {}) {
  const ws = new WebSocket(url, options);
  const queue = [];
  const waiters = [];
  const push = (item) => {
    const w = waiters.shift();
    if (w) w(item); else queue.push(item);
  };
  ws.on("message", (data, isBinary) => push({ type: "message", data: isBinary ? data : data.toString(), isBinary }));
  ws.on("close", (code) => push({ type: "close", code }));
  ws.on("unexpected-response", (req, res) => push({ type: "http", status: res.statusCode }));
  ws.on("error", () => {});
  ws.next = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r)));
  // next message, skipping pings
  ws.nextMessage = async () => {
    for (;;) {
      const item = await ws.next();
      if (item.type !== "message" || item.data !== "2") return item;
    }
  };
  ws.untilClose = async () => {
    for (;;) {
      const item = await ws.next();
      if (item.type === "close" || item.type === "http") return item;
    }
  };
  ws.opened = new Promise((resolve) => ws.on("open", resolve));
  return ws;
}

export function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
}

// build/chatbench, the load generator (bench/chatbench): its JSON last line,
// the contract other tools read, against real chatd nodes sharing one
// redis-server; and its answers to bad arguments and to a server that is not
// there. Messages are delivered live, so no broker is needed.
import test from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startChatd, freePort, track } from "./harness.js";
import { startRedis } from "./redis.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const chatbench = path.resolve(root, process.env.BUILD || "build", "chatbench");

const keys = ["guests", "connects_per_s", "matches_per_s", "msgs_per_s", "p50_ms", "p90_ms", "p99_ms", "p999_ms",
  "errors", "rss_kib_per_guest"];

// The benchmark lets the load through: no rate limit on chat or matching.
const unlimited = { CHAT_RATE_GUEST: "0/1", CHAT_RATE_IP: "0/1", MATCH_RATE_GUEST: "0/1", MATCH_RATE_IP: "0/1",
                    CHATD_MAX_CONN_PER_IP: "0", CHATD_HANDSHAKE_RATE_IP: "0/1", GUEST_RATE_IP: "0/1" };

// Runs chatbench; resolves with its exit code, stdout and stderr.
function run(args) {
  assert.ok(existsSync(chatbench), `${chatbench} is missing: run make build/chatbench`);
  const p = track(spawn(chatbench, args, { stdio: ["ignore", "pipe", "pipe"] }));
  let stdout = "";
  p.stdout.on("data", (d) => { stdout += d; });
  return p.exited.then(({ code }) => ({ code, stdout, stderr: p.stderrText }));
}

function lastJson(stdout) {
  const lines = stdout.trimEnd().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

function assertHealthyRun(out, guests) {
  assert.equal(out.code, 0, out.stderr);
  const r = lastJson(out.stdout);
  assert.deepEqual(Object.keys(r), keys);
  assert.equal(r.guests, guests);
  assert.equal(r.errors, 0, out.stdout);
  assert.ok(r.connects_per_s > 0);
  assert.ok(r.matches_per_s > 0, "sessions were formed");
  assert.ok(r.msgs_per_s > 0);
  for (const k of ["p50_ms", "p90_ms", "p99_ms", "p999_ms"]) assert.equal(typeof r[k], "number", k);
  assert.ok(r.p50_ms <= r.p90_ms && r.p90_ms <= r.p99_ms && r.p99_ms <= r.p999_ms, JSON.stringify(r));
  return r;
}

test("20 guests at 200 msgs/s for 2 s: every message acked, latencies and the server's memory per guest", async (t) => {
  const redis = await startRedis(t);
  const chatd = await startChatd(t, { REDIS_URL: redis.url, ...unlimited });
  const out = await run(["--url", chatd.url, "--guests", "20", "--rate", "200", "--duration", "2",
    "--pids", String(chatd.proc.pid)]);
  const r = assertHealthyRun(out, 20);
  assert.equal(typeof r.rss_kib_per_guest, "number");
  // 400 messages paced over 2 s, all delivered to the peer: the rate is the one asked for (less when
  // the last acks come late, as they may on a loaded machine or under the sanitizers)
  assert.match(out.stdout, /400\/400 acked ok \s+[\d.]+\s+[\d.]+ msgs\/s \(delivered 400, queued 0\)/);
  assert.ok(r.msgs_per_s > 100 && r.msgs_per_s <= 200, `msgs_per_s ${r.msgs_per_s}`);
  assert.match(out.stdout, /10 sessions/);
});

test("guests spread over two nodes are matched across them; no --pids gives rss_kib_per_guest null", async (t) => {
  const redis = await startRedis(t);
  const n0 = await startChatd(t, { REDIS_URL: redis.url, CHATD_NODE_ID: "n0", ...unlimited });
  const n1 = await startChatd(t, { REDIS_URL: redis.url, CHATD_NODE_ID: "n1", ...unlimited }, { secret: n0.secret });
  const out = await run(["--url", `${n0.url},${n1.url}`, "--guests", "21", "--rate", "100", "--duration", "1"]);
  const r = assertHealthyRun(out, 21); // the odd guest out waits, and that is no error
  assert.equal(r.rss_kib_per_guest, null);
});

test("bad arguments: a non-zero exit and the reason on stderr", async () => {
  const cases = [
    [["--url", "http://127.0.0.1:1", "--guests", "0", "--rate", "1", "--duration", "1"], /--guests/],
    [["--url", "http://127.0.0.1:1", "--guests", "2", "--rate", "-5", "--duration", "1"], /--rate/],
    [["--url", "https://127.0.0.1:1", "--guests", "2", "--rate", "1", "--duration", "1"], /http:\/\//],
    [["--url", "http://127.0.0.1:1", "--guests", "2", "--rate", "1", "--duration", "1", "--pids", "x"], /--pids/],
    [["--url", "http://127.0.0.1:1", "--guests", "2"], /required/],
    [["--bogus"], /--bogus/],
  ];
  for (const [args, reason] of cases) {
    const out = await run(args);
    assert.notEqual(out.code, 0, args.join(" "));
    assert.match(out.stderr, reason, args.join(" "));
    assert.equal(out.stdout, "", args.join(" "));
  }
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /usage: chatbench --url/);
});

test("nobody listening: exit 1 and says no guest could connect", async () => {
  const port = await freePort();
  const out = await run(["--url", `http://127.0.0.1:${port}`, "--guests", "4", "--rate", "10", "--duration", "1"]);
  assert.equal(out.code, 1);
  assert.match(out.stderr, /no guest could connect: .*Connection refused/);
  assert.equal(lastJson(out.stdout).guests, 0);
});

// `make bench` (issue 7): the same scenarios against chatd and against the Node
// peer (bench/peer), driven by build/chatbench; prints a table per scenario,
// rewrites docs/benchmarks.md and appends every chatbench JSON line to
// build/bench/results.json. See bench/README.md.
//
//   BENCH_QUICK=1          smaller counts and 3 s chat phases: a smoke run
//   BENCH_ONLY=a,b         only these scenarios (a name, or a prefix: "chat")
//   BENCH_VERBOSE=1        chatbench's progress lines (one a second) on stderr
//   BENCH_DOC=PATH         where the report goes (docs/benchmarks.md)
//   REDIS_URL, AMQP_URL    use these instead of a throw-away redis-server and
//                          rabbitmq-server. The Redis database of REDIS_URL is
//                          FLUSHDB'd before every run: give a scratch one.
//
// Processes are started with the e2e harness (tests/e2e/harness.js, redis.js,
// rabbit.js); every one is stopped on exit, on error and on Ctrl-C.
import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startChatd, freePort, stop, track, waitForPort } from "../tests/e2e/harness.js";
import { startRedis } from "../tests/e2e/redis.js";
import { startRabbit } from "../tests/e2e/rabbit.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BUILD = path.resolve(root, process.env.BUILD || "build");
const CHATBENCH = path.join(BUILD, "chatbench");
const OUT_DIR = path.join(BUILD, "bench");
const RESULTS = path.join(OUT_DIR, "results.json");
const DOC = path.resolve(root, process.env.BENCH_DOC || "docs/benchmarks.md");
const QUICK = process.env.BENCH_QUICK === "1";
const VERBOSE = process.env.BENCH_VERBOSE === "1";
const ONLY = (process.env.BENCH_ONLY || "").split(",").map((s) => s.trim()).filter(Boolean);
// BENCH_SIDES=chatd: leave the peer out (comparing two builds of chatd)
const SIDES = (process.env.BENCH_SIDES || "").split(",").map((s) => s.trim()).filter(Boolean);

// One process holds at most ~19,000 descriptors (hard RLIMIT_NOFILE 20000,
// not raisable here): no chatd node, chatbench or peer worker gets more guests.
const PER_PROCESS = QUICK ? 3000 : 16000;
const CHAT_S = QUICK ? 3 : 10;

// chatd for a benchmark: no rate limits, two worker threads, SQLite history
// in the node's own throw-away folder (startChatd's cwd).
const CHATD_ENV = {
  CHAT_RATE_GUEST: "0/1", CHAT_RATE_IP: "0/1", MATCH_RATE_GUEST: "0/1", MATCH_RATE_IP: "0/1",
  CHATD_MAX_CONN_PER_IP: "0", CHATD_HANDSHAKE_RATE_IP: "0/1", GUEST_RATE_IP: "0/1",
  CHATD_WORKERS: "2", HISTORY_URL: "sqlite:history.db", CHATD_LOG_LEVEL: "warn",
};
const PEER_WORKERS = 2;

// chatbench needs --rate and --duration above 0: the idle scenarios send one
// message a second for a few seconds, so that every chatbench of a run is
// still connected (and matched) when the RSS is read after the match phase.
const SCENARIOS = [
  { name: "idle-100k", kind: "idle", sides: ["chatd"], guests: QUICK ? 6000 : 100000, rate: 1, duration: 5,
    what: "guests connect, consent and match in pairs, then stay connected; chatd only, several nodes " +
      "(one Redis, one secret) and one chatbench per node" },
  { name: "idle", kind: "idle", sides: ["chatd", "peer"], guests: QUICK ? 2000 : 16000, rate: 1, duration: 3,
    what: "the same at a scale one process of each side can hold: connects/s and memory per guest" },
  { name: "match", kind: "match", sides: ["chatd", "peer"], guests: QUICK ? 2000 : 16000, rate: 1, duration: 1,
    what: "every connected guest asks for a match at once and accepts its proposal" },
  ...[5000, 10000, 20000, 30000, 60000].map((rate) => ({
    name: `chat-${rate / 1000}k`, kind: "chat", sides: ["chatd", "peer"], guests: 2000, rate, duration: CHAT_S,
    what: `paired guests send chat:message at ${fmt(rate)}/s in total for ${CHAT_S} s; every message is ` +
      "acked by its recipient (the receipt) and then by the server to its sender",
  })),
];
// BENCH_ONLY: a scenario's name, else a prefix ("chat": every chat-… scenario)
const picks = (o, s) => (SCENARIOS.some((x) => x.name === o) ? s.name === o : s.name.startsWith(`${o}-`));
const selected = SCENARIOS.filter((s) => ONLY.length === 0 || ONLY.some((o) => picks(o, s)))
  .map((s) => ({ ...s, sides: s.sides.filter((x) => SIDES.length === 0 || SIDES.includes(x)) }))
  .filter((s) => s.sides.length > 0);

// ---------------------------------------------------------------- helpers

function fmt(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(x)) return "-";
  const [int, frac] = Math.abs(x).toFixed(digits).split(".");
  return (x < 0 ? "-" : "") + int.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (frac ? `.${frac}` : "");
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stderr.write(`bench: ${s}\n`);

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

// VmRSS in KiB summed over pids (a pid that is gone counts 0).
function rssKib(pids) {
  let sum = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) sum += Number(m[1]);
    } catch { /* exited */ }
  }
  return sum;
}

// CPU seconds (user + system, all threads) used so far by pids.
const TICK = Number(sh("getconf", ["CLK_TCK"])) || 100;
function cpuSeconds(pids) {
  let sum = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      sum += (Number(f[11]) + Number(f[12])) / TICK; // utime, stime
    } catch { /* exited */ }
  }
  return sum;
}

// ---------------------------------------------------------------- cleanup

// Every started process registers its stop here (startChatd/startRedis/
// startRabbit take `t` and call t.after); run in reverse order.
const cleanups = [];
const t = { after: (fn) => cleanups.push(fn) };
async function cleanUp(upTo = 0) {
  while (cleanups.length > upTo) {
    const fn = cleanups.pop();
    try { await fn(); } catch (e) { log(`cleanup: ${e.message.split("\n")[0]}`); }
  }
}
const running = new Set(); // chatbench processes
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    if (interrupted) { // a second Ctrl-C: no more waiting (harness.js and rabbit.js SIGKILL what is left on exit)
      process.exit(130);
    }
    interrupted = true;
    log(`${sig}: stopping every process started (Ctrl-C again to kill them at once)`);
    for (const p of running) p.kill("SIGKILL");
    cleanUp().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------- services

async function redisFlush(redis) {
  if (redis.own) {
    const c = redis.own.client();
    await c.call("FLUSHALL");
  } else if (sh("redis-cli", ["-u", redis.url, "FLUSHDB"]) !== "OK") {
    throw new Error(`redis-cli -u REDIS_URL FLUSHDB failed`);
  }
}

// Waits for chatd's /readyz (Redis, RabbitMQ and the history store up).
async function chatdReady(node) {
  const deadline = Date.now() + 30000;
  let last = "";
  while (Date.now() < deadline) {
    if (node.proc.exitCode !== null) throw new Error(`chatd exited: ${node.proc.stderrText.slice(-1000)}`);
    try {
      const r = await fetch(`${node.url}/readyz`);
      last = await r.text();
      if (r.status === 200) return;
    } catch (e) { last = e.message; }
    await sleep(100);
  }
  throw new Error(`chatd not ready after 30 s: ${last}`);
}

async function startChatdNodes(n, redis, amqpUrl) {
  const secret = randomBytes(40).toString("hex");
  const nodes = [];
  for (let i = 0; i < n; i++) {
    nodes.push(await startChatd(t, { ...CHATD_ENV, REDIS_URL: redis.url, AMQP_URL: amqpUrl, CHATD_NODE_ID: `bench${i}` },
      { secret }));
  }
  await Promise.all(nodes.map(chatdReady));
  return nodes.map((node) => ({ url: node.url, pids: [node.proc.pid], proc: node.proc, label: "chatd" }));
}

const peerGroups = new Set();
process.on("exit", () => {
  for (const pgid of peerGroups) try { process.kill(-pgid, "SIGKILL"); } catch { /* gone */ }
});

// node bench/peer/server.js in a process group of its own, so that stopping
// it takes its cluster workers along whatever happens to the primary.
async function startPeer(redis) {
  const port = await freePort();
  const proc = track(spawn(process.execPath, [path.join(root, "bench/peer/server.js")], {
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", REDIS_URL: redis.url, WORKERS: String(PEER_WORKERS) },
    stdio: ["ignore", "pipe", "pipe"], detached: true,
  }));
  const killGroup = (sig) => { try { process.kill(-proc.pid, sig); } catch { /* gone */ } };
  peerGroups.add(proc.pid);
  t.after(async () => {
    await stop(proc); // SIGTERM: the primary stops its workers
    killGroup("SIGKILL");
    peerGroups.delete(proc.pid);
  });
  let out = "";
  const pids = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`peer did not start in 30 s: ${out}${proc.stderrText}`)), 30000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /peer: listening on .*\(pids ([\d,]+)\)/.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1].split(",").map(Number)); }
    });
    proc.exited.then(() => { clearTimeout(timer); reject(new Error(`peer exited: ${out}${proc.stderrText}`)); });
  });
  await waitForPort(port, proc);
  // chatbench reads the RSS of the primary and of the workers
  return [{ url: `http://127.0.0.1:${port}`, pids: [proc.pid, ...pids], proc, label: "peer" }];
}

// ---------------------------------------------------------------- chatbench

const MARKS = ["connect", "match", "chat"]; // chatbench's stderr line at the end of each phase

// Starts one chatbench; `onMark(mark)` when it reports the end of a phase.
// Returns its pid and `done`, a promise of its output.
function chatbench(args, label, onMark, timeoutS) {
  const p = track(spawn(CHATBENCH, args, { stdio: ["ignore", "pipe", "pipe"] }));
  running.add(p);
  let stdout = "";
  let pending = "";
  p.stdout.on("data", (d) => { stdout += d; });
  p.stderr.on("data", (d) => {
    pending += d;
    let i;
    while ((i = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, i);
      pending = pending.slice(i + 1);
      const m = /^chatbench: (connect|match|chat): /.exec(line);
      if (m) onMark(m[1]);
      if (VERBOSE || m || /^chatbench: (no |interrupted)/.test(line)) process.stderr.write(`  ${label} ${line}\n`);
    }
  });
  const timer = setTimeout(() => {
    log(`${label}: chatbench still running after ${timeoutS} s: interrupting it`);
    p.kill("SIGINT");
    setTimeout(() => p.kill("SIGKILL"), 15000).unref();
  }, timeoutS * 1000);
  // 'close': the exit and the end of stdout (the JSON line may come after 'exit')
  const closed = new Promise((resolve) => p.on("close", resolve));
  const done = Promise.all([p.exited, closed]).then(([{ code, signal }]) => {
    clearTimeout(timer);
    running.delete(p);
    const lines = stdout.trimEnd().split("\n");
    let json = null;
    try { json = JSON.parse(lines[lines.length - 1]); } catch { /* none */ }
    const firstError = /^first error\s+(.*)$/m.exec(stdout)?.[1] ?? null;
    const chatLine = /\(delivered (\d+), queued (\d+)\)/.exec(stdout);
    const duplicates = Number(/^duplicates\s+(\d+)/m.exec(stdout)?.[1] ?? 0);
    return { code, signal, json, stdout, stderr: p.stderrText, firstError, duplicates, pid: p.pid,
             delivered: chatLine ? Number(chatLine[1]) : null, queued: chatLine ? Number(chatLine[2]) : null };
  });
  return { pid: p.pid, done };
}

// One side of one scenario: fresh servers, the guests split over one
// chatbench per server process (each within the descriptor limit), run at
// once; figures summed (rates, errors) or weighted by guests (RSS).
async function runSide(sc, side, ctx) {
  const mark = cleanups.length;
  const started = Date.now();
  try {
    await redisFlush(ctx.redis);
    const nodesWanted = side === "chatd" ? Math.ceil(sc.guests / PER_PROCESS) : 1;
    const servers = side === "chatd"
      ? await startChatdNodes(nodesWanted, ctx.redis, ctx.amqpUrl)
      : await startPeer(ctx.redis);
    const serverPids = servers.flatMap((s) => s.pids);
    const redisPids = ctx.redis.own ? [ctx.redis.own.proc.pid] : [];
    // (more than one chatbench on the peer would each read the RSS of the same pids: no scenario does it)
    const n = side === "chatd" ? servers.length : Math.ceil(sc.guests / PER_PROCESS);
    const shares = Array.from({ length: n }, (_, i) => Math.floor(sc.guests / n) + (i < sc.guests % n ? 1 : 0));

    // snapshots of memory and CPU when every chatbench is past a phase
    const rss0 = rssKib(serverPids);
    const snaps = { start: { at: Date.now(), cpu: cpuSeconds(serverPids), redis: cpuSeconds(redisPids), bench: 0 } };
    const passed = Object.fromEntries(MARKS.map((m) => [m, 0]));
    const benchPids = [];
    const snap = (m) => {
      snaps[m] = { at: Date.now(), cpu: cpuSeconds(serverPids), redis: cpuSeconds(redisPids), bench: cpuSeconds(benchPids),
                   rss: rssKib(serverPids) };
    };
    const onMark = (m) => { if (++passed[m] === n) snap(m); };

    const timeoutS = 150 + sc.duration + 30;
    const runs = shares.map((guests, i) => {
      const target = servers[i % servers.length];
      const args = ["--url", target.url, "--guests", String(guests), "--rate", String(sc.rate / n),
        "--duration", String(sc.duration), "--pids", target.pids.join(",")];
      const label = `[${sc.name} ${side}${n > 1 ? ` ${i + 1}/${n}` : ""}]`;
      const r = chatbench(args, label, onMark, timeoutS);
      benchPids.push(r.pid);
      return r.done.then((res) => ({ ...res, args, guestsAsked: guests }));
    });
    const benches = await Promise.all(runs);
    const exitedEarly = servers.filter((s) => s.proc.exitCode !== null || s.proc.signalCode !== null);

    for (const [i, b] of benches.entries()) {
      appendFileSync(RESULTS, `${JSON.stringify({ run: ctx.runId, quick: QUICK, scenario: sc.name, side, bench: i,
        args: b.args, exit: b.code, result: b.json })}\n`);
      writeFileSync(path.join(OUT_DIR, `${sc.name}-${side}-${i}.log`), `${b.stdout}\n--- stderr\n${b.stderr}`);
    }

    const problems = [];
    for (const b of benches) {
      if (!b.json) problems.push(`chatbench gave no JSON line (exit ${b.code ?? b.signal}): ${b.stderr.trim().split("\n").slice(-3).join(" / ")}`);
      else if (b.code !== 0) problems.push(`chatbench exit ${b.code}`);
      if (b.firstError) problems.push(`first error: ${b.firstError}`);
      // with several chatbench processes a guest may be paired with another process's guest, whose
      // message numbers overlap its own: chatbench then counts "duplicates" that are not
      if (b.duplicates && n === 1) problems.push(`${fmt(b.duplicates)} chat:message received twice`);
    }
    for (const s of exitedEarly) problems.push(`${s.label} exited during the run: ${s.proc.stderrText.trim().split("\n").slice(-2).join(" / ")}`);
    if (benches.some((b) => !b.json)) throw new Error(problems.join("; "));

    const js = benches.map((b) => b.json);
    const sum = (k) => js.reduce((a, j) => a + (j[k] ?? 0), 0);
    const guests = sum("guests");
    const maxOf = (k) => {
      const v = js.map((j) => j[k]).filter((x) => x !== null);
      return v.length ? Math.max(...v) : null;
    };
    const rssKnown = js.every((j) => j.rss_kib_per_guest !== null) && guests > 0;
    const phase = (a, b, k) => (snaps[a] && snaps[b] && snaps[b].at > snaps[a].at
      ? (snaps[b][k] - snaps[a][k]) / ((snaps[b].at - snaps[a].at) / 1000) : null);
    return {
      side, ok: true, nodes: servers.length, benches: n, guests, guestsAsked: sc.guests,
      connects_per_s: sum("connects_per_s"), matches_per_s: sum("matches_per_s"), msgs_per_s: sum("msgs_per_s"),
      // several chatbench processes: the worst of their percentiles
      p50_ms: maxOf("p50_ms"), p90_ms: maxOf("p90_ms"), p99_ms: maxOf("p99_ms"), p999_ms: maxOf("p999_ms"),
      errors: sum("errors"),
      rss_kib_per_guest: rssKnown ? js.reduce((a, j) => a + j.rss_kib_per_guest * j.guests, 0) / guests : null,
      rss_matched_kib_per_guest: snaps.match && guests > 0 ? (snaps.match.rss - rss0) / guests : null,
      delivered: benches.reduce((a, b) => a + (b.delivered ?? 0), 0),
      queued: benches.reduce((a, b) => a + (b.queued ?? 0), 0),
      // cores busy, averaged over the phase: server processes, redis-server, chatbench
      cpu: {
        connect: { server: phase("start", "connect", "cpu"), redis: phase("start", "connect", "redis") },
        match: { server: phase("connect", "match", "cpu"), redis: phase("connect", "match", "redis"),
                 bench: phase("connect", "match", "bench") },
        chat: { server: phase("match", "chat", "cpu"), redis: phase("match", "chat", "redis"), bench: phase("match", "chat", "bench") },
      },
      problems, wall_s: (Date.now() - started) / 1000,
    };
  } catch (e) {
    return { side, ok: false, error: e.message.split("\n").slice(0, 3).join(" "), wall_s: (Date.now() - started) / 1000 };
  } finally {
    await cleanUp(mark);
  }
}

// ---------------------------------------------------------------- report

const ratio = (a, b) => (a === null || b === null || a === undefined || b === undefined || !b ? null : a / b);

// Rows shown for each kind of scenario: [label, key, digits].
const ROWS = {
  idle: [["guests connected", "guests", 0], ["chatd nodes / peer workers", "procs", 0], ["connects/s", "connects_per_s", 0],
    ["RSS KiB per guest, connected (chatbench)", "rss_kib_per_guest", 2],
    ["RSS KiB per guest, connected and matched", "rss_matched_kib_per_guest", 2], ["matches/s", "matches_per_s", 0],
    ["server CPU, cores (connect phase)", "cpu.connect.server", 2], ["errors", "errors", 0]],
  match: [["guests connected", "guests", 0], ["matches/s", "matches_per_s", 0], ["connects/s", "connects_per_s", 0],
    ["server CPU, cores (match phase)", "cpu.match.server", 2], ["redis-server CPU, cores (match phase)", "cpu.match.redis", 2],
    ["chatbench CPU, cores (match phase)", "cpu.match.bench", 2], ["errors", "errors", 0]],
  chat: [["guests (paired)", "guests", 0], ["msgs/s acked", "msgs_per_s", 0], ["latency p50 ms", "p50_ms", 2],
    ["latency p90 ms", "p90_ms", 2], ["latency p99 ms", "p99_ms", 2], ["latency p99.9 ms", "p999_ms", 2],
    ["delivered live / queued", "dq", 0], ["server CPU, cores (chat phase)", "cpu.chat.server", 2],
    ["redis-server CPU, cores (chat phase)", "cpu.chat.redis", 2], ["chatbench CPU, cores (chat phase)", "cpu.chat.bench", 2],
    ["errors", "errors", 0]],
};

function value(r, key) {
  if (!r || !r.ok) return null;
  if (key === "procs") return r.side === "chatd" ? r.nodes : PEER_WORKERS;
  if (key === "dq") return null;
  return key.split(".").reduce((o, k) => (o === null || o === undefined ? null : o[k]), r) ?? null;
}
function cell(r, key, digits) {
  if (!r) return "";
  if (!r.ok) return "failed";
  if (key === "dq") return `${fmt(r.delivered)} / ${fmt(r.queued)}`;
  return fmt(value(r, key), digits);
}

function scenarioRows(sc, res) {
  const sides = sc.sides;
  const rows = ROWS[sc.kind].map(([label, key, digits]) => {
    const row = [label, ...sides.map((s) => cell(res[s], key, digits))];
    if (sides.length === 2) {
      const q = ["procs", "dq", "guests", "errors"].includes(key) ? null : ratio(value(res.chatd, key), value(res.peer, key));
      row.push(q === null ? "" : `${q >= 10 ? fmt(q, 1) : q >= 1 ? fmt(q, 2) : q.toPrecision(2)}×`);
    }
    return row;
  });
  return { head: ["", ...sides, ...(sides.length === 2 ? ["chatd/peer"] : [])], rows };
}

// Text columns: the first left-aligned, the others right-aligned unless `left`.
function textTable({ head, rows }, left = false) {
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => String(r[i] ?? "").length)));
  const pad = (c, i) => (i === 0 || left ? String(c).padEnd(w[i]) : String(c).padStart(w[i]));
  return all.map((r) => r.map(pad).join("  ").trimEnd()).join("\n");
}
function mdTable({ head, rows }) {
  const line = (r) => `| ${r.join(" | ")} |`;
  return [line(head), line(head.map((_, i) => (i === 0 ? "---" : "---:"))), ...rows.map(line)].join("\n");
}

function targets(results) {
  const r = (name, side) => results[name]?.[side];
  const ok = (x) => x && x.ok;
  const out = [];
  const big = r("idle-100k", "chatd");
  const bigGuests = SCENARIOS[0].guests;
  out.push(["100,000 guests connected at once", ok(big) ? `${fmt(big.guests)} connected, ${fmt(big.errors)} errors` : null,
    ok(big) ? big.guests >= 100000 && big.errors === 0 : null]);
  const rss = ok(big) ? big.rss_matched_kib_per_guest ?? big.rss_kib_per_guest : null;
  out.push([`chatd RSS ≤ 8 KiB per guest (${fmt(bigGuests)} guests, connected and matched)`,
    rss === null ? null : `${fmt(rss, 2)} KiB`, rss === null ? null : rss <= 8]);
  const m = r("match", "chatd");
  out.push(["≥ 5,000 matches/s", ok(m) ? `${fmt(m.matches_per_s)}/s` : null, ok(m) ? m.matches_per_s >= 5000 : null]);
  const chats = SCENARIOS.filter((s) => s.kind === "chat").map((s) => s.name);
  const best = (side) => chats.map((n) => r(n, side)).filter(ok).sort((a, b) => b.msgs_per_s - a.msgs_per_s)[0] ?? null;
  const bc = best("chatd");
  out.push(["≥ 50,000 msgs/s acked end to end", bc ? `${fmt(bc.msgs_per_s)}/s (p99 ${fmt(bc.p99_ms, 2)} ms)` : null,
    bc ? bc.msgs_per_s >= 50000 : null]);
  const c20 = r("chat-20k", "chatd");
  out.push(["p99 ≤ 10 ms at 20,000 msgs/s", ok(c20) ? `${fmt(c20.p99_ms, 2)} ms at ${fmt(c20.msgs_per_s)}/s acked` : null,
    ok(c20) && c20.p99_ms !== null ? c20.p99_ms <= 10 && c20.msgs_per_s >= 19000 : null]);
  // the peer's best clean run against chatd's best run whose p99 is no worse than that one's
  const clean = (x) => ok(x) && x.errors === 0 && x.p99_ms !== null;
  const bpClean = chats.map((n) => r(n, "peer")).filter(clean).sort((a, b) => b.msgs_per_s - a.msgs_per_s)[0] ?? null;
  const bcFair = bpClean ? chats.map((n) => r(n, "chatd")).filter(clean).filter((x) => x.p99_ms <= bpClean.p99_ms)
    .sort((a, b) => b.msgs_per_s - a.msgs_per_s)[0] ?? null : null;
  out.push(["≥ 3× the peer's msgs/s at an equal or better p99",
    bcFair && bpClean ? `chatd ${fmt(bcFair.msgs_per_s)}/s at p99 ${fmt(bcFair.p99_ms, 2)} ms; peer's best without ` +
      `errors ${fmt(bpClean.msgs_per_s)}/s at p99 ${fmt(bpClean.p99_ms, 2)} ms: ` +
      `${fmt(bcFair.msgs_per_s / bpClean.msgs_per_s, 2)}×` : null,
    bcFair && bpClean ? bcFair.msgs_per_s >= 3 * bpClean.msgs_per_s : null]);
  return out;
}
const verdict = (met) => (met === null ? "not measured" : met ? "met" : "**not met**");

function machine() {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown";
  const rabbit = sh("dpkg-query", ["-W", "-f", "${Version}", "rabbitmq-server"]);
  const erlang = sh("dpkg-query", ["-W", "-f", "${Version}", "erlang-base"]);
  const commit = sh("git", ["-C", root, "rev-parse", "--short", "HEAD"]);
  const dirty = sh("git", ["-C", root, "status", "--porcelain", "--untracked-files=no"]);
  return [
    ["CPU", `${cpu}, ${os.cpus().length} cores`],
    ["RAM", `${fmt(os.totalmem() / 2 ** 30, 1)} GiB`],
    ["kernel", `${os.type()} ${os.release()}`],
    ["descriptors per process", sh("sh", ["-c", "echo $(ulimit -Sn) soft, $(ulimit -Hn) hard"]) ?? "?"],
    ["redis-server", sh("redis-server", ["--version"]) ?? "?"],
    ["rabbitmq-server", rabbit ? `${rabbit}${erlang ? ` (Erlang ${erlang})` : ""}` : "?"],
    ["node", process.version],
    ["commit", commit ? `${commit}${dirty ? " with uncommitted changes" : ""}` : "?"],
  ];
}

function previousNotes() {
  const placeholder = "\n_Humans write here: each optimisation, what it changed (figures before and after, with the " +
    "profile that led to it), and where a target is out of reach, where the time or memory goes. `make bench` keeps " +
    "this section as it is._\n";
  if (!existsSync(DOC)) return placeholder;
  const m = /<!-- notes -->([\s\S]*?)<!-- \/notes -->/.exec(readFileSync(DOC, "utf8"));
  return m ? m[1] : placeholder;
}

function command() {
  const env = [];
  if (QUICK) env.push("BENCH_QUICK=1");
  if (ONLY.length) env.push(`BENCH_ONLY=${ONLY.join(",")}`);
  if (process.env.REDIS_URL) env.push("REDIS_URL=…");
  if (process.env.AMQP_URL) env.push("AMQP_URL=…");
  if (process.env.BUILD && process.env.BUILD !== "build") env.push(`BUILD=${process.env.BUILD}`);
  return [...env, "make bench"].join(" ");
}

function writeDoc(ctx, results) {
  const notes = previousNotes();
  const L = [];
  L.push("# Benchmarks", "");
  const quick = QUICK ? ", a **quick run** (BENCH_QUICK=1: smaller counts, 3 s chat phases): a smoke test, not the figures of record" : "";
  L.push(`Written by \`make bench\` (bench/run.mjs) on ${ctx.date}${quick}. Everything but the section ` +
    "\"What changed and what it gave\" is rewritten by each run; the raw figures of every run are in " +
    "`build/bench/results.json`, chatbench's full output of the last run in `build/bench/*.log`.", "");
  L.push("## Machine", "", "| | |", "| --- | --- |", ...ctx.machine.map(([k, v]) => `| ${k} | ${v} |`),
    `| load average | ${ctx.loadStart} at the start, ${ctx.loadEnd} at the end (the machine may be shared) |`, "");
  L.push("## Reproduce", "", "```sh", command(), "```", "",
    `Took ${fmt(ctx.wallS / 60, 1)} min. Redis: ${ctx.redisOwn ? "a throw-away redis-server" : "REDIS_URL"}, emptied before ` +
    `every run; RabbitMQ: ${ctx.rabbitOwn ? "a throw-away rabbitmq-server" : "AMQP_URL"}, one for the whole run. Every ` +
    `run starts fresh servers: chatd with \`CHATD_WORKERS=2\`, no rate limits, SQLite history in a temporary folder; the ` +
    `peer (bench/peer, socket.io with @socket.io/redis-adapter) with \`WORKERS=${PEER_WORKERS}\` processes. Redis, ` +
    "RabbitMQ, the servers and chatbench share the machine's cores. No process holds more than " +
    `${fmt(PER_PROCESS)} guests (the hard descriptor limit is 20,000): more guests means more chatd nodes ` +
    "and one chatbench per node, their figures summed.", "");
  L.push("## Targets", "", "| target | measured | |", "| --- | --- | --- |",
    ...targets(results).map(([name, got, met]) => `| ${name} | ${got ?? "-"} | ${verdict(met)} |`), "",
    "msgs/s is chatbench's `msgs_per_s`: messages acked `ok` per second over the chat phase, so it cannot exceed " +
    "the rate asked for; the top rate is above 50,000 for that reason. The throughput comparison takes each side's " +
    "best msgs/s over the chat scenarios and the p99 of that run; for the ratio, the peer's best run without " +
    "errors against chatd's best run whose p99 is no worse.", "");
  L.push("## Scenarios", "",
    "chatbench connects every guest (WebSocket, CONNECT to `/` with consent, then `/match` and `/chat`), matches them " +
    "in pairs, then chats at the given rate; see bench/chatbench/README.md. Latencies: from send to the recipient's " +
    "receipt. RSS per guest: growth of the server processes' VmRSS over the guests (chatbench: once all are " +
    "connected; \"connected and matched\": read by run.mjs when every session is formed). The peer's RSS counts its " +
    "primary and its workers. Delivered live / queued: messages acked `delivered`, and acked `queued` because the " +
    "recipient's receipt took longer than CHAT_DELIVERY_TIMEOUT_MS (3 s) and chatd put the message in RabbitMQ (the " +
    "peer answers `unavailable` instead, an error). CPU: cores busy on average during the phase (user + system, all threads). For RSS, " +
    "latencies and CPU lower is better.", "");
  for (const sc of selected) {
    const res = results[sc.name] || {};
    L.push(`### ${sc.name}`, "", `${fmt(sc.guests)} guests${sc.kind === "chat" ? `, ${fmt(sc.rate)} msgs/s for ${sc.duration} s` : ""}: ${sc.what}.`, "");
    L.push(mdTable(scenarioRows(sc, res)), "");
    for (const s of sc.sides) {
      const r = res[s];
      if (r && !r.ok) L.push(`- ${s} failed: ${r.error}`);
      else if (r && r.problems.length) L.push(`- ${s}: ${[...new Set(r.problems)].slice(0, 4).join("; ")}`);
    }
    L.push("");
  }
  L.push("## What changed and what it gave", "", `<!-- notes -->${notes}<!-- /notes -->`, "");
  mkdirSync(path.dirname(DOC), { recursive: true });
  writeFileSync(DOC, L.join("\n").replace(/\n{3,}/g, "\n\n"));
}

// ---------------------------------------------------------------- main

async function main() {
  if (!existsSync(CHATBENCH) || !existsSync(path.join(BUILD, "chatd"))) throw new Error(`build ${BUILD}/chatd and chatbench first (make)`);
  if (selected.length === 0) throw new Error(`BENCH_ONLY=${ONLY.join(",")} names no scenario (${SCENARIOS.map((s) => s.name).join(", ")})`);
  // chatd and the peer inherit this process's descriptor limit (chatbench raises its own)
  const soft = Number(sh("sh", ["-c", "ulimit -Sn"]));
  if (soft && soft < PER_PROCESS + 1000) {
    throw new Error(`ulimit -n is ${soft}: a chatd node holds up to ${fmt(PER_PROCESS)} guests here; raise it (ulimit -n 20000)`);
  }
  mkdirSync(OUT_DIR, { recursive: true });
  const t0 = Date.now();
  const ctx = { date: new Date().toISOString().replace(/\.\d+Z$/, "Z"), runId: new Date().toISOString(),
                loadStart: os.loadavg().map((x) => x.toFixed(2)).join(" "), machine: machine() };
  log(`${QUICK ? "quick run, " : ""}scenarios: ${selected.map((s) => s.name).join(", ")}`);

  ctx.redisOwn = !process.env.REDIS_URL;
  ctx.redis = ctx.redisOwn ? { own: await startRedis(t) } : { url: process.env.REDIS_URL };
  if (ctx.redisOwn) ctx.redis.url = ctx.redis.own.url;
  ctx.rabbitOwn = !process.env.AMQP_URL;
  const needsChatd = selected.some((s) => s.sides.includes("chatd"));
  if (needsChatd && ctx.rabbitOwn) {
    log("starting rabbitmq-server (a few seconds)");
    ctx.amqpUrl = (await startRabbit(t)).url;
  } else {
    ctx.amqpUrl = process.env.AMQP_URL;
  }

  const results = {};
  let failed = false;
  for (const sc of selected) {
    if (interrupted) break;
    results[sc.name] = {};
    for (const side of sc.sides) {
      if (interrupted) break;
      log(`${sc.name} ${side}: ${fmt(sc.guests)} guests${sc.kind === "chat" ? `, ${fmt(sc.rate)} msgs/s for ${sc.duration} s` : ""}`);
      const r = await runSide(sc, side, ctx);
      results[sc.name][side] = r;
      if (interrupted) return 130;
      if (!r.ok) { failed = true; log(`${sc.name} ${side} FAILED: ${r.error}`); }
    }
    console.log(`\n== ${sc.name}: ${fmt(sc.guests)} guests${sc.kind === "chat" ? `, ${fmt(sc.rate)} msgs/s for ${sc.duration} s` : ""}`);
    console.log(textTable(scenarioRows(sc, results[sc.name])));
    for (const s of sc.sides) {
      const r = results[sc.name][s];
      if (r?.ok && r.problems.length) console.log(`  ${s}: ${[...new Set(r.problems)].slice(0, 4).join("; ")}`);
    }
  }
  if (interrupted) return 130;

  ctx.wallS = (Date.now() - t0) / 1000;
  ctx.loadEnd = os.loadavg().map((x) => x.toFixed(2)).join(" ");
  console.log("\n== targets");
  console.log(textTable({ head: ["target", "measured", ""], rows: targets(results).map(([n, g, m]) => [n, g ?? "-", verdict(m).replace(/\*/g, "")]) }, true));
  writeDoc(ctx, results);
  console.log(`\nbench: ${path.relative(root, DOC)} written, raw figures appended to ${path.relative(root, RESULTS)} ` +
    `(${fmt(ctx.wallS / 60, 1)} min)`);
  return failed ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  log(`error: ${e.stack ?? e}`);
} finally {
  if (!interrupted) await cleanUp();
}
if (!interrupted) process.exit(code);

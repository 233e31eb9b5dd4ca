// A real rabbitmq-server for tests: free loopback ports (AMQP, distribution,
// and an epmd of its own so that nothing clashes with another node or a
// system epmd), a throw-away folder, every process stopped after the test.
//
// The broker runs in its own process group (detached), so stop() signals the
// whole group: the rabbitmq-server script, beam.smp and its helpers. epmd is
// started here, in the foreground, and the broker is told not to start a
// daemon one (-start_epmd false) that would outlive the test.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort, track, waitForPort } from "./harness.js";

// Debian's /usr/sbin/rabbitmq-server switches to the rabbitmq user when run as
// root (and drops our environment); the script behind it does not.
function rabbitExe() {
  for (const p of ["/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/sbin/rabbitmq-server"]) if (existsSync(p)) return p;
  throw new Error("rabbitmq-server is not installed (apt-get install rabbitmq-server, or make setup)");
}

// Process ids of group `pgid` that are alive (zombies do not count), from /proc.
export function groupMembers(pgid) {
  const out = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try { stat = readFileSync(`/proc/${name}/stat`, "utf8"); } catch { continue; }
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(pgrp) === pgid && state !== "Z") out.push(Number(name));
  }
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function killGroup(pgid, signal) {
  try { process.kill(-pgid, signal); } catch { /* already gone */ }
}

// Signals the group and waits until it is empty; SIGKILL after `ms`.
async function stopGroup(proc, ms) {
  if (!proc) return;
  const pgid = proc.pid;
  killGroup(pgid, "SIGTERM");
  const deadline = Date.now() + ms;
  while (groupMembers(pgid).length > 0 && Date.now() < deadline) await sleep(25);
  if (groupMembers(pgid).length > 0) {
    killGroup(pgid, "SIGKILL");
    while (groupMembers(pgid).length > 0) await sleep(25);
  }
  if (proc.exitCode === null && proc.signalCode === null) await proc.exited;
}

// Starts rabbitmq-server; stop() / start() / restart() keep the data folder,
// so durable queues and persistent messages survive a restart.
export async function startRabbit(t) {
  const exe = rabbitExe();
  const [port, distPort, epmdPort] = [await freePort(), await freePort(), await freePort()];
  const dir = mkdtempSync(path.join(os.tmpdir(), "rabbit-"));
  mkdirSync(path.join(dir, "home"));
  writeFileSync(path.join(dir, "rabbitmq.conf"),
    "disk_free_limit.absolute = 1MB\nvm_memory_high_watermark.relative = 0.9\n");
  writeFileSync(path.join(dir, "enabled_plugins"), "[].\n");
  writeFileSync(path.join(dir, "rabbitmq-env.conf"), "");
  const nodename = `rabbit-test-${process.pid}-${port}@localhost`;
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("RABBITMQ_")));
  Object.assign(env, {
    HOME: path.join(dir, "home"), // the Erlang cookie goes there
    RABBITMQ_NODENAME: nodename,
    RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    ERL_EPMD_PORT: String(epmdPort),
    RABBITMQ_MNESIA_BASE: path.join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: path.join(dir, "log"),
    RABBITMQ_CONFIG_FILE: path.join(dir, "rabbitmq.conf"),
    RABBITMQ_ADVANCED_CONFIG_FILE: path.join(dir, "advanced.config"),
    RABBITMQ_CONF_ENV_FILE: path.join(dir, "rabbitmq-env.conf"),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, "enabled_plugins"),
    RABBITMQ_PID_FILE: path.join(dir, "rabbit.pid"),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "-start_epmd false",
  });
  const srv = { port, url: `amqp://guest:guest@127.0.0.1:${port}/`, dir, nodename, epmdPort, proc: null, epmd: null };

  srv.epmd = track(spawn("epmd", ["-port", String(epmdPort)], { detached: true, stdio: ["ignore", "ignore", "pipe"] }));
  await waitForPort(epmdPort, srv.epmd);

  srv.start = async () => {
    const t0 = Date.now();
    srv.proc = track(spawn(exe, [], { env, cwd: dir, detached: true, stdio: ["ignore", "ignore", "pipe"] }));
    // the broker boots in several seconds; waitForPort gives up after 10
    const deadline = Date.now() + 90000;
    for (;;) {
      try {
        await waitForPort(port, srv.proc);
        break;
      } catch (e) {
        if (srv.proc.exitCode !== null || Date.now() > deadline) {
          throw new Error(`rabbitmq-server did not start: ${e.message}\n${srv.proc.stderrText.slice(-2000)}`);
        }
      }
    }
    srv.bootMs = Date.now() - t0;
  };
  srv.stop = async () => {
    // SIGTERM to the group: the script stops the node cleanly, so durable data is on disk
    await stopGroup(srv.proc, 30000);
  };
  srv.restart = async () => { await srv.stop(); await srv.start(); };
  // Processes of this broker still alive (for tests that check the cleanup).
  srv.survivors = () => {
    const pids = [];
    for (const p of [srv.proc, srv.epmd]) if (p) pids.push(...groupMembers(p.pid));
    try {
      const out = execFileSync("pgrep", ["-f", dir], { encoding: "utf8" });
      pids.push(...out.split("\n").filter(Boolean).map(Number));
    } catch { /* pgrep exits 1 when nothing matches */ }
    return [...new Set(pids)];
  };

  const cleanup = async () => {
    await srv.stop();
    await stopGroup(srv.epmd, 5000);
    rmSync(dir, { recursive: true, force: true });
  };
  t.after(cleanup);
  // the process-wide exit hook of harness.js SIGKILLs only the script; take the group along
  process.on("exit", () => {
    for (const p of [srv.proc, srv.epmd]) if (p && p.exitCode === null && p.signalCode === null) killGroup(p.pid, "SIGKILL");
  });
  try {
    await srv.start();
  } catch (e) {
    await cleanup();
    throw e;
  }
  return srv;
}

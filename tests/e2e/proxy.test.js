// The client address behind real proxies (README: TRUSTED_PROXIES; operations.md
// "Behind a proxy"): Debian's haproxy (option forwardfor adds its own
// X-Forwarded-For line) and nginx ($proxy_add_x_forwarded_for appends to the
// client's line) in front of one chatd that trusts 127.0.0.1. The client comes
// from 127.0.0.2, an address with no city, and forges an X-Forwarded-For with
// a city (short, and padded to 10 KB): it must be placed, banned and limited
// by 127.0.0.2.
import test from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Manager } from "socket.io-client";
import { startChatd, geoDb, freePort, waitForPort, track, stop } from "./harness.js";
import { startRedis } from "./redis.js";
import { first } from "./guests.js";

const CLIENT = "127.0.0.2"; // the true address: no city in tests/fixtures/geo/cities.csv
const FORGED = "10.1.0.5"; // Paris in tests/fixtures/geo/cities.csv
// 10 KB whose first 511 bytes end with the forged address after empty entries
// (commas, which no parser trims as it trims spaces): what a copy cut to 512
// bytes would keep, and read from its right end as the client.
const pad = (addr) => ",".repeat(511 - addr.length) + addr + ", " + `${addr}, `.repeat(1024) + addr;
const PADDED = pad(FORGED);

const configs = {
  haproxy: (port, upstream) => `
global
  maxconn 512
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout tunnel 30s
frontend front
  bind 127.0.0.1:${port}
  option forwardfor
  default_backend chatd
backend chatd
  server chatd 127.0.0.1:${upstream}
`,
  nginx: (port, upstream, dir) => `
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log stderr;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  large_client_header_buffers 4 32k;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://127.0.0.1:${upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`,
};

// Starts `kind` on a free loopback port in front of `chatd`, with its config
// and every path it writes in a temp dir; stopped and removed in t.after.
async function startProxy(t, kind, chatd) {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), `${kind}-`));
  const cfg = path.join(dir, `${kind}.conf`);
  writeFileSync(cfg, configs[kind](port, chatd.port, dir));
  const args = kind === "haproxy" ? ["-db", "-f", cfg] : ["-p", dir, "-c", cfg, "-e", "stderr"];
  const proc = track(spawn(`/usr/sbin/${kind}`, args, { stdio: ["ignore", "ignore", "pipe"] }));
  t.after(async () => {
    await stop(proc);
    rmSync(dir, { recursive: true, force: true });
  });
  await waitForPort(port, proc);
  return { proc, url: `http://127.0.0.1:${port}` };
}

// A guest on / from `from` (both transports unless told), through whatever
// listens at `url`; resolves with the session event, rejects on connect_error.
async function guest(t, url, { xff, from = CLIENT, transports = ["polling", "websocket"] } = {}) {
  const agent = new http.Agent({ localAddress: from });
  const manager = new Manager(url, {
    transports, forceNew: true, reconnection: false, agent, localAddress: from,
    extraHeaders: xff ? { "X-Forwarded-For": xff } : undefined,
  });
  const root = manager.socket("/", { auth: { consent: true } });
  t.after(() => { root.disconnect(); manager.engine?.close(); agent.destroy(); });
  const [event, payload] = await first(root, ["session", "connect_error"]);
  if (event === "connect_error") throw Object.assign(new Error(payload.message), { data: payload.data });
  if (transports.includes("websocket") && transports.length > 1 && manager.engine.transport.name !== "websocket")
    await new Promise((resolve) => manager.engine.once("upgrade", resolve));
  return { root, manager, session: payload };
}

const unknown = { city: null, country: null, source: "unknown" };

async function setup(t, env = {}) {
  const chatd = await startChatd(t, { GEOIP_DB: geoDb, TRUSTED_PROXIES: "127.0.0.1/32", ...env });
  // The forged address has a city when the one who sends it is trusted, and
  // the true one has none: the assertions below can tell them apart.
  const trusted = await guest(t, chatd.url, { xff: FORGED, from: "127.0.0.1", transports: ["websocket"] });
  assert.equal(trusted.session.geo.city, "Paris");
  const direct = await guest(t, chatd.url, { xff: FORGED, transports: ["websocket"] });
  assert.deepEqual(direct.session.geo, unknown);
  return chatd;
}

for (const kind of ["haproxy", "nginx"]) {
  test(`through ${kind}, a forged X-Forwarded-For does not place the client`, async (t) => {
    const chatd = await setup(t);
    const proxy = await startProxy(t, kind, chatd);
    const plain = await guest(t, proxy.url);
    assert.deepEqual(plain.session.geo, unknown);
    const forged = await guest(t, proxy.url, { xff: FORGED });
    assert.deepEqual(forged.session.geo, unknown, "placed by the forged address");
    assert.equal(forged.manager.engine.transport.name, "websocket"); // the upgrade went through the proxy
    const padded = await guest(t, proxy.url, { xff: PADDED });
    assert.deepEqual(padded.session.geo, unknown, "placed by the padded forged address");
    const chain = await guest(t, proxy.url, { xff: `${FORGED}, 127.0.0.1` }); // a forged trusted hop too
    assert.deepEqual(chain.session.geo, unknown, "placed through a forged trusted hop");
  });

  test(`through ${kind}, IP bans hit the true address, not the forged one`, async (t) => {
    const redis = await startRedis(t);
    const r = redis.client();
    const chatd = await setup(t, { REDIS_URL: redis.url });
    const proxy = await startProxy(t, kind, chatd);
    await r.call("SET", `{nc}:ban:ip:${FORGED}`, "bf", "EX", 60);
    await r.call("PUBLISH", "nc:bans", JSON.stringify({ banId: "bf", ip: FORGED }));
    const forged = await guest(t, proxy.url, { xff: FORGED, transports: ["websocket"] });
    assert.deepEqual(forged.session.geo, unknown);
    const padded = await guest(t, proxy.url, { xff: PADDED, transports: ["websocket"] });
    assert.deepEqual(padded.session.geo, unknown);
    const gone = new Promise((resolve) => forged.root.once("disconnect", resolve));
    await r.call("SET", `{nc}:ban:ip:${CLIENT}`, "bt", "EX", 60);
    await r.call("PUBLISH", "nc:bans", JSON.stringify({ banId: "bt", ip: CLIENT }));
    await gone; // the true address's ban closes it
    await assert.rejects(guest(t, proxy.url, { xff: FORGED, transports: ["websocket"] }), /banned/);
  });

  test(`through ${kind}, per-address limits count the true address`, async (t) => {
    const chatd = await setup(t, { CHATD_MAX_CONN_PER_IP: "3" });
    const proxy = await startProxy(t, kind, chatd);
    await guest(t, proxy.url, { xff: "10.2.0.5", transports: ["websocket"] });
    await guest(t, proxy.url, { xff: pad("10.3.0.5"), transports: ["websocket"] });
    // with setup()'s direct guest, that is three sessions from 127.0.0.2: a fourth is refused
    // (429 to the WebSocket handshake), whatever address it forges
    await assert.rejects(guest(t, proxy.url, { xff: pad("10.4.0.5"), transports: ["websocket"] }), /websocket error/);
    await assert.rejects(guest(t, proxy.url, { xff: "10.5.0.5", transports: ["websocket"] }), /websocket error/);
    // another address behind the same proxy is still welcome
    await guest(t, proxy.url, { from: "127.0.0.3", transports: ["websocket"] });
  });
}

// The matcher script alone in a local redis-server (port 6390): N guests in one city
// request at once, every proposal is accepted. Run: node bench/matcher-script.mjs
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { redisClient } from "../tests/e2e/redis.js";
const port = 6390;
const rs = spawn("redis-server", ["--port", String(port), "--save", "", "--appendonly", "no"], { stdio: "ignore" });
await new Promise((r) => setTimeout(r, 300));
const r = redisClient(port);
// the key names' prelude that make generates (BUILD, default build/), then the script
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const body = readFileSync(path.resolve(root, process.env.BUILD || "build", "gen/keys.lua"), "utf8") +
  readFileSync(new URL("../matcher/matcher.lua", import.meta.url), "utf8");
const sha = await r.call("SCRIPT", "LOAD", body);
const rid = () => randomBytes(16).toString("base64url");
const N = 20000;
const ids = Array.from({ length: N }, (_, i) => `G${i}`);
await Promise.all(ids.map((g) => r.call("EVALSHA", sha, 0, "hello", g, "192.0.2.1", "t:x", "c", "2988507", "Paris", "FR", "48.85", "2.35", 600)));
const t0 = process.hrtime.bigint();
await Promise.all(ids.map((g) => r.call("EVALSHA", sha, 0, "request", g, 3, 0, 100, 15000, rid(), "192.0.2.1", 0, 60, 0, 60)));
const t1 = process.hrtime.bigint();
const live = [];
for (const key of await r.call("KEYS", "{nc}:p:*")) live.push([key.slice(7), await r.call("HGET", key, "t")]);
const t2 = process.hrtime.bigint();
const res = await Promise.all(live.map(([pid, t]) => r.call("EVALSHA", sha, 0, "accept", t, pid, rid(), "A", "B", 3600, 100, 15000, rid())));
const t3 = process.hrtime.bigint();
const ms = (a, b) => Number(b - a) / 1e6;
console.log(JSON.stringify({ guests: N, requests_per_s: Math.round(N / ms(t0, t1) * 1000), proposals: live.length,
  accepts_per_s: Math.round(live.length / ms(t2, t3) * 1000), sessions: res.filter((x) => x[0] === "ok").length,
  matches_per_s_script_only: Math.round(live.length / (ms(t0, t1) + ms(t2, t3)) * 1000) }));
r.close(); rs.kill();

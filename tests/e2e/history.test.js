// The history backends end to end: chatd writes a conversation into MongoDB
// (the wire-level emulator, or a real mongod when MONGODB_TEST_URL is set)
// and histctl reads it back through the same interface moderators use.
import test from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startChatd, histctl, stop, track, until } from "./harness.js";
import { startRedis } from "./redis.js";
import { matchedPair } from "./guests.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

// A MongoDB URL for this test: a real one when configured, else the emulator.
async function mongoUrl(t) {
  const db = `nearchat_e2e_${randomBytes(4).toString("hex")}`;
  if (process.env.MONGODB_TEST_URL) {
    const u = new URL(process.env.MONGODB_TEST_URL);
    u.pathname = `/${db}`;
    return u.toString();
  }
  const proc = track(spawn("/usr/bin/python3", [path.join(root, "tests/mongo-emulator.py"), "--port", "0"],
    { stdio: ["ignore", "pipe", "pipe"] }));
  t.after(() => stop(proc));
  const port = await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => { out += d; if (out.includes("\n")) resolve(Number(out.split("\n")[0])); });
    proc.on("exit", (code) => reject(new Error(`mongo-emulator exited with ${code}: ${proc.stderrText}`)));
  });
  return `mongodb://127.0.0.1:${port}/${db}?serverSelectionTimeoutMS=2000`;
}


test("a conversation is stored in MongoDB and reads back exactly", async (t) => {
  const redis = await startRedis(t);
  const url = await mongoUrl(t);
  const n0 = await startChatd(t, { REDIS_URL: redis.url, HISTORY_URL: url });
  const dir = mkdtempSync(path.join(os.tmpdir(), "histctl-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, "secret"), n0.secret);
  const history = (...args) => histctl(args, { HISTORY_URL: url, CHATD_SECRET_FILE: path.join(dir, "secret") });
  const { a, b, sessionId } = await matchedPair(t, n0.url, n0.url);
  const sent = [];
  for (let i = 1; i <= 12; i++) {
    const [from, to] = i % 3 ? [a, b] : [b, a];
    await from.say({ sessionId, id: `m${i}`, text: `message ${i} ✓` });
    sent.push([i, `m${i}`, `message ${i} ✓`, from.session.guestId]);
    void to;
  }
  await a.say({ sessionId, id: "m1", text: "message 1 ✓" }); // a re-send: no second row
  await a.tell("chat:leave", { sessionId });
  const rows = await until(async () => { const r = await history("messages", sessionId); return r.length === 12 && r; });
  assert.deepEqual(rows.map((m) => [m.seq, m.id, m.text, m.senderGuestId]), sent);
  const s = await until(async () => { const x = await history("session", sessionId); return x.endReason && x; });
  assert.equal(s.endReason, "left");
  assert.deepEqual(s.guests.sort(), [a.session.guestId, b.session.guestId].sort());
});

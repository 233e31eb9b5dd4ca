// "Delivered" is the moderators' evidence (issue 13 E14): a message acked
// delivered is in the history even when the node that took its receipt is
// killed the next instant, with rows still waiting for its group commit.
// The receipt and the row's entry in Redis's write-ahead log are one step;
// another node claims what the dead one had read and not stored.
import test from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startChatd, histctl, until } from "./harness.js";
import { startRedis } from "./redis.js";
import { matchedPair } from "./guests.js";

test("a node killed right after receipts, three times: every message acked delivered is in the history", async (t) => {
  const redis = await startRedis(t);
  const dir = mkdtempSync(path.join(os.tmpdir(), "wal-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const HISTORY_URL = `sqlite:${path.join(dir, "history.db")}`;
  const env = { REDIS_URL: redis.url, HISTORY_URL };
  const n0 = await startChatd(t, { ...env, CHATD_NODE_ID: "n0" });
  writeFileSync(path.join(dir, "secret"), n0.secret);
  const history = (...args) => histctl(args, { HISTORY_URL, CHATD_SECRET_FILE: path.join(dir, "secret") });
  const delivered = new Map(); // sessionId -> ids acked "delivered"
  for (let round = 0; round < 3; round++) {
    const n1 = await startChatd(t, { ...env, CHATD_NODE_ID: `n1-${round}` }, { secret: n0.secret });
    const { a, sessionId } = await matchedPair(t, n0.url, n1.url);
    // b, on n1, acks each message there: n1 takes every receipt and would write every row
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) =>
      a.say({ sessionId, id: `r${round}-m${i}`, text: `round ${round}, message ${i}` })));
    n1.proc.kill("SIGKILL"); // within the group commit's 200 ms of the last receipt
    const ids = answers.filter((x) => x.ok && x.status === "delivered").map((x) => x.id);
    assert.ok(ids.length > 0, `round ${round}: some messages were delivered`);
    delivered.set(sessionId, ids);
  }
  for (const [sessionId, ids] of delivered) {
    const rows = await until(async () => {
      const r = await history("messages", sessionId);
      return ids.every((id) => r.some((m) => m.id === id)) && r;
    }, 30000).catch(() => null);
    const stored = rows ?? (await history("messages", sessionId));
    assert.deepEqual(ids.filter((id) => !stored.some((m) => m.id === id)), [], `${sessionId}: acked delivered, not in the history`);
    // one row per message, seq without gaps
    assert.deepEqual(stored.map((m) => m.seq), stored.map((_, i) => i + 1));
  }
});

test("the write-ahead log is trimmed once its rows are stored: it does not grow with the messages sent", async (t) => {
  const redis = await startRedis(t);
  const dir = mkdtempSync(path.join(os.tmpdir(), "wal-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const HISTORY_URL = `sqlite:${path.join(dir, "history.db")}`;
  const n0 = await startChatd(t, { REDIS_URL: redis.url, HISTORY_URL, CHAT_RATE_GUEST: "0/1", CHAT_RATE_IP: "100000/1" });
  writeFileSync(path.join(dir, "secret"), n0.secret);
  const history = (...args) => histctl(args, { HISTORY_URL, CHATD_SECRET_FILE: path.join(dir, "secret") });
  const { a, sessionId } = await matchedPair(t, n0.url, n0.url);
  const total = 600;
  for (let i = 0; i < total; i += 100) {
    const answers = await Promise.all(Array.from({ length: 100 }, (_, j) =>
      a.say({ sessionId, id: `m${i + j}`, text: `message ${i + j}` })));
    assert.ok(answers.every((x) => x.ok && x.status === "delivered"), "every message delivered");
  }
  await until(async () => (await history("messages", sessionId)).length === total, 20000);
  const r = redis.client();
  // Every row is stored, so only the stream node holding the newest entries
  // may remain (Redis trims whole nodes of up to 100 entries).
  const len = await until(async () => { const n = await r.call("XLEN", "{nc}:hwal"); return n <= 100 && n + 1; }, 10000)
    .catch(async () => 1 + (await r.call("XLEN", "{nc}:hwal")));
  assert.ok(len - 1 <= 100, `${len - 1} of ${total} entries left in the log`);
  const pending = await r.call("XPENDING", "{nc}:hwal", "hist");
  assert.equal(pending[0], 0, "nothing left pending");
});

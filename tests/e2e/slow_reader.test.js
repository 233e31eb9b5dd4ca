// Ping replies never pile up for a client that does not read: over polling,
// one pong waits for the next GET however many pings were POSTed. (The
// per-connection output bound, CHATD_MAX_QUEUED_BYTES, has no e2e test yet.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { startTestServer } from "./harness.js";

test("pings POSTed over polling with no GET are answered by one pong", async (t) => {
  const { url } = await startTestServer(t, true);
  const open = await (await fetch(`${url}/engine.io/?EIO=4&transport=polling`)).text();
  const sid = JSON.parse(open.slice(1)).sid;
  for (let i = 0; i < 200; i++) {
    const r = await fetch(`${url}/engine.io/?EIO=4&transport=polling&sid=${sid}`, { method: "POST", body: "2" });
    assert.equal(r.status, 200);
  }
  const body = await (await fetch(`${url}/engine.io/?EIO=4&transport=polling&sid=${sid}`)).text();
  // the server's own pings may wait there too
  assert.deepEqual(body.split("\x1e").filter((p) => p === "3"), ["3"]);
});

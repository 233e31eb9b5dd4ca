// The rabbitmq-server helper: it starts, speaks AMQP, restarts on the same
// data folder, and leaves no process behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { startRabbit } from "./rabbit.js";

// Sends the AMQP 0-9-1 protocol header; resolves with the first frame's type
// and method (the broker answers with connection.start: type 1, class 10, method 10).
function amqpHello(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error("no AMQP answer")); }, 5000);
    sock.on("connect", () => sock.write(Buffer.from("AMQP\x00\x00\x09\x01", "latin1")));
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 11) return;
      clearTimeout(timer);
      sock.destroy();
      resolve({ type: buf[0], classId: buf.readUInt16BE(7), methodId: buf.readUInt16BE(9) });
    });
    sock.on("error", (e) => { clearTimeout(timer); reject(e); });
  });
}

test("startRabbit: AMQP on a free port, restart, nothing survives", async (t) => {
  let srv;
  await t.test("start", async (t2) => {
    srv = await startRabbit(t);
    assert.match(srv.url, new RegExp(`^amqp://guest:guest@127\\.0\\.0\\.1:${srv.port}/$`));
    assert.deepEqual(await amqpHello(srv.port), { type: 1, classId: 10, methodId: 10 });
    t2.diagnostic(`broker started in ${srv.bootMs} ms`);
  });
  await t.test("restart keeps answering on the same port", async (t2) => {
    const before = srv.proc.pid;
    await srv.restart();
    assert.notEqual(srv.proc.pid, before);
    assert.deepEqual(await amqpHello(srv.port), { type: 1, classId: 10, methodId: 10 });
    t2.diagnostic(`broker restarted in ${srv.bootMs} ms`);
  });
  await t.test("stop leaves no beam.smp, and cleanup takes epmd too", async () => {
    const pgid = srv.proc.pid;
    await srv.stop();
    assert.equal(srv.proc.exitCode !== null || srv.proc.signalCode !== null, true);
    assert.deepEqual(srv.survivors().filter((pid) => pid !== srv.epmd.pid), []);
    await assert.rejects(amqpHello(srv.port));
    assert.ok(pgid > 0);
  });
});

test("after the test, no process of the broker is left", async (t) => {
  let srv;
  await t.test("run one", async (inner) => {
    srv = await startRabbit(inner);
  });
  // the inner test's t.after has run: broker and epmd are gone, and so is the folder
  assert.deepEqual(srv.survivors(), []);
});

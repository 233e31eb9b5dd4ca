// Replaces the suite's own node-imports.js when it runs in Node: the same
// globals, with `ws` dispatching messages as a browser does, one per task.
// The suite awaits one message, then registers for the next; the package
// emits all the messages of one TCP read at once, before that await returns,
// and its allowSynchronousEvents: false defers even the first one behind
// other sockets' I/O, which a browser never does. Here the first message of
// a read is dispatched at once and each further one after the microtasks of
// the one before it have run.
import fetch from "node-fetch";
import { WebSocket as NodeWebSocket } from "ws";
import chai from "chai";
import chaiString from "chai-string";

chai.use(chaiString);

class WebSocket extends NodeWebSocket {
  #queue = [];

  emit(type, ...args) {
    if (type !== "message") return super.emit(type, ...args);
    this.#queue.push(args);
    if (this.#queue.length === 1) this.#dispatch();
    return true;
  }

  #dispatch() {
    super.emit("message", ...this.#queue[0]);
    setImmediate(() => {
      this.#queue.shift();
      if (this.#queue.length) this.#dispatch();
    });
  }
}

globalThis.fetch = fetch;
globalThis.WebSocket = WebSocket;
globalThis.chai = chai;

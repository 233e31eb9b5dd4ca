// Replaces a suite's node-imports.js: the same globals, but a WebSocket that
// hands each event to listeners in its own macrotask, as a browser does. The
// ws package emits every frame of one TCP read synchronously, and the suites
// attach their next listener only after an await, so without this frames
// that a server wrote together would be lost.
import fetch from "node-fetch";
import { WebSocket as WsSocket } from "ws";
import chai from "chai";
import chaiString from "chai-string";

chai.use(chaiString);

class BrowserOrderWebSocket extends WsSocket {
  constructor(...args) {
    super(...args);
    this._wrapped = new Map();
    this._queue = [];
    this._draining = false;
    for (const type of ["open", "message", "close", "error"]) {
      super.addEventListener(type, (event) => this._enqueue(type, event));
    }
  }
  _enqueue(type, event) {
    this._queue.push([type, event]);
    if (!this._draining) {
      this._draining = true;
      setTimeout(() => this._drainOne(), 0);
    }
  }
  _drainOne() {
    const [type, event] = this._queue.shift();
    for (const [listener, opts] of [...(this._listeners?.[type] || [])]) {
      if (opts.once) this._listeners[type].delete(listener);
      listener.call(this, event);
    }
    if (this._queue.length) setTimeout(() => this._drainOne(), 0);
    else this._draining = false;
  }
  addEventListener(type, listener, opts = {}) {
    this._listeners ??= {};
    (this._listeners[type] ??= new Map()).set(listener, opts);
  }
  removeEventListener(type, listener) {
    this._listeners?.[type]?.delete(listener);
  }
}

globalThis.fetch = fetch;
globalThis.WebSocket = BrowserOrderWebSocket;
globalThis.chai = chai;

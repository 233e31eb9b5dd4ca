// Guests driven by the official socket.io-client: one Manager (one Engine.IO
// connection) per guest, namespace / first, then /match once / is accepted.
import assert from "node:assert/strict";
import { Manager } from "socket.io-client";
import { check, eventSchema, ackSchema } from "./schemas.js";

// Resolves with the first `event` on `socket`, or rejects after `ms`.
export function next(socket, event, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    socket.once(event, (...args) => { clearTimeout(timer); resolve(args[0]); });
  });
}

// Resolves with [event, payload] for whichever of `events` comes first on `socket`;
// unlike a race of next()s, it leaves no timer or listener behind to hold the process.
export function first(socket, events, ms = 10000) {
  return new Promise((resolve, reject) => {
    const handlers = events.map((event) => [event, (p) => { done(); resolve([event, p]); }]);
    const done = () => { clearTimeout(timer); for (const [e, h] of handlers) socket.off(e, h); };
    const timer = setTimeout(() => { done(); reject(new Error(`none of ${events.join(", ")} within ${ms} ms`)); }, ms);
    for (const [e, h] of handlers) socket.once(e, h);
  });
}

// Collects every `event` on `socket` into an array, to assert on later.
export function record(socket, event) {
  const seen = [];
  socket.on(event, (p) => seen.push(p));
  return seen;
}

export async function connectGuest(t, url, opts = {}) {
  const { xff, token, location, transports = ["websocket"] } = opts;
  const consent = "consent" in opts ? opts.consent : true;
  const manager = new Manager(url, {
    transports, forceNew: true, reconnection: false,
    extraHeaders: xff ? { "X-Forwarded-For": xff } : undefined,
  });
  const auth = consent === undefined ? {} : { consent };
  if (token !== undefined) auth.token = token;
  if (location !== undefined) auth.location = location;
  const root = manager.socket("/", { auth });
  const userSessions = record(root, "user-session"); // it may come right behind session
  // every event the server sends is checked against schemas/; the test fails at its end otherwise
  const violations = [];
  const validate = (event, payload) => {
    const problem = eventSchema[event] ? check(eventSchema[event], payload) : `unknown event ${event}`;
    if (problem) violations.push(problem);
  };
  root.onAny(validate);
  t.after(() => assert.deepEqual(violations, []));
  t.after(() => { root.disconnect(); manager.engine?.close(); });
  const [event, session] = await first(root, ["session", "connect_error"]);
  if (event === "connect_error") throw Object.assign(new Error(session.message), { data: session.data });
  const match = manager.socket("/match");
  match.onAny(validate);
  await next(match, "connect");
  // /chat: incoming messages are recorded and acked (the receipt), unless `holdReceipts`
  const chat = manager.socket("/chat");
  chat.onAny(validate);
  const inbox = [];
  const g = {};
  const held = []; // receipts kept back while `holdReceipts`, to send later
  chat.on("chat:message", (m, ack) => { inbox.push(m); if (!g.holdReceipts && ack) ack(); else if (ack) held.push(ack); });
  await next(chat, "connect");
  const say = async (payload) => {
    const answer = await chat.timeout(10000).emitWithAck("chat:message", payload);
    const problem = check("chat-message-ack", answer);
    if (problem) violations.push(problem);
    return answer;
  };
  const tell = (event, payload) => chat.timeout(5000).emitWithAck(event, payload);
  const ask = async (event, payload) => {
    const answer = await match.timeout(5000).emitWithAck(event, payload);
    const problem = check(ackSchema(event), answer);
    if (problem) violations.push(problem);
    return answer;
  };
  return Object.assign(g, { manager, root, match, chat, inbox, held, session, userSessions, ask, say, tell });
}

// Two guests matched with each other: a on urlA requests first, b on urlB is proposed and accepts.
export async function matchedPair(t, urlA, urlB, opts = {}) {
  const a = await connectGuest(t, urlA, opts.a);
  const b = await connectGuest(t, urlB, opts.b);
  await a.ask("match:request", {});
  const proposal = next(a.match, "match:proposal");
  await b.ask("match:request", {});
  const p = await proposal;
  const sessions = [next(a.root, "user-session"), next(b.root, "user-session")];
  await a.ask("match:accept", { proposalId: p.proposalId });
  const [sa] = await Promise.all(sessions);
  return { a, b, sessionId: sa.sessionId };
}

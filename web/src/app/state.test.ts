import { describe, expect, it } from "vitest";
import {
  addIncoming,
  addOutgoing,
  applyAck,
  applyDelivered,
  applyRead,
  newMessageId,
  newSession,
  pendingMessages,
  placeLabel,
  readMark,
  restoreSession,
  secondsLeft,
  serializeSession,
} from "./state";

const peer = { alias: "Quiet Otter", city: "Paris", country: "FR", distanceKm: 3 };
const fresh = () => newSession("s1", peer, 1000);
const order = (s: ReturnType<typeof fresh>) => s.messages.map((m) => m.id);

describe("our messages and their ticks", () => {
  it("goes pending, then queued (one tick), delivered (two), read (blue)", () => {
    const s = fresh();
    addOutgoing(s, "a", "hi", 5);
    expect(s.messages[0].status).toBe("pending");
    applyAck(s, "a", { ok: true, id: "a", seq: 1, ts: 10, status: "queued" });
    expect(s.messages[0]).toMatchObject({ seq: 1, ts: 10, status: "queued" });
    applyDelivered(s, "a");
    expect(s.messages[0].status).toBe("delivered");
    applyRead(s, 1);
    expect(s.messages[0].status).toBe("read");
  });

  it("never goes back: a late ack or delivered does not undo read", () => {
    const s = fresh();
    addOutgoing(s, "a", "hi", 5);
    applyAck(s, "a", { ok: true, seq: 1, ts: 10, status: "delivered" });
    applyRead(s, 1);
    applyAck(s, "a", { ok: true, seq: 1, ts: 10, status: "delivered" });
    applyDelivered(s, "a");
    expect(s.messages[0].status).toBe("read");
  });

  it("read marks reach only seqs up to the mark, and only ours", () => {
    const s = fresh();
    addOutgoing(s, "a", "1", 1);
    addOutgoing(s, "b", "2", 2);
    applyAck(s, "a", { ok: true, seq: 1, ts: 1, status: "delivered" });
    applyAck(s, "b", { ok: true, seq: 3, ts: 3, status: "delivered" });
    addIncoming(s, { id: "x", seq: 2, text: "theirs", ts: 2 });
    applyRead(s, 2);
    expect(s.messages.map((m) => m.status)).toEqual(["read", null, "delivered"]);
  });

  it("a read mark that comes before our ack turns the message blue once the ack gives it its seq", () => {
    const s = fresh();
    addOutgoing(s, "a", "hi", 5);
    addOutgoing(s, "b", "later", 6);
    applyRead(s, 1); // the peer read seq 1 before the server's ack to us arrived
    applyAck(s, "a", { ok: true, seq: 1, ts: 10, status: "delivered" });
    applyAck(s, "b", { ok: true, seq: 2, ts: 11, status: "delivered" });
    expect(s.messages.map((m) => m.status)).toEqual(["read", "delivered"]);
  });

  it("unavailable or no answer keeps it pending for the resend; other errors fail it", () => {
    const s = fresh();
    addOutgoing(s, "a", "x", 1);
    addOutgoing(s, "b", "y", 2);
    applyAck(s, "a", { ok: false, error: "unavailable" });
    applyAck(s, "b", null);
    expect(pendingMessages(s).map((m) => m.id)).toEqual(["a", "b"]);
    applyAck(s, "a", { ok: false, error: "too_long" });
    expect(s.messages.find((m) => m.id === "a")).toMatchObject({ status: "failed", error: "too_long" });
    expect(pendingMessages(s).map((m) => m.id)).toEqual(["b"]);
  });
});

describe("the conversation's order", () => {
  it("is seq order, with messages still waiting for a seq at the end", () => {
    const s = fresh();
    addOutgoing(s, "mine", "later", 1);
    addIncoming(s, { id: "t2", seq: 2, text: "b", ts: 2 });
    addIncoming(s, { id: "t1", seq: 1, text: "a", ts: 1 });
    expect(order(s)).toEqual(["t1", "t2", "mine"]);
    applyAck(s, "mine", { ok: true, seq: 3, ts: 3, status: "queued" });
    addIncoming(s, { id: "t4", seq: 4, text: "d", ts: 4 });
    expect(order(s)).toEqual(["t1", "t2", "mine", "t4"]);
  });

  it("drops a redelivered message (same id) and says so", () => {
    const s = fresh();
    expect(addIncoming(s, { id: "t1", seq: 1, text: "a", ts: 1 })).toBe(true);
    expect(addIncoming(s, { id: "t1", seq: 1, text: "a", ts: 1 })).toBe(false);
    expect(s.messages).toHaveLength(1);
  });

  it("a new message from the peer ends its typing", () => {
    const s = fresh();
    s.peerTyping = true;
    addIncoming(s, { id: "t1", seq: 1, text: "a", ts: 1 });
    expect(s.peerTyping).toBe(false);
  });
});

describe("read marks we send", () => {
  it("asks for the highest incoming seq once", () => {
    const s = fresh();
    expect(readMark(s)).toBe(0);
    addIncoming(s, { id: "t1", seq: 1, text: "a", ts: 1 });
    addIncoming(s, { id: "t3", seq: 3, text: "c", ts: 3 });
    expect(readMark(s)).toBe(3);
    s.readSent = 3;
    expect(readMark(s)).toBe(0);
  });
});

describe("keeping the conversation across a reload", () => {
  it("round-trips, and refuses another session's or broken data", () => {
    const s = fresh();
    s.peerTyping = true;
    addIncoming(s, { id: "t1", seq: 1, text: "a", ts: 1 });
    const text = serializeSession(s);
    const back = restoreSession(text, "s1");
    expect(back?.messages).toEqual(s.messages);
    expect(back?.peerTyping).toBe(false);
    expect(restoreSession(text, "s2")).toBeNull();
    expect(restoreSession("{not json", "s1")).toBeNull();
    expect(restoreSession(null, "s1")).toBeNull();
  });

  it("keeps the last 300 messages only", () => {
    const s = fresh();
    for (let i = 1; i <= 350; i++) addIncoming(s, { id: `t${i}`, seq: i, text: "x", ts: i });
    const back = restoreSession(serializeSession(s), "s1")!;
    expect(back.messages).toHaveLength(300);
    expect(back.messages[0].seq).toBe(51);
  });
});

describe("small helpers", () => {
  it("counts a proposal down in whole seconds, never below zero", () => {
    expect(secondsLeft(10_000, 0)).toBe(10);
    expect(secondsLeft(10_000, 9_001)).toBe(1);
    expect(secondsLeft(10_000, 20_000)).toBe(0);
  });
  it("says where the peer is", () => {
    expect(placeLabel(peer)).toBe("Paris, FR · 3 km away");
    expect(placeLabel({ city: null, country: "FR", distanceKm: 0.2 })).toBe("FR · less than 1 km away");
    expect(placeLabel({ city: null, country: null })).toBe("somewhere");
  });
  it("makes message ids that fit the protocol and differ", () => {
    const a = newMessageId(), b = newMessageId();
    expect(a).toMatch(/^[0-9a-f]{24}$/);
    expect(a).not.toBe(b);
  });
});

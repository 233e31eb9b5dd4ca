// The moderator console (/moderate/) in Debian's chromium, against chatd
// nodes with a real redis-server and SQLite history; the guests are official
// socket.io-client instances.
import test from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startChatd, until } from "./harness.js";
import { startRedis } from "./redis.js";
import { connectGuest, matchedPair, next } from "./guests.js";
import { launchBrowser, openPage, screenshot } from "./browser.js";

const KEY = "console-key-for-tests-0123456789abcdef";

async function setup(t) {
  const redis = await startRedis(t);
  const dir = mkdtempSync(path.join(os.tmpdir(), "console-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, "keys"), `${createHash("sha256").update(KEY).digest("hex")}\n`);
  const env = { REDIS_URL: redis.url, HISTORY_URL: `sqlite:${path.join(dir, "history.db")}`,
    MODERATOR_KEYS_FILE: path.join(dir, "keys") };
  const n0 = await startChatd(t, { ...env, CHATD_NODE_ID: "n0" });
  const n1 = await startChatd(t, { ...env, CHATD_NODE_ID: "n1" }, { secret: n0.secret });
  const api = async (p) => (await fetch(`${n0.url}/api/v1/${p}`, { headers: { Authorization: `Bearer ${KEY}` } })).json();
  const browser = await launchBrowser(t);
  return { n0, n1, api, browser };
}

// "a" or "b": which side of the transcript a guest is on (the order of the session's guests).
async function sideOf(api, sessionId, g) {
  return (await api(`sessions/${sessionId}`)).guests[0] === g.session.guestId ? "a" : "b";
}

async function signIn(page, url) {
  await page.goto(`${url}/moderate/`);
  await page.getByLabel("Moderator key").fill(KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Console" }).waitFor();
}

test("the console is served with its types, caching and security headers", async (t) => {
  const { n0 } = await setup(t);
  const page = await fetch(`${n0.url}/moderate/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type"), /^text\/html/);
  assert.equal(page.headers.get("cache-control"), "no-cache");
  assert.match(page.headers.get("content-security-policy"), /default-src 'self'/);
  const html = await page.text();
  const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)[1];
  const js = await fetch(`${n0.url}${script}`, { headers: { "Accept-Encoding": "gzip" } });
  assert.equal(js.status, 200);
  assert.match(js.headers.get("content-type"), /^text\/javascript/);
  assert.match(js.headers.get("cache-control"), /immutable/);
  assert.equal(js.headers.get("content-encoding"), "gzip");
  const again = await fetch(`${n0.url}${script}`, { headers: { "If-None-Match": js.headers.get("etag") } });
  assert.equal(again.status, 304);
  assert.equal((await fetch(`${n0.url}/moderate/missing.js`)).status, 404);
  assert.equal((await fetch(`${n0.url}/moderate/`, { method: "POST" })).status, 404);
});

test("a wrong key is refused; the right one is kept in sessionStorage only", async (t) => {
  const { n0, browser } = await setup(t);
  const { context, page } = await openPage(t, browser);
  await page.goto(`${n0.url}/moderate/`);
  await page.getByLabel("Moderator key").fill("not-the-key");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "This key is not accepted." }).waitFor();
  await signIn(page, n0.url);
  const storage = await page.evaluate(() => ({ local: localStorage.length, session: Object.keys(sessionStorage) }));
  assert.deepEqual(storage, { local: 0, session: ["nearchat.moderatorKey"] });
  assert.deepEqual(await context.cookies(), []);
  await page.reload(); // same tab: still signed in
  await page.getByRole("navigation", { name: "Console" }).waitFor();
  const other = await openPage(t, browser); // another browser: signed out
  await other.page.goto(`${n0.url}/moderate/`);
  await other.page.getByLabel("Moderator key").waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Moderator key").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
});

test("a moderator finds the conversation guests just had, reads it, bans one, who is refused; lifting the ban lets it back", async (t) => {
  const { n0, n1, api, browser } = await setup(t);
  const { a, b, sessionId } = await matchedPair(t, n1.url, n1.url);
  const lines = [[a, "hello from a"], [b, "hi a, b here"], [b, '<img src=x onerror="window.pwned=1">'], [a, "bye"]];
  for (const [i, [g, text]] of lines.entries()) assert.equal((await g.say({ sessionId, id: `c${i}`, text })).ok, true);
  await until(async () => (await api(`sessions/${sessionId}/messages`)).items.every((m) => m.deliveredAt) &&
    (await api(`sessions/${sessionId}/messages`)).items.length === 4);

  const { page } = await openPage(t, browser);
  await signIn(page, n0.url);
  await page.getByLabel("Guest id").fill(a.session.guestId);
  await page.getByRole("button", { name: "Search" }).click();
  const row = page.locator(`tr[data-session="${sessionId}"]`);
  await row.waitFor();
  assert.equal(await page.locator("tr[data-session]").count(), 1);
  await row.getByRole("link", { name: "Transcript" }).click();

  const messages = page.locator("li.message");
  await until(async () => (await messages.count()) === 4);
  assert.deepEqual(await page.locator("li.message .text").allTextContents(), lines.map(([, text]) => text));
  const sides = await messages.evaluateAll((els) => els.map((e) => e.className));
  const sa = await sideOf(api, sessionId, a), sb = sa === "a" ? "b" : "a", SB = sb.toUpperCase();
  assert.deepEqual(sides, lines.map(([g]) => `message side-${g === a ? sa : sb}`));
  const times = await page.locator("li.message .times").allTextContents();
  for (const t of times) assert.match(t, /^sent \d{4}-\d\d-\d\d \d\d:\d\d:\d\d · delivered \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  assert.equal(await page.evaluate(() => window.pwned), undefined, "chat text is shown as text, never run");
  assert.equal(await page.locator(`.guest-card.side-${sb} code`).textContent(), b.session.guestId);
  await screenshot(page, "console-transcript");

  const gone = next(b.root, "disconnect", 5000);
  const card = page.locator(`.guest-card.side-${sb}`);
  await card.getByRole("button", { name: `Ban guest ${SB}…` }).click();
  await card.getByLabel("Reason").fill("abuse in chat");
  await card.getByLabel("For").selectOption(String(3600));
  await card.getByRole("button", { name: `Ban guest ${SB}`, exact: true }).click();
  await gone;
  await page.getByRole("status").filter({ hasText: `Banned ${b.session.guestId}` }).waitFor();
  await assert.rejects(connectGuest(t, n0.url, { token: b.session.token }), /banned/);
  await assert.rejects(connectGuest(t, n1.url, { token: b.session.token }), /banned/);
  assert.equal(a.root.connected, true, "the other guest stays connected");

  await page.getByRole("link", { name: "Bans" }).click();
  const ban = page.locator("tr[data-ban]").filter({ hasText: b.session.guestId });
  await ban.waitFor();
  assert.match(await ban.textContent(), /abuse in chat/);
  await screenshot(page, "console-bans");
  await ban.getByRole("button", { name: `Lift the ban on ${b.session.guestId}` }).click();
  await ban.waitFor({ state: "detached" });
  const back = await until(() => connectGuest(t, n1.url, { token: b.session.token }));
  assert.equal(back.session.guestId, b.session.guestId);
});

test("the reports queue: open the transcript, ban the reported guest, close the report", async (t) => {
  const { n0, n1, api, browser } = await setup(t);
  const { a, b, sessionId } = await matchedPair(t, n0.url, n1.url);
  assert.equal((await b.say({ sessionId, id: "r1", text: "something rude" })).ok, true);
  const left = next(b.root, "user-left");
  assert.equal((await a.tell("chat:report", { sessionId, reason: "rude\nand <b>loud</b>" })).ok, true);
  assert.equal((await left).reason, "reported");
  await until(async () => (await api("reports?status=open")).items.length === 1);

  const { page } = await openPage(t, browser, { viewport: { width: 360, height: 640 } });
  await signIn(page, n0.url);
  await page.getByRole("link", { name: "Reports" }).click();
  const report = page.locator("li.report");
  await report.waitFor();
  assert.equal(await report.locator(".reason").textContent(), "rude\nand <b>loud</b>");
  await screenshot(page, "console-reports-360");
  await report.getByRole("button", { name: "Open transcript" }).click();
  const banner = page.getByRole("complementary", { name: "Report" });
  await banner.waitFor();
  const sa = await sideOf(api, sessionId, a), sb = sa === "a" ? "b" : "a", SB = sb.toUpperCase();
  assert.match(await banner.textContent(), new RegExp(`Reported by guest ${sa.toUpperCase()}`));
  await page.locator("li.message").first().waitFor();
  assert.equal(await page.locator("li.message .text").textContent(), "something rude");
  assert.match(await page.locator(`.guest-card.side-${sb} h3`).textContent(), /reported/);
  assert.doesNotMatch(await page.locator(`.guest-card.side-${sa} h3`).textContent(), /reported/);

  const gone = next(b.root, "disconnect", 5000);
  const card = page.locator(`.guest-card.side-${sb}`);
  await card.getByRole("button", { name: `Ban guest ${SB}…` }).click();
  await card.getByLabel("Reason").fill("reported and confirmed");
  await card.getByRole("button", { name: `Ban guest ${SB}`, exact: true }).click();
  await gone;
  await banner.getByRole("button", { name: "Close report" }).click();
  await banner.locator(".status.closed").waitFor();
  assert.equal((await api("reports?status=open")).items.length, 0);
  assert.equal((await api("reports?status=closed")).items[0].sessionId, sessionId);
  await assert.rejects(connectGuest(t, n0.url, { token: b.session.token }), /banned/);
});

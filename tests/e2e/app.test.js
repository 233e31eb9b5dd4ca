// The visitor PWA in Debian's chromium: two browsers (contexts) consent,
// match, chat both ways with ticks going to read, see typing; one is away and
// comes back to its queued messages; one reports and the other sees the
// stranger left; a ban shows as such. Real chatd, redis-server, rabbitmq-server.
import test from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { geoDb, startChatd, until } from "./harness.js";
import { startRedis } from "./redis.js";
import { startRabbit } from "./rabbit.js";
import { launchBrowser, openPage, screenshot } from "./browser.js";

const KEY = "app-test-moderator-key-0123456789abcdef";
const PHONE = { width: 360, height: 640 };
const DESKTOP = { width: 1280, height: 800 };

async function setup(t, { rabbit = true } = {}) {
  const [redis, broker] = await Promise.all([startRedis(t), rabbit ? startRabbit(t) : null]);
  const dir = mkdtempSync(path.join(os.tmpdir(), "app-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, "keys"), `${createHash("sha256").update(KEY).digest("hex")}\n`);
  const chatd = await startChatd(t, {
    REDIS_URL: redis.url, ...(broker ? { AMQP_URL: broker.url } : {}), GEOIP_DB: geoDb, TRUSTED_PROXIES: "127.0.0.1/32",
    HISTORY_URL: `sqlite:${path.join(dir, "history.db")}`, MODERATOR_KEYS_FILE: path.join(dir, "keys"),
    CHAT_DELIVERY_TIMEOUT_MS: "1000", MATCH_WIDEN_MS: "300,600,900",
  });
  const browser = await launchBrowser(t);
  return { chatd, browser };
}

// A visitor: its own browser context, placed by X-Forwarded-For (the test City database).
async function visitor(t, browser, ip, options = {}) {
  const v = await openPage(t, browser, { viewport: PHONE, extraHTTPHeaders: { "X-Forwarded-For": ip }, ...options });
  return v;
}

// Every control on the screen has a name a screen reader can say, and nothing is wider than a phone.
async function assertAccessible(page, name) {
  const unnamed = await page.evaluate(() => [...document.querySelectorAll("button, input, textarea, select, a[href]")]
    .filter((el) => el.offsetParent !== null || el.getClientRects().length)
    .filter((el) => !(el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") || el.labels?.length ||
      el.textContent.trim() || el.getAttribute("title")))
    .map((el) => el.outerHTML.slice(0, 80)));
  assert.deepEqual(unnamed, [], `${name}: controls without a name`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth);
  assert.equal(overflow, false, `${name}: the page scrolls sideways`);
}

// Each screen at both sizes, kept in build/test-output/.
async function shootBoth(page, name) {
  const before = page.viewportSize();
  await page.setViewportSize(PHONE);
  await assertAccessible(page, name);
  await screenshot(page, `app-${name}-360x640`);
  await page.setViewportSize(DESKTOP);
  await screenshot(page, `app-${name}-1280x800`);
  await page.setViewportSize(before);
}

const composer = (page) => page.getByRole("textbox", { name: "Message", exact: true });
const bubbles = (page, who) => page.locator(`li.bubble.${who} .text`);
const tickOf = (page, text) => page.locator("li.bubble.mine").filter({ hasText: text }).locator("svg.tick");

async function consent(page, url, { location = false } = {}) {
  await page.goto(url);
  await page.getByRole("heading", { name: "Talk to someone nearby" }).waitFor();
  if (location) await page.getByLabel("Use my device's location to find people closer to me").check();
  await page.getByRole("button", { name: "I agree, let's start" }).click();
  await page.getByRole("heading", { name: "Ready when you are" }).waitFor();
}

test("two visitors consent, match, chat with ticks and typing, come back to queued messages, and a report ends it", async (t) => {
  const { chatd, browser } = await setup(t);
  const A = await visitor(t, browser, "10.1.0.7"); // Paris, by IP
  const B = await visitor(t, browser, "10.2.0.9", { // Versailles, by the device
    permissions: ["geolocation"], geolocation: { latitude: 48.8049, longitude: 2.1204 },
  });

  // A consents with the keyboard only
  await A.page.goto(chatd.url);
  await A.page.getByRole("heading", { name: "Talk to someone nearby" }).waitFor();
  await shootBoth(A.page, "consent");
  await A.page.keyboard.press("Tab");
  assert.equal(await A.page.evaluate(() => document.activeElement.id), "use-location");
  await A.page.keyboard.press("Tab");
  assert.equal(await A.page.evaluate(() => document.activeElement.textContent), "I agree, let's start");
  await A.page.keyboard.press("Enter");
  await A.page.getByText("You appear to be in Paris, FR (from your connection).").waitFor();
  await shootBoth(A.page, "home");
  const token = await A.page.evaluate(() => localStorage.getItem("nearchat.token"));
  assert.match(token, /^v1\.[A-Za-z0-9_-]{22}\.\d+\.[A-Za-z0-9_-]+$/, "the guest token is kept in localStorage");

  await consent(B.page, chatd.url, { location: true });
  await B.page.getByText("(from your device)").waitFor();

  // A waits; B asks too; whichever search widens first proposes the other, who accepts
  await A.page.getByRole("button", { name: "Find someone nearby" }).click();
  await A.page.getByRole("heading", { name: "Looking for someone" }).waitFor();
  // the search widened past nearby (a step passed stays marked done; "current" lasts only 300 ms here)
  await A.page.locator(".steps li.done").filter({ hasText: "nearby" }).waitFor();
  await shootBoth(A.page, "searching");
  await B.page.getByRole("button", { name: "Find someone nearby" }).click();
  const proposed = await Promise.any([A, B].map(async (v) => {
    await v.page.getByRole("alertdialog", { name: "Someone wants to chat" }).waitFor();
    return v;
  }));
  const proposal = proposed.page.getByRole("alertdialog", { name: "Someone wants to chat" });
  const there = proposed === A ? "Versailles" : "Paris";
  assert.match(await proposal.textContent(), new RegExp(`A stranger in ${there}, FR · \\d+ km away`));
  assert.match(await proposal.locator(".countdown").textContent(), /^\d+ s left$/);
  await shootBoth(proposed.page, "proposal");
  await proposal.getByRole("button", { name: "Accept" }).click();
  for (const v of [A, B]) await v.page.getByRole("region", { name: "Chat" }).waitFor();
  assert.match(await A.page.locator(".chat-header .sub").textContent(), /^online · Versailles, FR · \d+ km away$/);
  assert.match(await B.page.locator(".chat-header .sub").textContent(), /^online · Paris, FR · \d+ km away$/);

  // typing, then a message; the ticks go to read because B has the page in front of it
  await composer(A.page).pressSequentially("Hello from Paris");
  await B.page.locator(".chat-header .sub.typing").waitFor();
  await composer(A.page).press("Enter");
  await bubbles(B.page, "theirs").filter({ hasText: "Hello from Paris" }).waitFor();
  await B.page.locator(".chat-header .sub.online").waitFor(); // typing ended with the message
  await tickOf(A.page, "Hello from Paris").and(A.page.getByRole("img", { name: "Read" })).waitFor();
  await composer(B.page).fill("Bonjour from Versailles");
  await B.page.getByRole("button", { name: "Send" }).click();
  await bubbles(A.page, "theirs").filter({ hasText: "Bonjour from Versailles" }).waitFor();
  await tickOf(B.page, "Bonjour from Versailles").and(B.page.getByRole("img", { name: "Read" })).waitFor();
  await shootBoth(A.page, "chat");

  // B goes away: A's messages are queued (one tick), and B comes back to them, in order, once
  await B.page.close();
  await A.page.locator(".chat-header .sub.offline").waitFor();
  for (const text of ["are you there?", "I'll wait"]) {
    await composer(A.page).fill(text);
    await composer(A.page).press("Enter");
    await tickOf(A.page, text).and(A.page.getByRole("img", { name: "Sent" })).waitFor();
  }
  await shootBoth(A.page, "chat-peer-away");
  const B2 = await B.context.newPage();
  await B2.goto(chatd.url);
  await B2.getByRole("region", { name: "Chat" }).waitFor();
  await until(async () => (await bubbles(B2, "theirs").count()) === 3);
  assert.deepEqual(await bubbles(B2, "theirs").allTextContents(), ["Hello from Paris", "are you there?", "I'll wait"]);
  assert.deepEqual(await bubbles(B2, "mine").allTextContents(), ["Bonjour from Versailles"], "the conversation survives the reload");
  const seqs = await B2.locator("li.bubble").evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(seqs, [1, 2, 3, 4]);
  await tickOf(A.page, "I'll wait").and(A.page.getByRole("img", { name: "Read" })).waitFor();
  await A.page.locator(".chat-header .sub.online").waitFor();

  // A reports; B sees the stranger left
  await A.page.getByRole("button", { name: "Report" }).click();
  const dialog = A.page.getByRole("dialog", { name: "Report this chat" });
  await dialog.getByLabel("Spam or scam").check();
  await dialog.getByLabel("Anything to add (optional)").fill("kept asking for money");
  await shootBoth(A.page, "report");
  await dialog.getByRole("button", { name: "Report and leave" }).click();
  await A.page.getByRole("heading", { name: "Thanks for reporting" }).waitFor();
  await B2.getByRole("heading", { name: "The stranger left" }).waitFor();
  await shootBoth(B2, "ended");
  assert.equal(await B2.evaluate(() => localStorage.getItem("nearchat.session")), null, "an ended chat is not kept");
});

test("the connection drops and comes back: the banner says so, and a message written meanwhile goes out once", async (t) => {
  const { chatd, browser } = await setup(t, { rabbit: false });
  const A = await visitor(t, browser, "10.1.0.7");
  const B = await visitor(t, browser, "10.1.0.8");
  for (const v of [A, B]) await consent(v.page, chatd.url);
  await A.page.getByRole("button", { name: "Find someone nearby" }).click();
  await A.page.getByRole("heading", { name: "Looking for someone" }).waitFor();
  await B.page.getByRole("button", { name: "Find someone nearby" }).click();
  await A.page.getByRole("button", { name: "Accept" }).click();
  for (const v of [A, B]) await v.page.getByRole("region", { name: "Chat" }).waitFor();

  await B.context.setOffline(true);
  await B.page.getByText("Connection lost. Reconnecting…").waitFor();
  await shootBoth(B.page, "reconnecting");
  await composer(B.page).fill("written while offline");
  await composer(B.page).press("Enter");
  await tickOf(B.page, "written while offline").and(B.page.getByRole("img", { name: "Sending" })).waitFor();
  await B.context.setOffline(false);
  await B.page.getByText("Connection lost. Reconnecting…").waitFor({ state: "hidden" });
  await bubbles(A.page, "theirs").filter({ hasText: "written while offline" }).waitFor();
  await tickOf(B.page, "written while offline").and(B.page.getByRole("img", { name: "Read" })).waitFor();
  assert.equal(await bubbles(A.page, "theirs").count(), 1, "delivered once");
});

test("a banned visitor is told so, and the app shell works offline from the service worker", async (t) => {
  const { chatd, browser } = await setup(t, { rabbit: false });
  const A = await visitor(t, browser, "10.4.0.1");
  await consent(A.page, chatd.url);
  const guestId = await A.page.evaluate(() => localStorage.getItem("nearchat.token").split(".")[1]);
  const res = await fetch(`${chatd.url}/api/v1/bans`, {
    method: "POST", headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify({ guestId, reason: "test", ttlSeconds: 600 }),
  });
  assert.equal(res.status, 201);
  await A.page.getByRole("alert").filter({ hasText: "You can't chat right now" }).waitFor();
  await shootBoth(A.page, "banned");

  const P = await visitor(t, browser, "10.3.0.1");
  await P.page.goto(chatd.url);
  await P.page.evaluate(() => navigator.serviceWorker.ready);
  await until(() => P.page.evaluate(() => navigator.serviceWorker.controller !== null).catch(() => false) || P.page.reload().then(() => false));
  await P.context.setOffline(true);
  await P.page.reload();
  await P.page.getByRole("heading", { name: "Talk to someone nearby" }).waitFor();
  await P.context.setOffline(false);
});

test("the app is installable: manifest, icons, service worker scope; pages carry their types and caching", async (t) => {
  const { chatd } = await setup(t, { rabbit: false });
  const page = await fetch(chatd.url);
  assert.equal(page.headers.get("cache-control"), "no-cache");
  const html = await page.text();
  assert.match(html, /<link rel="manifest" href="\/manifest.webmanifest"/);
  const m = await fetch(`${chatd.url}/manifest.webmanifest`);
  assert.equal(m.headers.get("content-type"), "application/manifest+json");
  const manifest = await m.json();
  assert.equal(manifest.display, "standalone");
  assert.equal(manifest.start_url, "/");
  const sizes = new Set();
  for (const icon of manifest.icons) {
    const r = await fetch(new URL(icon.src, chatd.url));
    assert.equal(r.status, 200, icon.src);
    assert.equal(r.headers.get("content-type"), "image/png");
    const png = Buffer.from(await r.arrayBuffer());
    assert.equal(`${png.readUInt32BE(16)}x${png.readUInt32BE(20)}`, icon.sizes, "the icon is the size it claims");
    sizes.add(icon.sizes);
  }
  assert.ok(sizes.has("192x192") && sizes.has("512x512"));
  const sw = await fetch(`${chatd.url}/sw.js`);
  assert.match(sw.headers.get("content-type"), /^text\/javascript/);
  assert.equal(sw.headers.get("cache-control"), "no-cache", "a new release reaches installed apps");
  assert.match(await sw.text(), /\/socket\.io\//, "the worker leaves the socket alone");
});

test("decline, next and leave: a declined stranger is not proposed again; next finds someone new; leave ends it for both", async (t) => {
  const { chatd, browser } = await setup(t, { rabbit: false });
  const [A, B, C] = [await visitor(t, browser, "10.1.0.7"), await visitor(t, browser, "10.1.0.8"), await visitor(t, browser, "10.1.0.9")];
  for (const v of [A, B, C]) await consent(v.page, chatd.url);
  const find = (v) => v.page.getByRole("button", { name: "Find someone nearby" }).click();
  const proposedAmong = (vs) => Promise.any(vs.map(async (v) => {
    await v.page.getByRole("alertdialog", { name: "Someone wants to chat" }).waitFor();
    return v;
  }));

  await find(A);
  await A.page.getByRole("heading", { name: "Looking for someone" }).waitFor();
  await find(B);
  const first = await proposedAmong([A, B]);
  await first.page.getByRole("button", { name: "Decline" }).click();
  await first.page.getByRole("heading", { name: "Looking for someone" }).waitFor(); // back in the queue

  await find(C); // A and B never meet again: C is proposed to one of them
  const second = await proposedAmong([A, B, C]);
  await second.page.getByRole("button", { name: "Accept" }).click();
  const paired = [A, B, C].filter((v) => v !== second);
  const inChat = async (v) => v.page.getByRole("region", { name: "Chat" }).waitFor({ timeout: 3000 }).then(() => true, () => false);
  const [x] = (await Promise.all(paired.map(async (v) => ((await inChat(v)) ? v : null)))).filter(Boolean);
  await second.page.getByRole("region", { name: "Chat" }).waitFor();
  const lonely = [A, B, C].find((v) => v !== second && v !== x);
  assert.equal(await lonely.page.getByRole("heading", { name: "Looking for someone" }).isVisible(), true);

  // Next: x leaves and searches again; the other side sees the stranger left
  await x.page.getByRole("button", { name: "Next" }).click();
  await second.page.getByRole("heading", { name: "The stranger left" }).waitFor();
  const third = await proposedAmong([x, lonely]);
  await third.page.getByRole("button", { name: "Accept" }).click();
  for (const v of [x, lonely]) await v.page.getByRole("region", { name: "Chat" }).waitFor();

  // Leave: both sides are told
  await x.page.getByRole("button", { name: "Leave" }).click();
  await x.page.getByRole("heading", { name: "You left the chat" }).waitFor();
  await lonely.page.getByRole("heading", { name: "The stranger left" }).waitFor();
});

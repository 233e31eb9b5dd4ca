// Debian's chromium driven by playwright-core: headless, --no-sandbox (tests
// run as root). Every page's uncaught errors and console errors, CSP
// violations included, fail the test that opened it.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// Screenshots are test output, kept for people to look at.
export const shots = path.join(root, process.env.BUILD || "build", "test-output");

export async function launchBrowser(t) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  t.after(() => browser.close());
  return browser;
}

// A new context (its own storage, like another browser) and a page in it.
export async function openPage(t, browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  t.after(() => context.close());
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // Chrome's own notes on refused requests and on a send racing a server-side close are not the page's errors
    const benign = /status of (401|404)|WebSocket is already in CLOSING or CLOSED state|ERR_INTERNET_DISCONNECTED/;
    if (m.type() === "error" && !benign.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  t.after(() => assert.deepEqual(problems, [], "the page reported errors"));
  return { context, page };
}

export async function screenshot(page, name) {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

// Runs one official conformance suite (a test-suite/ folder that is not part
// of this repository) in headless Chromium, the event order it was written
// for. Serves the suite's page on a free port with mocha, chai and
// chai-string from our node_modules instead of a CDN, and prints mocha's
// result. Usage: node chromium.mjs SUITE_DIR
import http from "node:http";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../e2e/package.json"));
const { chromium } = require("playwright-core");
const suite = path.resolve(process.argv[2]);
const vendor = {
  "/vendor/mocha.js": require.resolve("mocha/mocha.js"),
  "/vendor/chai.js": require.resolve("chai/chai.js"),
  "/vendor/chai-string.js": require.resolve("chai-string/chai-string.js"),
};

function page() {
  const html = readFileSync(path.join(suite, "index.html"), "utf8")
    .replace(/<link[^>]*unpkg[^>]*>/g, "")
    .replace(/https:\/\/unpkg\.com\/mocha@9\/mocha\.js/, "/vendor/mocha.js")
    .replace(/https:\/\/unpkg\.com\/chai@4\/chai\.js/, "/vendor/chai.js")
    .replace(/https:\/\/unpkg\.com\/chai-string@1\/chai-string\.js/, "/vendor/chai-string.js")
    .replace(/mocha\.run\(\);/, `window.addEventListener("load", () => {
      const failed = [];
      const runner = mocha.run();
      runner.on("fail", (test, err) => failed.push(test.fullTitle() + ": " + err.message));
      runner.on("end", () => { window.__result = { passes: runner.stats.passes, failures: runner.stats.failures, failed }; });
    });`);
  return html;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/" || url.pathname === "/index.html") {
    res.writeHead(200, { "content-type": "text/html" });
    return res.end(page());
  }
  const file = vendor[url.pathname] || (url.pathname === "/test-suite.js" ? path.join(suite, "test-suite.js") : null);
  if (!file) { res.writeHead(404); return res.end(); }
  res.writeHead(200, { "content-type": "text/javascript" });
  res.end(readFileSync(file));
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"],
});
let code = 1;
try {
  const tab = await browser.newPage();
  tab.on("pageerror", (e) => console.error("page error:", e.message));
  await tab.goto(`http://127.0.0.1:${server.address().port}/`);
  const result = await tab.waitForFunction(() => window.__result, null, { timeout: 120000 }).then((h) => h.jsonValue());
  for (const f of result.failed) console.log("FAILED " + f);
  console.log(`${result.passes} passed, ${result.failures} failed`);
  code = result.failures === 0 && result.passes > 0 ? 0 : 1;
} finally {
  await browser.close();
  server.close();
}
process.exit(code);

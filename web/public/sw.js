// The visitor app's service worker: it keeps the app shell (the page, its
// hashed assets, the manifest and icons) so that the app opens without a
// network. It never touches the socket (/socket.io/), the moderator API or
// the console: live traffic always goes to the server.
const SHELL = "nearchat-shell-v1";
const STATIC = ["/", "/manifest.webmanifest", "/icons/icon-192.png", "/icons/icon-512.png"];

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL);
      const page = await fetch("/", { cache: "no-cache" });
      const html = await page.clone().text();
      // the page names its hashed scripts and styles; keep exactly those
      const assets = [...new Set(html.match(/\/assets\/[A-Za-z0-9._-]+/g) || [])];
      await cache.put("/", page);
      await cache.addAll([...STATIC.slice(1), ...assets]);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) if (key !== SHELL) await caches.delete(key);
      await self.clients.claim();
    })(),
  );
});

const bypass = (url) =>
  url.origin !== self.location.origin ||
  url.pathname.startsWith("/socket.io/") ||
  url.pathname.startsWith("/api/") ||
  url.pathname.startsWith("/moderate");

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || bypass(url)) return;
  if (request.mode === "navigate") {
    // the page: fresh when online (a new release), the kept shell when not
    event.respondWith(
      (async () => {
        try {
          const fresh = await fetch(request);
          if (fresh.ok && url.pathname === "/") (await caches.open(SHELL)).put("/", fresh.clone());
          return fresh;
        } catch {
          return (await caches.match("/")) || Response.error();
        }
      })(),
    );
    return;
  }
  // hashed assets never change: the kept copy is as good as the network's
  event.respondWith(
    (async () => {
      const kept = await caches.match(request);
      if (kept) return kept;
      const fresh = await fetch(request);
      if (fresh.ok && url.pathname.startsWith("/assets/")) (await caches.open(SHELL)).put(request, fresh.clone());
      return fresh;
    })(),
  );
});

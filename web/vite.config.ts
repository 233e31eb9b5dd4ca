/// <reference types="vitest" />
// Two pages share one build: the visitor app at / and the moderator console
// at /moderate/. `make` passes the output folder (NEARCHAT_WEB_OUT).
import { resolve } from "node:path";
import { defineConfig } from "vite";

export default defineConfig({
  root: __dirname,
  base: "/",
  build: {
    outDir: process.env.NEARCHAT_WEB_OUT ?? resolve(__dirname, "dist"),
    emptyOutDir: true,
    target: "es2020",
    // Inline nothing: the pages' Content-Security-Policy allows only files the server serves.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    rollupOptions: {
      input: {
        app: resolve(__dirname, "index.html"),
        moderate: resolve(__dirname, "moderate/index.html"),
      },
    },
  },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});

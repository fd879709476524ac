import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The app is served by `valise serve` from the same origin as the API, under a strict CSP: no inline scripts or
// styles, so Vite must not inline its module preload polyfill or any asset as a data: URL script.
// A second entry, src/sw.ts, is the download service worker: emitted as /sw.js at the root (its scope is the origin),
// with a fixed name, no hash and no imports (a classic worker script).
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist/app",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: true,
    chunkSizeWarningLimit: 4096,
    rolldownOptions: {
      input: { index: "index.html", sw: "src/sw.ts" },
      output: {
        entryFileNames: (chunk) => (chunk.name === "sw" ? "sw.js" : "assets/[name]-[hash].js"),
      },
    },
  },
  server: { proxy: { "/v1": { target: "http://127.0.0.1:8080", ws: true } } },
});

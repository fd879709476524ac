import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The app is served by `valise serve` from the same origin as the API, under a strict CSP: no inline scripts or
// styles, so Vite must not inline its module preload polyfill or any asset as a data: URL script.
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
  },
  server: { proxy: { "/v1": { target: "http://127.0.0.1:8080", ws: true } } },
});

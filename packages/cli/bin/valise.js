#!/usr/bin/env node
// Thin launcher so the bin exists (and is executable) before the TypeScript build runs.
import("../dist/src/main.js").catch((err) => {
  if (err && err.code === "ERR_MODULE_NOT_FOUND") {
    console.error("valise: not built yet; run `npm run build` in the repository first");
    process.exit(1);
  }
  throw err;
});

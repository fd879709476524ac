/** `npm run bench`: runs every benchmark in its own process, one after the other (they print tables, write JSON). */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const benches = [
  "mls",
  "delivery",
  "log",
  "detect",
  "detect-online",
  "ioc",
  "documents",
  "cables",
  "sdk",
  "cluster",
  "search",
  "history",
  "restore",
  "profile-writes",
].filter((b) => only.length === 0 || only.includes(b));
let failed = 0;
for (const b of benches) {
  console.log(`\n=== bench/${b} ===`);
  const r = spawnSync(process.execPath, [join(here, b === "detect" ? "detect/run.js" : `${b}.js`)], {
    stdio: "inherit",
  });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);

// Runs every compiled test file (packages/*/dist/test/**/*.test.js) with Node's built-in test runner.
// Usage: node scripts/test.mjs [substring-filter...]
import { readdirSync, statSync, existsSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

const filters = process.argv.slice(2);
const files = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith(".test.js")) files.push(p);
  }
}
for (const pkg of readdirSync("packages")) {
  const dir = join("packages", pkg, "dist", "test");
  if (existsSync(dir)) walk(dir);
}
const selected = files.filter((f) => filters.length === 0 || filters.some((s) => f.includes(s))).sort();
if (selected.length === 0) {
  console.error("no test files found; run `npm run build` first");
  process.exit(1);
}
const concurrency = process.env.VALISE_TEST_CONCURRENCY ?? "2";
const r = spawnSync(
  process.execPath,
  ["--test", "--test-force-exit", `--test-concurrency=${concurrency}`, ...selected],
  {
    stdio: "inherit",
  },
);
process.exit(r.status ?? 1);

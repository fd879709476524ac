// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by file, as a table and as JSON.
// Usage: node scripts/profile-top.mjs FILE.cpuprofile [--top N] [--json OUT.json]
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: "string", default: "25" }, json: { type: "string" } },
});
if (positionals.length !== 1) {
  console.error("usage: node scripts/profile-top.mjs FILE.cpuprofile [--top N] [--json OUT.json]");
  process.exit(2);
}
const p = JSON.parse(readFileSync(positionals[0], "utf8"));
const nodes = new Map(p.nodes.map((n) => [n.id, n]));
const byFn = new Map();
const byFile = new Map();
let total = 0;
const short = (url) =>
  url.includes("/node_modules/") ? url.split("/node_modules/").pop() : url.split("/").slice(-3).join("/");
p.samples.forEach((id, i) => {
  const dt = p.timeDeltas[i] ?? 0;
  const cf = nodes.get(id)?.callFrame;
  if (!cf) return;
  total += dt;
  const file = cf.url ? short(cf.url) : "";
  const fn = `${cf.functionName || "(anonymous)"} ${file}`.trim();
  byFn.set(fn, (byFn.get(fn) ?? 0) + dt);
  byFile.set(file || cf.functionName, (byFile.get(file || cf.functionName) ?? 0) + dt);
});
const top = (m) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, Number(values.top))
    .map(([name, t]) => ({ name, percent: Math.round((1000 * t) / total) / 10, ms: Math.round(t / 1000) }));
const out = { profile: positionals[0], totalMs: Math.round(total / 1000), byFunction: top(byFn), byFile: top(byFile) };
console.log(`total ${out.totalMs} ms of samples`);
for (const r of out.byFunction) console.log(`${String(r.percent).padStart(5)} %  ${r.name}`);
console.log("-- by file");
for (const r of out.byFile) console.log(`${String(r.percent).padStart(5)} %  ${r.name}`);
if (values.json) writeFileSync(values.json, JSON.stringify(out, null, 2) + "\n");

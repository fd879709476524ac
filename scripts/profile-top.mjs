// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by file, and inclusive time (the
// function or anything it called) by function, as a table and as JSON.
// Usage: node scripts/profile-top.mjs FILE.cpuprofile [--top N] [--json OUT.json] [--during FUNCTION]
// --during FUNCTION: only the stretch of the run in which FUNCTION was on the stack (from its 5th to its 95th
// percentile sample), e.g. --during handleSend for a delivery bench's measured sends without its setup.
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: "string", default: "25" }, json: { type: "string" }, during: { type: "string" } },
});
if (positionals.length !== 1) {
  console.error("usage: node scripts/profile-top.mjs FILE.cpuprofile [--top N] [--json OUT.json] [--during FUNCTION]");
  process.exit(2);
}
const p = JSON.parse(readFileSync(positionals[0], "utf8"));
const nodes = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const short = (url) =>
  url.includes("/node_modules/") ? url.split("/node_modules/").pop() : url.split("/").slice(-3).join("/");
const nameOf = (cf) => `${cf.functionName || "(anonymous)"} ${cf.url ? short(cf.url) : ""}`.trim();
const stackOf = (id) => {
  const s = [];
  for (let x = id; x !== undefined; x = parent.get(x)) s.push(nodes.get(x).callFrame);
  return s;
};
// Sample i lasts until sample i + 1 (timeDeltas[i + 1]); its time on the clock is the sum of the deltas so far.
const at = [];
let clock = p.startTime;
for (const d of p.timeDeltas) at.push((clock += d));
let from = -Infinity;
let to = Infinity;
if (values.during) {
  const marked = [];
  p.samples.forEach((id, i) => {
    if (stackOf(id).some((cf) => cf.functionName === values.during)) marked.push(at[i]);
  });
  if (marked.length === 0) {
    console.error(`no sample has ${values.during} on its stack`);
    process.exit(1);
  }
  from = marked[Math.floor(marked.length * 0.05)];
  to = marked[Math.floor(marked.length * 0.95)];
}
const byFn = new Map();
const byFile = new Map();
const inclusive = new Map();
let total = 0;
p.samples.forEach((id, i) => {
  if (at[i] < from || at[i] > to) return;
  const dt = p.timeDeltas[i + 1] ?? 0;
  const cf = nodes.get(id)?.callFrame;
  if (!cf) return;
  total += dt;
  const file = cf.url ? short(cf.url) : "";
  const fn = nameOf(cf);
  byFn.set(fn, (byFn.get(fn) ?? 0) + dt);
  byFile.set(file || cf.functionName, (byFile.get(file || cf.functionName) ?? 0) + dt);
  for (const name of new Set(stackOf(id).map(nameOf))) inclusive.set(name, (inclusive.get(name) ?? 0) + dt);
});
const top = (m) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, Number(values.top))
    .map(([name, t]) => ({ name, percent: Math.round((1000 * t) / total) / 10, ms: Math.round(t / 1000) }));
const out = {
  profile: positionals[0],
  ...(values.during ? { during: values.during, windowMs: Math.round((to - from) / 1000) } : {}),
  totalMs: Math.round(total / 1000),
  byFunction: top(byFn),
  byFile: top(byFile),
  inclusive: top(inclusive),
};
console.log(`total ${out.totalMs} ms of samples${values.during ? ` while ${values.during} ran` : ""}`);
for (const r of out.byFunction) console.log(`${String(r.percent).padStart(5)} %  ${r.name}`);
console.log("-- by file");
for (const r of out.byFile) console.log(`${String(r.percent).padStart(5)} %  ${r.name}`);
console.log("-- inclusive (the function and what it called)");
for (const r of out.inclusive) console.log(`${String(r.percent).padStart(5)} %  ${r.name}`);
if (values.json) writeFileSync(values.json, JSON.stringify(out, null, 2) + "\n");

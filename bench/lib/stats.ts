/** Small helpers for benchmark output: percentiles, a plain-text table, JSON results under bench/results/. */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Percentile by nearest rank over an ascending-sorted array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[k]!;
}

export function printTable(title: string, rows: [string, string | number][]): void {
  const w = Math.max(...rows.map(([k]) => k.length));
  console.log(`\n${title}`);
  console.log("-".repeat(Math.max(title.length, w + 16)));
  for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${typeof v === "number" ? fmt(v) : v}`);
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/** bench/dist/lib/stats.js → bench/results/<name>.json */
export function writeResults(name: string, data: unknown): string {
  const path = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "results", `${name}.json`);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(data, null, 2) + "\n");
  return path;
}

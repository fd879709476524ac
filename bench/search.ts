/**
 * Encrypted search (issue 15 part 3): query time over 100,000 items on this device, in Node. The index is the
 * client's `SearchIndex` (the same module the web app uses); the corpus and queries are bench/lib/search-corpus.ts
 * (browser-safe, for the web app's chromium run). Baseline in the same run: a linear scan over the same items
 * (case- and accent-folded substring match of every word), i.e. what searching without an index costs.
 * Also: index build time, and opening the sealed history of 100,000 messages (decrypt + parse + index).
 *
 *   node bench/dist/search.js [--items N] [--reps N]
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir, cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { HistoryStore, SearchIndex, tokenize, type HistoryData } from "@valise/client";
import { FileSealedRecord } from "@valise/client/node/sealed-file";
import { QUERIES, makeCorpus, runQueries } from "./lib/search-corpus.js";
import { printTable, writeResults } from "./lib/stats.js";

const { values: args } = parseArgs({
  options: { items: { type: "string", default: "100000" }, reps: { type: "string", default: "30" } },
});
const N = Number(args.items);
const REPS = Number(args.reps);

const docs = makeCorpus(N, 42);
let t = performance.now();
const ix = new SearchIndex();
for (const d of docs) ix.add(d);
const buildMs = performance.now() - t;
const indexed = runQueries((q) => ix.search(q, { limit: 50 }).length, QUERIES, REPS);

// Baseline: no index, a scan of every item (folded text prepared once, as an index-less client would keep it).
const fold = (s: string) => tokenize(s).join(" ");
const folded = docs.map((d) => ` ${fold(`${d.title} ${d.reference ?? ""} ${d.from} ${d.text}`)}`);
const scan = runQueries(
  (q) => {
    const words = tokenize(q).map((w) => ` ${w}`);
    let n = 0;
    for (const f of folded) if (words.every((w) => f.includes(w))) n++;
    return Math.min(n, 50);
  },
  QUERIES,
  Math.max(3, Math.floor(REPS / 5)),
);

// The sealed history of 100,000 messages: open (decrypt, parse) and the first search (index build).
const dir = mkdtempSync(join(tmpdir(), "valise-bench-search-"));
let sealed: { bytes: number; saveMs: number; openMs: number; firstSearchMs: number };
try {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const rec = new FileSealedRecord<HistoryData>(join(dir, "history.sealed"), key, "history:bench");
  const h = await HistoryStore.open(rec);
  for (const d of docs)
    h.add({
      conversation: d.conversation ?? "c-docs",
      seq: Number(d.id.split("/").at(-1)!.replace(/\D/g, "")) || 0,
      from: d.from,
      text: `${d.title} ${d.text}`,
      label: d.label,
      time: d.time,
      kind: "message",
    });
  t = performance.now();
  await h.save();
  const saveMs = performance.now() - t;
  t = performance.now();
  const h2 = await HistoryStore.open(
    new FileSealedRecord<HistoryData>(join(dir, "history.sealed"), key, "history:bench"),
  );
  const openMs = performance.now() - t;
  t = performance.now();
  h2.search("embassy");
  const firstSearchMs = performance.now() - t;
  sealed = { bytes: statSync(join(dir, "history.sealed")).size, saveMs, openMs, firstSearchMs };
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const result = {
  bench: "search",
  machine: {
    cpus: cpus().length,
    model: cpus()[0]?.model,
    node: process.version,
    loadavg: (await import("node:os")).loadavg(),
  },
  items: N,
  reps: REPS,
  note:
    "SearchIndex (packages/client/src/search.ts) over a synthetic corpus (bench/lib/search-corpus.ts: 85% messages, " +
    "8% cables with bodies, 5% document names, 2% attachment names; Zipf-like common words, places with accents, a " +
    "long tail of rare words). Query = every word a prefix of a word (AND), top 50 ranked. Baseline: a linear scan " +
    "of the same items (folded text), same queries. Times in ms (median, p95) in Node on this machine; the machine " +
    "was shared (see loadavg).",
  indexBuildMs: Math.round(buildMs),
  queries: indexed.map((x, i) => ({ ...x, scanP50Ms: scan[i]!.p50Ms, scanHits: scan[i]!.hits })),
  sealedHistory: sealed,
};
printTable(`search over ${N} items (ms: indexed p50 / p95 · scan p50)`, [
  ["index build (all items)", Math.round(buildMs)],
  ...indexed.map(
    (x, i) =>
      [
        `${x.name} "${x.q}" (${x.hits} hits)`,
        `${x.p50Ms.toFixed(2)} / ${x.p95Ms.toFixed(2)} · ${scan[i]!.p50Ms.toFixed(1)}`,
      ] as [string, string],
  ),
  ["sealed history: bytes", sealed.bytes],
  ["sealed history: save (seal+write) ms", Math.round(sealed.saveMs)],
  ["sealed history: open (read+decrypt+parse) ms", Math.round(sealed.openMs)],
  ["sealed history: first search (index build) ms", Math.round(sealed.firstSearchMs)],
]);
console.log(`wrote ${writeResults("search", result)}`);

/**
 * A reproducible corpus and query set for the search benchmark (issue 15 part 3). Browser-safe (no node: imports):
 * the web app's benchmark can import it and run the same queries over `SearchIndex` in chromium.
 *
 *   const docs = makeCorpus(100_000, 42);            // SearchDoc[]: messages, cables, documents, attachments
 *   const ix = new SearchIndex(); for (const d of docs) ix.add(d);
 *   const rows = runQueries((q) => ix.search(q, { limit: 50 }).length, QUERIES, 20);
 */
import type { SearchDoc } from "@valise/client/search";

/** A small deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const COMMON = (
  "the of and to in a is that for on with as by at from this be are was it an will we our have has not their " +
  "meeting embassy minister visit delegation talks agreement report ministry policy border trade security visa " +
  "consulate ambassador cable request approval schedule travel budget press statement summit negotiation treaty " +
  "sanctions energy water health education migration customs courier protocol draft note reply urgent update"
).split(" ");
const PLACES = "Tokyo Beijing Seoul Hanoi Delhi Jakarta Manila Canberra Bangkok Ulaanbaatar Tōkyō Kraków Zürich".split(
  " ",
);
const NAMES = "jnovak pdvorak ksvoboda mcerny amira lchen hkim tnguyen rsingh ebrown".split(" ");

/** A vocabulary of `n` rare made-up words (syllables), so the index holds a realistic long tail. */
function rareWords(n: number, r: () => number): string[] {
  const syl = "ka ri to mu se na lo vi ze pa du ne ho sa ji".split(" ");
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let w = "";
    const k = 2 + Math.floor(r() * 3);
    for (let j = 0; j < k; j++) w += syl[Math.floor(r() * syl.length)]!;
    out.push(w + String(i % 97));
  }
  return out;
}

function sentence(r: () => number, rare: string[], words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    const x = r();
    out.push(
      x < 0.75
        ? COMMON[Math.floor(Math.pow(r(), 2) * COMMON.length)]! // Zipf-ish: early words more often
        : x < 0.85
          ? PLACES[Math.floor(r() * PLACES.length)]!
          : rare[Math.floor(r() * rare.length)]!,
    );
  }
  return out.join(" ");
}

/** `n` items: ~85% messages (5–40 words), ~8% cables (subject + 60–200 word body), ~5% documents, ~2% attachments. */
export function makeCorpus(n: number, seed = 42): SearchDoc[] {
  const r = rng(seed);
  const rare = rareWords(20_000, r);
  const docs: SearchDoc[] = [];
  const t0 = Date.UTC(2025, 0, 1);
  for (let i = 0; i < n; i++) {
    const x = r();
    const time = new Date(t0 + i * 60_000).toISOString();
    const from = NAMES[Math.floor(r() * NAMES.length)]!;
    const label = x < 0.5 ? "CONFIDENTIAL/ASIA" : "SECRET/ASIA";
    if (x < 0.85)
      docs.push({
        id: `m:c-${i % 500}/${i}`,
        kind: "message",
        title: "",
        text: sentence(r, rare, 5 + Math.floor(r() * 35)),
        from,
        label,
        time,
        conversation: `c-${i % 500}`,
      });
    else if (x < 0.93)
      docs.push({
        id: `c:${i}`,
        kind: "cable",
        title: sentence(r, rare, 4 + Math.floor(r() * 6)),
        text: sentence(r, rare, 60 + Math.floor(r() * 140)),
        from: `${from} EMB/BEIJING`,
        label,
        time,
        reference: `EMB/BEIJING-2025-${String(i).padStart(5, "0")}`,
        ref: String(i),
      });
    else if (x < 0.98)
      docs.push({
        id: `d:${i}/1`,
        kind: "document",
        title: `${sentence(r, rare, 3)}.pdf`,
        text: "",
        from,
        label,
        time,
        ref: `${i}/1`,
      });
    else
      docs.push({
        id: `a:${i}/0`,
        kind: "attachment",
        title: `${sentence(r, rare, 2)}.docx`,
        text: "",
        from,
        label,
        time,
        reference: `EMB/BEIJING-2025-${String(i).padStart(5, "0")}`,
        ref: String(i),
      });
  }
  return docs;
}

/** Queries of each kind a user types: a common word, a prefix, two words, a place with accents, rare, a reference, none. */
export const QUERIES: { name: string; q: string }[] = [
  { name: "common word", q: "embassy" },
  { name: "3-letter prefix", q: "neg" },
  { name: "two words (AND)", q: "visa tokyo" },
  { name: "accented place", q: "Kraków" },
  { name: "rare word", q: "karito1" },
  { name: "sender + word", q: "pdvorak treaty" },
  { name: "cable reference prefix", q: "BEIJING-2025-042" },
  { name: "no match", q: "xylophone" },
  { name: "one letter (worst case)", q: "s" },
];

/** Runs each query `reps` times; median and p95 in ms, and the number of hits. */
export function runQueries(
  search: (q: string) => number,
  queries: { name: string; q: string }[],
  reps: number,
  now: () => number = () => performance.now(),
): { name: string; q: string; hits: number; p50Ms: number; p95Ms: number }[] {
  return queries.map(({ name, q }) => {
    const times: number[] = [];
    let hits = 0;
    search(q); // warm
    for (let i = 0; i < reps; i++) {
      const t = now();
      hits = search(q);
      times.push(now() - t);
    }
    times.sort((a, b) => a - b);
    const at = (p: number) => times[Math.min(times.length - 1, Math.max(0, Math.ceil(p * times.length) - 1))]!;
    return { name, q, hits, p50Ms: at(0.5), p95Ms: at(0.95) };
  });
}

/**
 * Encrypted search (issue 15 part 3): an in-memory inverted index over what this device holds — its messages,
 * cables (subject, body, reference, sender), document names and attachment names. Browser-safe (no `node:`
 * imports): the web app and the CLI use the same module. The index itself is never stored or sent anywhere: it is
 * rebuilt from the sealed local history (history.ts) when the store is opened, and updated as items arrive.
 *
 * API (for the web app):
 *   const ix = new SearchIndex();
 *   ix.add({ id: "m:c-…/12", kind: "message", title: "", text: "…", from: "amira", label: "SECRET", time, … });
 *   ix.add(sameIdAgain)            // replaces the earlier entry (e.g. a cable's body once opened)
 *   ix.remove(id)
 *   ix.search("nego tok", { limit: 50, kinds: ["cable"] })  // → SearchHit[], best first
 * A query is words; every word must match (AND), as a prefix of a word of the item (case and accents ignored):
 * "nego tok" finds "Negotiation in Tōkyō". A word in double quotes must match a whole word. Hits are ranked by how
 * many query words match in the title/reference/sender, then newest first (by arrival: add items in time order;
 * HistoryStore does).
 */

export type SearchKind = "message" | "cable" | "document" | "attachment";

export interface SearchDoc {
  /** Unique: "m:CONV/SEQ", "c:CABLEID", "d:DOCID/VERSION", "a:CABLEID/INDEX" (see history.ts). */
  id: string;
  kind: SearchKind;
  /** Cable subject, document or attachment file name; "" for a message. */
  title: string;
  /** Message text, cable body. */
  text: string;
  /** Sender handle (cables: releasing user and originating unit). */
  from: string;
  label: string;
  /** ISO 8601. */
  time: string;
  /** Cable reference (for a cable and its attachments). */
  reference?: string;
  conversation?: string;
  /** Cable or document id (and version) the item opens. */
  ref?: string;
}

export interface SearchHit {
  doc: SearchDoc;
  score: number;
  /** A short extract of the text around the first match ("" when the match is only in the title). */
  snippet: string;
}

const WORD = /[\p{L}\p{N}]+/gu;
const ASCII_WORD = /[a-z0-9]+/g;
const NON_ASCII = /[^\x00-\x7f]/;

/** Lower-case words with accents removed ("Tōkyō" → "tokyo"). */
export function tokenize(s: string): string[] {
  if (!NON_ASCII.test(s)) return s.toLowerCase().match(ASCII_WORD) ?? [];
  const n = s
    .normalize("NFKD")
    .replace(/\p{M}+/gu, "")
    .toLowerCase();
  return n.match(WORD) ?? [];
}

/** The longest text indexed per item (a cable body beyond this is searched only in its first part). */
export const MAX_INDEXED_TEXT = 64 * 1024;

/**
 * Postings are arrays of slots (arrival order); a query turns each word's postings into a bitset over the slots,
 * intersects them, and walks the result from the newest slot down, so a query costs about the number of postings
 * its words match plus one pass over the bitset, whatever the ranking.
 */
export class SearchIndex {
  private docs: (SearchDoc | null)[] = [];
  private readonly slotOf = new Map<string, number>();
  /** token → slots (ascending; may hold removed slots, skipped at query time). */
  private readonly postings = new Map<string, number[]>();
  /** The same for the tokens of title, reference and sender (ranked higher). */
  private readonly strongPostings = new Map<string, number[]>();
  private sorted: string[] | null = null;
  private live = 0;

  get size(): number {
    return this.live;
  }

  add(doc: SearchDoc): void {
    if (this.slotOf.has(doc.id)) this.remove(doc.id);
    const slot = this.docs.length;
    this.docs.push(doc);
    this.slotOf.set(doc.id, slot);
    this.live++;
    const strong = new Set(tokenize(`${doc.title} ${doc.reference ?? ""} ${doc.from}`));
    const all = new Set(strong);
    for (const t of tokenize(doc.text.length > MAX_INDEXED_TEXT ? doc.text.slice(0, MAX_INDEXED_TEXT) : doc.text))
      all.add(t);
    for (const t of strong) {
      const p = this.strongPostings.get(t);
      if (p) p.push(slot);
      else this.strongPostings.set(t, [slot]);
    }
    for (const t of all) {
      const p = this.postings.get(t);
      if (p) p.push(slot);
      else {
        this.postings.set(t, [slot]);
        this.sorted = null;
      }
    }
  }

  remove(id: string): void {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return;
    this.docs[slot] = null;
    this.slotOf.delete(id);
    this.live--;
  }

  get(id: string): SearchDoc | undefined {
    const s = this.slotOf.get(id);
    return s === undefined ? undefined : (this.docs[s] ?? undefined);
  }

  private tokens(): string[] {
    return (this.sorted ??= [...this.postings.keys()].sort());
  }

  /** Index tokens starting with `prefix` (binary search over the sorted vocabulary). */
  private withPrefix(prefix: string): string[] {
    const toks = this.tokens();
    let lo = 0;
    let hi = toks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (toks[mid]! < prefix) lo = mid + 1;
      else hi = mid;
    }
    const out: string[] = [];
    for (let i = lo; i < toks.length && toks[i]!.startsWith(prefix); i++) out.push(toks[i]!);
    return out;
  }

  private bits(map: Map<string, number[]>, toks: string[], words: number): Uint32Array {
    const b = new Uint32Array(words);
    for (const k of toks) {
      const p = map.get(k);
      if (p) for (const s of p) b[s >>> 5]! |= 1 << (s & 31);
    }
    return b;
  }

  /**
   * Items matching every word of `query` (see the module comment), best first: the items whose title, reference or
   * sender match more of the words first, then the most recently added.
   */
  search(query: string, opts: { limit?: number; kinds?: SearchKind[] } = {}): SearchHit[] {
    const limit = Math.max(1, opts.limit ?? 50);
    const terms: { word: string; exact: boolean }[] = [];
    for (const m of query.matchAll(/"([^"]*)"|(\S+)/g)) {
      const exact = m[1] !== undefined;
      for (const w of tokenize(m[1] ?? m[2] ?? "")) terms.push({ word: w, exact });
    }
    if (terms.length === 0) return [];
    const per = terms
      .map((t) => {
        const toks = t.exact ? (this.postings.has(t.word) ? [t.word] : []) : this.withPrefix(t.word);
        let n = 0;
        for (const k of toks) n += this.postings.get(k)!.length;
        return { ...t, toks, n };
      })
      .sort((a, b) => a.n - b.n);
    if (per[0]!.n === 0) return [];
    const words = (this.docs.length + 31) >>> 5;
    let cand: Uint32Array | null = null;
    for (const t of per) {
      const b = this.bits(this.postings, t.toks, words);
      if (cand === null) cand = b;
      else {
        let any = 0;
        for (let i = 0; i < words; i++) any |= cand[i]! &= b[i]!;
        if (any === 0) return [];
      }
    }
    const strong = per.map((t) => this.bits(this.strongPostings, t.toks, words));
    const kinds = opts.kinds ? new Set(opts.kinds) : null;
    const T = per.length;
    const buckets: number[][] = Array.from({ length: T + 1 }, () => []);
    outer: for (let w = words - 1; w >= 0; w--) {
      let x = cand![w]!;
      while (x !== 0) {
        const bit = 31 - Math.clz32(x);
        x &= ~(1 << bit);
        const slot = (w << 5) | bit;
        const doc = this.docs[slot];
        if (!doc || (kinds && !kinds.has(doc.kind))) continue;
        let score = 0;
        for (const sb of strong) if (sb[w]! & (1 << bit)) score++;
        const bucket = buckets[score]!;
        if (bucket.length < limit) bucket.push(slot);
        if (buckets[T]!.length >= limit) break outer;
      }
    }
    const out: SearchHit[] = [];
    const folded = per.map((t) => t.word);
    for (let score = T; score >= 0 && out.length < limit; score--)
      for (const slot of buckets[score]!) {
        if (out.length >= limit) break;
        const doc = this.docs[slot]!;
        out.push({ doc, score: 1 + 2 * score, snippet: snippet(doc.text, folded) });
      }
    return out;
  }
}

/** Up to ~120 characters of `text` around the first word starting with one of `words`. */
function snippet(text: string, words: string[]): string {
  if (!text) return "";
  const head = text.length > MAX_INDEXED_TEXT ? text.slice(0, MAX_INDEXED_TEXT) : text;
  let at = -1;
  for (const m of head.matchAll(WORD)) {
    const [w] = tokenize(m[0]);
    if (w !== undefined && words.some((q) => w.startsWith(q))) {
      at = m.index;
      break;
    }
  }
  if (at < 0) return text.length > 120 ? `${text.slice(0, 117)}…` : text;
  const start = Math.max(0, at - 40);
  const out = text.slice(start, start + 120).replace(/\s+/g, " ");
  return `${start > 0 ? "…" : ""}${out}${start + 120 < text.length ? "…" : ""}`;
}

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
 * many query words match in the title/reference/sender (weighted) and then by time, newest first.
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

/** Lower-case words with accents removed ("Tōkyō" → "tokyo"). */
export function tokenize(s: string): string[] {
  const n = s
    .normalize("NFKD")
    .replace(/\p{M}+/gu, "")
    .toLowerCase();
  return n.match(WORD) ?? [];
}

/** The longest text indexed per item (a cable body beyond this is searched only in its first part). */
export const MAX_INDEXED_TEXT = 64 * 1024;

export class SearchIndex {
  private docs: (SearchDoc | null)[] = [];
  private readonly slotOf = new Map<string, number>();
  /** token → slots (ascending; may hold removed slots, filtered at query time). */
  private readonly postings = new Map<string, number[]>();
  /** Field-weighted tokens: slot → tokens of title/reference/from (for ranking). */
  private readonly strong: (Set<string> | null)[] = [];
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
    const strong = new Set([...tokenize(doc.title), ...tokenize(doc.reference ?? ""), ...tokenize(doc.from)]);
    this.strong.push(strong);
    const all = new Set([...strong, ...tokenize(doc.text.slice(0, MAX_INDEXED_TEXT))]);
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
    this.strong[slot] = null;
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

  search(query: string, opts: { limit?: number; kinds?: SearchKind[] } = {}): SearchHit[] {
    const limit = opts.limit ?? 50;
    const terms: { word: string; exact: boolean }[] = [];
    for (const m of query.matchAll(/"([^"]*)"|(\S+)/g)) {
      const exact = m[1] !== undefined;
      for (const w of tokenize(m[1] ?? m[2] ?? "")) terms.push({ word: w, exact });
    }
    if (terms.length === 0) return [];
    // Per term: the tokens it matches; the rarest term first.
    const per = terms
      .map((t) => {
        const toks = t.exact ? (this.postings.has(t.word) ? [t.word] : []) : this.withPrefix(t.word);
        let n = 0;
        for (const k of toks) n += this.postings.get(k)!.length;
        return { ...t, toks, n };
      })
      .sort((a, b) => a.n - b.n);
    if (per[0]!.n === 0) return [];
    let cand: Set<number> | null = null;
    for (const t of per) {
      const next = new Set<number>();
      for (const k of t.toks) for (const s of this.postings.get(k)!) if (cand === null || cand.has(s)) next.add(s);
      cand = next;
      if (cand.size === 0) return [];
    }
    const kinds = opts.kinds ? new Set(opts.kinds) : null;
    const hits: { slot: number; score: number; time: string }[] = [];
    for (const slot of cand!) {
      const doc = this.docs[slot];
      if (!doc || (kinds && !kinds.has(doc.kind))) continue;
      const strong = this.strong[slot]!;
      let score = 1;
      for (const t of per) if (t.toks.some((k) => strong.has(k))) score += 2;
      hits.push({ slot, score, time: doc.time });
    }
    hits.sort((a, b) => b.score - a.score || (a.time < b.time ? 1 : a.time > b.time ? -1 : b.slot - a.slot));
    return hits.slice(0, limit).map((h) => {
      const doc = this.docs[h.slot]!;
      return {
        doc,
        score: h.score,
        snippet: snippet(
          doc.text,
          per.map((t) => t.word),
        ),
      };
    });
  }
}

/** Up to ~120 characters of `text` around the first word starting with one of `words`. */
function snippet(text: string, words: string[]): string {
  if (!text) return "";
  const folded = text
    .normalize("NFKD")
    .replace(/\p{M}+/gu, "")
    .toLowerCase();
  // Folding may change lengths; the position is used as an approximation in the original text.
  let at = -1;
  for (const m of folded.matchAll(WORD))
    if (words.some((w) => m[0].startsWith(w))) {
      at = m.index;
      break;
    }
  if (at < 0) return text.length > 120 ? `${text.slice(0, 117)}…` : text;
  const start = Math.max(0, at - 40);
  const out = text.slice(start, start + 120).replace(/\s+/g, " ");
  return `${start > 0 ? "…" : ""}${out}${start + 120 < text.length ? "…" : ""}`;
}

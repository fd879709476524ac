/**
 * The device's message history and search index (issues 14 part 1 and 15 part 3). MLS decrypts a message once, so
 * what this device received or sent is kept here: messages (conversation, seq, from, text, label, time), the cables
 * and documents it saw (for search: subject, body once opened, reference, sender, file names) and the state of
 * history transfers to/from this user's other devices. Browser-safe; persisted through a `SealedRecord` — the
 * browser's `IndexedDbSealedRecord` (AES-GCM under a non-extractable key in IndexedDB) or, on Node,
 * `FileSealedRecord` (client/src/node/sealed-file.ts: AES-256-GCM, file mode 0600, key derived from the device's
 * private key in the profile). The search index is never stored: it is rebuilt in memory when the store is opened.
 *
 * API (web app and CLI):
 *   const h = await HistoryStore.open(record);          // record: { load(): Promise<T|null>; save(T): Promise<void> }
 *   h.record(items)                                     // ReceivedItem[] from sync: messages, documents, cables
 *   h.recordSent({ conversation, seq, from, text, label, time })
 *   h.noteCable({ id, reference, subject, …, body, attachments })   // e.g. once a cable was opened
 *   h.messages(conversation) / h.conversations() / h.search(query, { limit, kinds })
 *   h.transfersIn()                                     // history received from another device: complete or not
 *   await h.save()                                      // seals and writes (serialised; call after changes)
 * In the browser: `HistoryStore.open(new IndexedDbSealedRecord<HistoryData>(await openValiseDb(), "device-history:" +
 * handle))` — not "history:" + handle, which the web app's own read-marks record (packages/web/src/history.ts) uses.
 * Pass the same opener as `ClientOptions.history` so sync/send record into it and approvals send/receive it.
 */
import type { ReceivedItem } from "./items.js";
import { SearchIndex, type SearchHit, type SearchKind } from "./search.js";

export interface HistoryMessage {
  conversation: string;
  seq: number;
  from: string;
  device?: string;
  text: string;
  label: string;
  time: string;
  /** "message" (text), "document" (a share: text is the file name). */
  kind: "message" | "document";
}

export interface CableEntry {
  id: string;
  reference: string;
  subject: string;
  /** Releasing user (or, if unknown, the originating unit). */
  from: string;
  originator: string;
  label: string;
  time: string;
  precedence?: string;
  /** Known once the cable was opened on this device. */
  body?: string;
  attachments?: string[];
}

export interface DocumentEntry {
  id: string;
  version: number;
  name: string;
  label: string;
  from: string;
  time: string;
}

/** The signed description of a history transfer (see history-transfer.ts). */
export interface HistoryManifest {
  v: 1;
  id: string;
  from: { user: string; device: string };
  to: { user: string; device: string };
  createdAt: string;
  /** Total messages in the transfer and, per conversation, its label, count and last seq (the cursor). */
  messages: number;
  conversations: { conversation: string; label: string; count: number; cursor: number }[];
  batches: { index: number; blob: string; size: number; header: string; count: number; sha256: string }[];
  /** SHA-256 (hex) of the batches' SHA-256 values (hex) joined by "\n", in order. */
  contentHash: string;
  /**
   * Earlier transfers from the same device to this device that this one replaces (it holds all their messages and
   * more): e.g. one whose batches the server reaped before they were fetched. The receiver stops fetching them and no
   * longer counts them: this transfer's own completeness is what counts.
   */
  supersedes?: string[];
}

export interface IncomingTransfer {
  id: string;
  from: { user: string; device: string };
  manifest: HistoryManifest;
  /** The transfer key (base64): AES key of the batches. */
  key: string;
  received: number[];
  /** Batches refused (altered, wrong count or hash): index → why. */
  refused: { index: number; why: string }[];
  receivedAt: string;
}

export interface OutgoingTransfer {
  id: string;
  device: string;
  key: string;
  /** The snapshot: the first `count` messages of the store (append-only), so a resume rebuilds the same batches. */
  count: number;
  batches: HistoryManifest["batches"];
  manifestSent: boolean;
  uploaded: number[];
  done: boolean;
  startedAt: string;
  /** Earlier transfers to the same device this one replaces (in its manifest). */
  supersedes?: string[];
  /** Given up: a batch's blob was gone from the server (reaped) before the device had it; a new transfer replaced it. */
  abandoned?: string;
}

export interface HistoryData {
  v: 1;
  messages: HistoryMessage[];
  cables: CableEntry[];
  documents: DocumentEntry[];
  incoming: IncomingTransfer[];
  outgoing: OutgoingTransfer[];
}

/** Where the history is kept, sealed: `IndexedDbSealedRecord` (browser) or `FileSealedRecord` (Node). */
export interface SealedRecord<T> {
  load(): Promise<T | null>;
  save(value: T): Promise<void>;
}

export class MemorySealedRecord<T> implements SealedRecord<T> {
  private v: string | null = null;
  async load(): Promise<T | null> {
    return this.v === null ? null : (JSON.parse(this.v) as T);
  }
  async save(value: T): Promise<void> {
    this.v = JSON.stringify(value);
  }
}

const empty = (): HistoryData => ({ v: 1, messages: [], cables: [], documents: [], incoming: [], outgoing: [] });
const msgKey = (conversation: string, seq: number) => `${conversation}/${seq}`;

export class HistoryStore {
  /** Messages per batch of a history transfer sent from here (history-transfer.ts; tests make it small). */
  transferBatch = 1000;
  private ix: SearchIndex | null = null;
  private readonly seen = new Set<string>();
  private readonly cableById = new Map<string, CableEntry>();
  private readonly docByKey = new Map<string, DocumentEntry>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly record_: SealedRecord<HistoryData>,
    readonly data: HistoryData,
  ) {
    for (const m of data.messages) this.seen.add(msgKey(m.conversation, m.seq));
    for (const c of data.cables) this.cableById.set(c.id, c);
    for (const d of data.documents) this.docByKey.set(`${d.id}/${d.version}`, d);
  }

  /** The search index, built on first use from what the store holds, then kept up to date. */
  get index(): SearchIndex {
    if (this.ix) return this.ix;
    const ix = new SearchIndex();
    this.ix = ix;
    for (const add of this.ordered(ix)) add();
    return ix;
  }

  /** What to add to `ix`, in time order (the index ranks newer items first among equals by arrival). */
  private ordered(ix: SearchIndex): (() => void)[] {
    const all: { time: string; add: () => void }[] = [
      ...this.data.messages.map((m) => ({ time: m.time, add: () => this.indexMessage(m, ix) })),
      ...this.data.cables.map((c) => ({ time: c.time, add: () => this.indexCable(c, ix) })),
      ...this.data.documents.map((d) => ({ time: d.time, add: () => this.indexDocument(d, ix) })),
    ];
    all.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
    return all.map((x) => x.add);
  }

  /**
   * Builds the search index ahead of the first search, in slices of about `sliceMs` with a macrotask between them,
   * so a page that opened a large store stays responsive meanwhile (the web app calls it after login). A search
   * before it finishes builds the index at once (this build then stops); an item added meanwhile makes it start over.
   */
  async prepareIndex(sliceMs = 25): Promise<void> {
    const pause = () => new Promise<void>((r) => setTimeout(r, 0));
    for (let attempt = 0; attempt < 3 && !this.ix; attempt++) {
      const changes = this.changes;
      const ix = new SearchIndex();
      let t = Date.now();
      for (const add of this.ordered(ix)) {
        add();
        if (Date.now() - t < sliceMs) continue;
        await pause();
        if (this.ix || this.changes !== changes) break;
        t = Date.now();
      }
      if (this.ix) return;
      if (this.changes === changes) {
        this.ix = ix;
        return;
      }
    }
  }

  /** Counts changes to what is indexed (prepareIndex starts over when it moved). */
  private changes = 0;

  static async open(record: SealedRecord<HistoryData>): Promise<HistoryStore> {
    const d = (await record.load()) ?? empty();
    if (d.v !== 1) throw new Error(`unsupported history version ${String(d.v)}`);
    for (const k of ["messages", "cables", "documents", "incoming", "outgoing"] as const) d[k] ??= [];
    return new HistoryStore(record, d);
  }

  /** Seals and writes the whole store; writes are serialised (the last one wins, each complete). */
  save(): Promise<void> {
    const w = this.writing.then(() => this.record_.save(this.data));
    this.writing = w.catch(() => undefined);
    return w;
  }

  private indexMessage(m: HistoryMessage, ix = this.ix): void {
    if (!ix || m.kind !== "message") return; // a share is indexed as its document
    ix.add({
      id: `m:${msgKey(m.conversation, m.seq)}`,
      kind: "message",
      title: "",
      text: m.text,
      from: m.from,
      label: m.label,
      time: m.time,
      conversation: m.conversation,
    });
  }

  private indexCable(c: CableEntry, ix = this.ix): void {
    if (!ix) return;
    ix.add({
      id: `c:${c.id}`,
      kind: "cable",
      title: c.subject,
      text: c.body ?? "",
      from: c.from === c.originator ? c.from : `${c.from} ${c.originator}`,
      label: c.label,
      time: c.time,
      reference: c.reference,
      ref: c.id,
    });
    (c.attachments ?? []).forEach((name, i) =>
      ix.add({
        id: `a:${c.id}/${i}`,
        kind: "attachment",
        title: name,
        text: "",
        from: c.from,
        label: c.label,
        time: c.time,
        reference: c.reference,
        ref: c.id,
      }),
    );
  }

  private indexDocument(d: DocumentEntry, ix = this.ix): void {
    if (!ix) return;
    ix.add({
      id: `d:${d.id}/${d.version}`,
      kind: "document",
      title: d.name,
      text: "",
      from: d.from,
      label: d.label,
      time: d.time,
      ref: `${d.id}/${d.version}`,
    });
  }

  /** Adds a message unless one with its conversation and seq is held; true if added. */
  add(m: HistoryMessage): boolean {
    if (m.seq < 0 || this.seen.has(msgKey(m.conversation, m.seq))) return false;
    this.data.messages.push(m);
    this.seen.add(msgKey(m.conversation, m.seq));
    this.changes++;
    this.indexMessage(m);
    return true;
  }

  /** Records what a sync returned: messages, document shares and cables (alerts and the rest are not history). */
  record(items: readonly ReceivedItem[]): number {
    let n = 0;
    for (const it of items) {
      if (it.type === "message") {
        const m: HistoryMessage = {
          conversation: it.conversation,
          seq: it.seq,
          from: it.from,
          device: it.device,
          text: it.text,
          label: it.label,
          time: it.time,
          kind: "message",
        };
        if (this.add(m)) n++;
      } else if (it.type === "document") {
        if (this.add({ ...base(it), kind: "document" })) n++;
        this.noteDocument({
          id: it.id,
          version: it.version,
          name: it.text,
          label: it.label,
          from: it.from,
          time: it.time,
        });
      } else if (it.type === "cable") {
        this.noteCable({
          id: it.id,
          reference: it.reference,
          subject: it.text,
          from: it.from || it.originator,
          originator: it.originator,
          label: it.label,
          time: it.time,
          precedence: it.precedence,
        });
        n++;
      }
    }
    return n;
  }

  /** A message this device sent (seq from the server's answer). */
  recordSent(m: Omit<HistoryMessage, "kind">): boolean {
    return this.add({ ...m, kind: "message" });
  }

  /** Adds or completes a cable (a later call with its body and attachment names adds them to the index). */
  noteCable(c: CableEntry): void {
    const held = this.cableById.get(c.id);
    const next: CableEntry = held
      ? {
          ...held,
          ...Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined && v !== "")),
        }
      : c;
    if (held) this.data.cables[this.data.cables.indexOf(held)] = next;
    else this.data.cables.push(next);
    this.cableById.set(c.id, next);
    this.changes++;
    if (held && this.ix) for (let i = 0; i < (held.attachments ?? []).length; i++) this.ix.remove(`a:${c.id}/${i}`);
    this.indexCable(next);
  }

  noteDocument(d: DocumentEntry): void {
    const k = `${d.id}/${d.version}`;
    const held = this.docByKey.get(k);
    if (held) this.data.documents[this.data.documents.indexOf(held)] = d;
    else this.data.documents.push(d);
    this.docByKey.set(k, d);
    this.changes++;
    this.indexDocument(d);
  }

  /** A conversation's messages in order, or all of them (by time) when no conversation is given. */
  messages(conversation?: string): HistoryMessage[] {
    if (conversation === undefined)
      return [...this.data.messages].sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.seq - b.seq));
    return this.data.messages.filter((m) => m.conversation === conversation).sort((a, b) => a.seq - b.seq);
  }

  /** Per conversation: its label (of the last message), message count and last seq. */
  conversations(): { conversation: string; label: string; count: number; cursor: number; lastTime: string }[] {
    const out = new Map<
      string,
      { conversation: string; label: string; count: number; cursor: number; lastTime: string }
    >();
    for (const m of this.data.messages) {
      const c = out.get(m.conversation) ?? {
        conversation: m.conversation,
        label: m.label,
        count: 0,
        cursor: 0,
        lastTime: "",
      };
      c.count++;
      if (m.seq >= c.cursor) {
        c.cursor = m.seq;
        c.label = m.label;
      }
      if (m.time > c.lastTime) c.lastTime = m.time;
      out.set(m.conversation, c);
    }
    return [...out.values()].sort((a, b) => (a.lastTime < b.lastTime ? 1 : -1));
  }

  cables(): CableEntry[] {
    return [...this.data.cables];
  }

  search(query: string, opts: { limit?: number; kinds?: SearchKind[] } = {}): SearchHit[] {
    return this.index.search(query, opts);
  }

  /** History received from this user's other devices, with whether each transfer is complete. */
  transfersIn(): {
    id: string;
    from: { user: string; device: string };
    complete: boolean;
    batches: number;
    received: number;
    messages: number;
    refused: { index: number; why: string }[];
  }[] {
    return this.data.incoming
      .filter((t) => !supersededIncoming(this.data, t))
      .map((t) => ({
        id: t.id,
        from: t.from,
        complete: t.received.length === t.manifest.batches.length && t.refused.length === 0,
        batches: t.manifest.batches.length,
        received: t.received.length,
        messages: t.manifest.messages,
        refused: t.refused,
      }));
  }
}

/**
 * Is this incoming transfer replaced by a later one from the same device (its signed manifest's `supersedes`)? Then
 * it is neither fetched nor counted (the later transfer holds all of it and reports its own completeness).
 */
export function supersededIncoming(data: HistoryData, t: IncomingTransfer): boolean {
  return data.incoming.some(
    (o) => o.id !== t.id && o.from.device === t.from.device && (o.manifest.supersedes ?? []).includes(t.id),
  );
}

function base(it: { conversation: string; seq: number; from: string; text: string; label: string; time: string }) {
  return { conversation: it.conversation, seq: it.seq, from: it.from, text: it.text, label: it.label, time: it.time };
}

/**
 * What the screens show of conversations, kept in this browser (sealed in IndexedDB like the profile, surviving a
 * reload): the message list with "joined" notes, and the read marks (unread counts, read cables). The messages
 * themselves come from the SDK's device history (`client.history()`, session.ts `deviceHistory`), which is the
 * record: sync, push and send record into it, and a history transfer from another of this user's devices lands in
 * it. `importFrom` copies what it holds that this list lacks (by conversation and seq), so transferred history shows
 * here like anything received.
 */
import type { HistoryStore } from "@valise/client";
import { IndexedDbSealedRecord, openValiseDb } from "@valise/client/browser/idb-store";

export interface Msg {
  conversation: string;
  seq: number;
  from: string;
  text: string;
  label: string;
  time: string;
  kind: "message" | "joined" | "document";
}

interface Stored {
  messages: Msg[];
  readSeq: Record<string, number>;
  readCables: string[];
}

export class History {
  private constructor(
    private readonly rec: IndexedDbSealedRecord<Stored>,
    private data: Stored,
  ) {}

  static async open(handle: string): Promise<History> {
    const rec = new IndexedDbSealedRecord<Stored>(await openValiseDb(), `history:${handle}`);
    return new History(rec, (await rec.load()) ?? { messages: [], readSeq: {}, readCables: [] });
  }

  async add(msgs: Msg[]): Promise<void> {
    if (msgs.length === 0) return;
    const seen = new Set(this.data.messages.map((m) => `${m.conversation}/${m.seq}`));
    for (const m of msgs) if (!seen.has(`${m.conversation}/${m.seq}`)) this.data.messages.push(m);
    await this.rec.save(this.data);
  }

  /** Adds the device history's messages from `from` on (the store is append-only); returns where to start next. */
  async importFrom(store: HistoryStore, from: number): Promise<number> {
    const all = store.data.messages;
    await this.add(
      all.slice(from).map((m) => ({
        conversation: m.conversation,
        seq: m.seq,
        from: m.from,
        text: m.kind === "document" ? `Shared document: ${m.text}` : m.text,
        label: m.label,
        time: m.time,
        kind: m.kind,
      })),
    );
    return all.length;
  }

  /** Every conversation this list holds messages of. */
  conversations(): string[] {
    return [...new Set(this.data.messages.map((m) => m.conversation))];
  }

  thread(conversation: string): Msg[] {
    return this.data.messages.filter((m) => m.conversation === conversation).sort((a, b) => a.seq - b.seq);
  }

  unread(conversation: string): number {
    const r = this.data.readSeq[conversation] ?? 0;
    return this.data.messages.filter((m) => m.conversation === conversation && m.kind !== "joined" && m.seq > r).length;
  }

  /** The last message seq read in a conversation (0: none). */
  readUpTo(conversation: string): number {
    return this.data.readSeq[conversation] ?? 0;
  }

  unreadTotal(): number {
    return [...new Set(this.data.messages.map((m) => m.conversation))].reduce((n, c) => n + this.unread(c), 0);
  }

  async markRead(conversation: string): Promise<void> {
    const max = Math.max(0, ...this.thread(conversation).map((m) => m.seq));
    if ((this.data.readSeq[conversation] ?? 0) >= max) return;
    this.data.readSeq[conversation] = max;
    await this.rec.save(this.data);
  }

  cableRead(id: string): boolean {
    return this.data.readCables.includes(id);
  }

  async markCableRead(id: string): Promise<void> {
    if (this.cableRead(id)) return;
    this.data.readCables.push(id);
    await this.rec.save(this.data);
  }
}

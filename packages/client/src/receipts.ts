/**
 * Delivered/read state of text messages (issue 15 item 2), end to end. A receipt is an application payload
 * (`{t:"receipt", state:"delivered"|"read", seqs:[…]}`, items.ts) sent inside the conversation's own MLS group: only
 * its members can read or forge one; the server learns only that one more MLS message was sent.
 *
 * Receiving side (with `ClientOptions.receipts`): the seqs of text messages from other users that this device
 * decrypted are owed a receipt. After a sync (or a pushed message) one "delivered" receipt per conversation lists
 * them; `markRead(conversation)` (the web app calls it when it shows the thread) sends one "read" receipt for those
 * not yet acknowledged as read. A seq this device could not decrypt is never in either list, and no receipt is ever
 * sent for a receipt.
 *
 * Sending side (always): this user's own messages in a conversation (sent from here, or decrypted from another of
 * this user's devices) get a record; a receipt counts only for those, only for seqs before its own, only from another
 * user's device (the MLS-authenticated sender), and never lowers a state (read stays read). The state is kept in the
 * profile (sealed like the rest) and exposed by `ValiseClient.messageState(s)` and the `onReceipts` event.
 *
 * Browser-safe (no node: imports).
 */
import { ValiseError } from "@valise/core";
import type { ConversationState } from "./profile.js";
import type { ProfileRepository } from "./profile-repo.js";
import { MAX_RECEIPT_SEQS, type ReceiptPayload } from "./items.js";
import { nullRecord, own } from "./schema.js";

export type ReceiptState = "delivered" | "read";

/** Where one own message stands: "sent" (stored by the server), "delivered" (decrypted by a device of another member), "read". */
export interface MessageState {
  conversation: string;
  seq: number;
  state: "sent" | "delivered" | "read";
  /** Other users with at least one device that decrypted the message (read implies delivered). */
  deliveredTo: string[];
  /** Other users with at least one device that showed it. */
  readBy: string[];
  /** Per receiving device. */
  devices: { device: string; user: string; state: ReceiptState }[];
}

/** The profile slices receipts use: their own (created on first write) and the conversations, read only. */
export type ReceiptSlices = Pick<ProfileRepository, "receipts" | "storedReceipts" | "conversation">;

/** What the receipt logic needs of the client (kept narrow: testable, and client.ts stays a few hook lines). */
export interface ReceiptHost {
  handle(): string;
  /** The profile's receipts slice (and the conversations, read to find where owed receipts go). */
  profile(): ReceiptSlices;
  /** Sends the payload in the conversation's MLS group. */
  send(conversation: string, payload: ReceiptPayload): Promise<unknown>;
  save(): Promise<void>;
}

/** Own messages remembered per conversation (the oldest records are dropped beyond this). */
export const MAX_TRACKED_PER_CONVERSATION = 2_000;
/** Owed acknowledgements kept per conversation while they cannot be sent (the oldest are dropped beyond this). */
const MAX_OWED = 5 * MAX_RECEIPT_SEQS;

const rank = (s: ReceiptState | undefined) => (s === "read" ? 2 : s === "delivered" ? 1 : 0);
const transient = (e: unknown) =>
  !(e instanceof ValiseError) || ["transport_error", "store_error", "internal", "unauthenticated"].includes(e.code);

/** Conversations that carry text between people: a receipt is sent and counted only there. */
export function receiptsApply(conv: ConversationState): boolean {
  return !conv.historyFor && (conv.kind === "direct" || conv.kind === "group" || conv.kind === "unit");
}

export class Receipts {
  /** Called when receipts changed the state of own messages (the web app re-renders the thread). */
  onReceipts: ((e: { conversation: string; seqs: number[] }) => void) | null = null;
  /** Receipts applied so far (receivePushed: a pushed receipt needs no full catch-up). */
  applied = 0;

  /** Send receipts for what this device decrypts (ClientOptions.receipts); incoming receipts are always applied. */
  sending = false;

  constructor(private readonly host: ReceiptHost) {}

  private get data(): ProfileRepository["receipts"] {
    return this.host.profile().receipts;
  }

  /** An own message (sent from this device, or decrypted from another device of this user): receipts may count. */
  sent(conv: ConversationState, seq: number): void {
    if (!receiptsApply(conv) || seq < 1) return;
    const d = this.data;
    const per = own(d.sent, conv.id) ?? (d.sent[conv.id] = nullRecord());
    if (!Object.hasOwn(per, String(seq))) per[String(seq)] = nullRecord();
    const keys = Object.keys(per);
    if (keys.length > MAX_TRACKED_PER_CONVERSATION)
      for (const k of keys
        .map(Number)
        .sort((a, b) => a - b)
        .slice(0, keys.length - MAX_TRACKED_PER_CONVERSATION))
        delete per[String(k)];
  }

  /** A text message this device decrypted: own (another device of this user) or owed a receipt. */
  decrypted(conv: ConversationState, seq: number, from: string): void {
    if (from === this.host.handle()) return this.sent(conv, seq);
    if (!this.sending || !receiptsApply(conv)) return;
    const d = this.data;
    const o = own(d.owed, conv.id) ?? (d.owed[conv.id] = { delivered: [], unread: [] });
    if (!o.delivered.includes(seq)) o.delivered.push(seq);
    if (!o.unread.includes(seq)) o.unread.push(seq);
    if (o.delivered.length > MAX_OWED) o.delivered.splice(0, o.delivered.length - MAX_OWED);
    if (o.unread.length > MAX_OWED) o.unread.splice(0, o.unread.length - MAX_OWED);
  }

  /**
   * A receipt decrypted in `conv` at `atSeq` from `sender` (authenticated by MLS). Applied only to this user's own
   * messages before `atSeq`, only from another user, never lowering a state. Returns the seqs whose state changed.
   */
  receive(
    conv: ConversationState,
    p: ReceiptPayload,
    sender: { user: string; device: string },
    atSeq: number,
  ): number[] {
    this.applied++;
    if (sender.user === this.host.handle() || !receiptsApply(conv)) return [];
    const per = own(this.host.profile().storedReceipts?.sent, conv.id);
    if (!per) return [];
    const changed: number[] = [];
    for (const seq of p.seqs) {
      if (seq >= atSeq) continue; // a receipt cannot acknowledge what came after it
      const rec = own(per, String(seq));
      if (!rec) continue; // not one of this user's messages (or forgotten): ignored
      const before = own(rec, sender.device);
      if (rank(before?.state) >= rank(p.state)) continue;
      rec[sender.device] = { user: sender.user, state: p.state };
      changed.push(seq);
    }
    if (changed.length > 0) this.onReceipts?.({ conversation: conv.id, seqs: changed });
    return changed;
  }

  /** Sends the "delivered" receipts owed (one per conversation); what could not be sent stays owed. */
  async flush(): Promise<number> {
    if (!this.sending) return 0;
    const owed = this.host.profile().storedReceipts?.owed;
    if (!owed) return 0;
    let sent = 0;
    for (const id of Object.keys(owed)) {
      const o = owed[id]!;
      if (o.delivered.length === 0) continue;
      const conv = this.host.profile().conversation(id);
      if (!conv || !receiptsApply(conv)) {
        delete owed[id];
        continue;
      }
      const seqs = [...o.delivered].sort((a, b) => a - b);
      if (await this.sendAll(id, "delivered", seqs)) {
        o.delivered = o.delivered.filter((s) => !seqs.includes(s));
        sent++;
      }
      if (o.delivered.length === 0 && o.unread.length === 0) delete owed[id];
    }
    if (sent > 0) await this.host.save();
    return sent;
  }

  /**
   * The user was shown `conversation` (up to `upTo`, default everything): one "read" receipt for the messages this
   * device decrypted there and has not yet acknowledged as read. Returns how many messages it acknowledged (0: none
   * owed, or receipts are off).
   */
  async markRead(conversation: string, upTo = Number.MAX_SAFE_INTEGER): Promise<number> {
    const o = own(this.host.profile().storedReceipts?.owed, conversation);
    if (!this.sending || !o) return 0;
    const seqs = o.unread.filter((s) => s <= upTo).sort((a, b) => a - b);
    if (seqs.length === 0) return 0;
    // Taken out first: a second call while this one is on its way sends nothing twice.
    o.unread = o.unread.filter((s) => !seqs.includes(s));
    const delivered = o.delivered;
    o.delivered = o.delivered.filter((s) => !seqs.includes(s)); // read says delivered too
    if (!(await this.sendAll(conversation, "read", seqs))) {
      o.unread.push(...seqs);
      o.delivered = delivered;
      return 0;
    }
    await this.host.save();
    return seqs.length;
  }

  /** Sends seqs in receipts of at most MAX_RECEIPT_SEQS; false when a transient failure left them owed. */
  private async sendAll(conversation: string, state: ReceiptState, seqs: number[]): Promise<boolean> {
    try {
      for (let i = 0; i < seqs.length; i += MAX_RECEIPT_SEQS)
        await this.host.send(conversation, { t: "receipt", state, seqs: seqs.slice(i, i + MAX_RECEIPT_SEQS) });
      return true;
    } catch (e) {
      // The server unreachable: tried again later. Refused (the conversation gone, this device removed): dropped.
      return !transient(e);
    }
  }

  /** The state of one own message, or null when it is not one this device tracks. */
  state(conversation: string, seq: number): MessageState | null {
    const rec = own(own(this.host.profile().storedReceipts?.sent, conversation), String(seq));
    if (!rec) return null;
    const devices = Object.entries(rec)
      .map(([device, r]) => ({ device, user: r.user, state: r.state }))
      .sort((a, b) => (a.device < b.device ? -1 : 1));
    const deliveredTo = [...new Set(devices.map((d) => d.user))].sort();
    const readBy = [...new Set(devices.filter((d) => d.state === "read").map((d) => d.user))].sort();
    return {
      conversation,
      seq,
      state: readBy.length > 0 ? "read" : deliveredTo.length > 0 ? "delivered" : "sent",
      deliveredTo,
      readBy,
      devices,
    };
  }

  /** Every tracked own message of a conversation, in seq order. */
  states(conversation: string): MessageState[] {
    const per = own(this.host.profile().storedReceipts?.sent, conversation);
    if (!per) return [];
    return Object.keys(per)
      .map(Number)
      .sort((a, b) => a - b)
      .map((s) => this.state(conversation, s)!);
  }
}

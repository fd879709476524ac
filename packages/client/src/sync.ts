/**
 * The sync orchestrator: bringing the device up to date (`sync`, `catchUp`: the directory log read first, then
 * Welcomes, each changed conversation, owed key forwards, the cable queue, key packages, the outboxes), the outboxes
 * that make sends survive a crash (`deliver`, `send`), and listening for pushes (`listen`: a pushed message applied by
 * itself, a directory change read alone, anything else a full catch-up).
 */
import {
  ValiseError,
  canonicalLabel,
  describeStaleness,
  dominates,
  parseLabel,
  randomId,
  toBase64,
} from "@valise/core";
import { generateKeyPackages, groupMembers, type DeviceKeys } from "@valise/protocol";
import { VALISE_CLIENT, type HttpTransport } from "./transport.js";
import type { ConversationTarget } from "./profile.js";
import type { ProfileRepository } from "./profile-repo.js";
import type { Authed } from "./session.js";
import { alertItem, transient, type ConversationEngine } from "./conversations.js";
import type { DirectoryDoor } from "./verifier.js";
import type { TransparencyVerifier } from "./transparency.js";
import type { Receipts } from "./receipts.js";
import type { CablePayload, DocumentPayload, ReceivedItem } from "./items.js";
import { checkAgainstServer } from "./cables.js";
import { heldCable } from "./held-keys.js";
import { forwardClientTag, forwardPayloads, shareCutoff, shareKey, sharedSince, travelsIn } from "./forward.js";
import type { HistoryStore } from "./history.js";
import { fetchHistoryBatches, type TransferHost } from "./history-transfer.js";
import {
  isAlertFrame,
  openPush,
  pushedMessage,
  type AlertFrame,
  type PushChannel,
  type PushEvent,
  type WebSocketFactory,
} from "./push.js";

export const INITIAL_KEY_PACKAGES = 20;
const MIN_KEY_PACKAGES = 10;

/** How often `sync` audits the directory answers of the people this device talks to against the log. */
export const MEMBER_AUDIT_MS = 60_000;

/** An owed key forward (see ConversationEngine.noteNewMembers). */
export type OwedForward = ProfileRepository["forwards"][number];

/**
 * The profile slices the orchestrator works on: identity, conversations and groups, the held keys (read), key
 * packages, the outbox lists (texts, key deliveries, owed forwards) and the pending items.
 */
export type SyncSlices = Pick<
  ProfileRepository,
  | "identity"
  | "conversations"
  | "group"
  | "heldKeys"
  | "keyPackages"
  | "outbox"
  | "textOutbox"
  | "storedOutbox"
  | "setOutbox"
  | "pending"
>;

/** What the sync orchestrator needs of the client around it. */
export interface SyncHost {
  readonly profile: SyncSlices;
  readonly transport: HttpTransport;
  /** The door (the log, with key transparency). */
  readonly verifier: DirectoryDoor;
  /** Key transparency (monitoring, the member audit); null for a profile without trust anchors. */
  readonly transparency: TransparencyVerifier | null;
  readonly engine: ConversationEngine;
  /** Delivered/read state of text messages (receipts.ts). */
  readonly receipts: Receipts;
  readonly keys: DeviceKeys;
  readonly authed: Authed;
  login(): Promise<void>;
  save(): Promise<void>;
  history(): Promise<HistoryStore> | null;
  transferHost(): TransferHost;
}

export class SyncOrchestrator {
  private lastLogError: string | null = null;
  /** When sync last audited the directory answers of this device's conversation members (auditMembers). */
  private lastMemberAudit = 0;
  private logStale = false;
  /** The open push channel of `listen` (sends go over it while open). */
  push: PushChannel | null = null;

  constructor(private readonly host: SyncHost) {}

  private get profile(): SyncSlices {
    return this.host.profile;
  }
  private get transport(): HttpTransport {
    return this.host.transport;
  }
  private get verifier(): DirectoryDoor {
    return this.host.verifier;
  }
  private get transparency(): TransparencyVerifier | null {
    return this.host.transparency;
  }
  private get engine(): ConversationEngine {
    return this.host.engine;
  }
  private get receipts(): Receipts {
    return this.host.receipts;
  }
  private get handle(): string {
    return this.profile.identity.handle;
  }
  private get deviceId(): string {
    return this.profile.identity.deviceId;
  }
  private authed<T>(fn: () => Promise<T>): Promise<T> {
    return this.host.authed(fn);
  }
  private save(): Promise<void> {
    return this.host.save();
  }
  private history(): Promise<HistoryStore> | null {
    return this.host.history();
  }

  // ---------------------------------------------------------------- receive

  /**
   * Fetches everything new: Welcomes first (joins), then each conversation's log in order. Returns the new items,
   * including any that an internal catch-up (before a send) received but nobody has been handed yet. With key
   * transparency, the first sync of this client and then one a minute also audit the directory answers of everyone
   * this device shares a conversation with against the log (sends check only when the log changed).
   */
  async sync(): Promise<ReceivedItem[]> {
    if (this.transparency && Date.now() - this.lastMemberAudit >= MEMBER_AUDIT_MS) {
      const started = Date.now();
      await this.authed(() => this.engine.auditMembers());
      this.lastMemberAudit = started; // only a completed audit counts: after an outage the next sync audits again
    }
    await this.catchUp();
    await this.receipts.flush();
    const items = this.profile.pending;
    const h = await this.history();
    if (h) {
      // History received from another own device (after its approval): the batches the server holds now.
      const alerts = await this.authed(() => fetchHistoryBatches(this.host.transferHost(), h));
      for (const a of alerts) items.push(alertItem(a, -1, Date.now()));
      h.record(items);
      await h.save();
    }
    this.profile.pending = [];
    await this.save();
    return items;
  }

  /** Fetches and processes everything new into the pending items; state is saved at the end. */
  async catchUp(): Promise<void> {
    return this.authed(async () => {
      const items = this.profile.pending;
      await this.monitorLog(items);
      await this.engine.processInbox(items);
      const remote = await this.transport.conversations();
      for (const rc of remote) {
        const local = this.profile.conversations[rc.id];
        if (!local || rc.headSeq <= local.cursor || (rc.leftSeq != null && local.cursor >= rc.leftSeq - 1)) continue;
        await this.engine.syncConversation(rc.id, items);
      }
      await this.followForKeys(items);
      await this.cableQueue(items);
      await this.replenishKeyPackages();
      await this.save();
      // Kept as soon as decrypted (MLS decrypts once): a command that catches up without handing items over (an
      // archive export, a send) still has them in the device's history.
      const h = await this.history();
      if (h && h.record(items) > 0) await h.save();
      for (const entry of [...(this.profile.storedOutbox("outbox") ?? [])]) await this.flushEntry(entry);
      for (const entry of [...(this.profile.storedOutbox("textOutbox") ?? [])])
        await this.flushText(entry).catch((e: unknown) => {
          if (transient(e)) throw e;
          items.push(
            alertItem(`a queued message was not sent: ${e instanceof Error ? e.message : String(e)}`, -1, Date.now()),
          );
        });
      if ((this.profile.storedOutbox("textOutbox") ?? []).length === 0) this.profile.setOutbox("textOutbox", undefined);
    });
  }

  /**
   * Cables not yet acknowledged by this device, FLASH first (the server's queue order), as items placed ahead of
   * everything else this sync returns. Each is checked against the metadata its sender signed; a mismatch is an
   * alert and stays unacknowledged.
   */
  private async cableQueue(items: ReceivedItem[]): Promise<void> {
    const out: ReceivedItem[] = [];
    const refused = new Set<string>();
    for (;;) {
      const queue = (await this.transport.cableQueue(500)).filter((c) => !refused.has(c.id));
      if (queue.length === 0) break;
      let acked = 0;
      for (const c of queue) {
        const p = heldCable(this.profile.heldKeys, c.id);
        if (!p) {
          refused.add(c.id); // the key has not arrived (yet): stays queued
          continue;
        }
        try {
          checkAgainstServer(p, c);
        } catch (e) {
          refused.add(c.id);
          out.push(alertItem(e instanceof Error ? e.message : String(e), -1, c.createdAt));
          continue;
        }
        await this.transport.cableReceipt(c.id, "delivered");
        acked++;
        if (c.senderDevice === this.deviceId) continue; // our own cable: nothing new to show
        out.push({
          type: "cable",
          from: c.sender,
          conversation: "",
          label: c.label,
          text: p.subject,
          seq: 0,
          time: new Date(c.createdAt).toISOString(),
          id: c.id,
          reference: c.reference,
          precedence: c.precedence,
          originator: c.originator,
          action: c.action,
          info: c.info,
          corrects: c.corrects,
        });
      }
      if (acked === 0) break;
    }
    items.unshift(...out);
  }

  /**
   * Monitoring: new directory log entries about this user become alert items, and changes to the units it belongs to
   * and the people it talks to (members joining or leaving, new devices, …) become `directory` items — before
   * anything new is encrypted to them.
   */
  private async monitorLog(items: ReceivedItem[]): Promise<void> {
    if (!this.transparency) return;
    const { alerts, notices, error } = await this.transparency.monitor();
    for (const n of notices)
      items.push({
        type: "directory",
        from: n.user ?? "",
        conversation: "",
        label: "",
        text: n.text,
        seq: n.logIndex,
        time: new Date(n.time).toISOString(),
        event: n.event,
        unit: n.unit,
        device: n.device,
      });
    for (const a of alerts) items.push(alertItem(a.text, a.logIndex, a.time));
    if (error && error !== this.lastLogError) items.push(alertItem(error, -1, Date.now()));
    this.lastLogError = error;
    // Freshness (issue 13): a checkpoint no witness quorum cosigned recently is an alert, once per stale spell; sends
    // go on (witnesses may be briefly late), and `valise log status` shows it.
    const f = this.transparency.freshness();
    if (f.stale && !this.logStale)
      items.push(alertItem(capitalize(describeStaleness("directory log", f)), -1, Date.now()));
    this.logStale = f.stale;
  }

  private async replenishKeyPackages(): Promise<void> {
    const { count } = await this.transport.keyPackageCount();
    if (count >= MIN_KEY_PACKAGES) return;
    const kps = await generateKeyPackages(this.host.keys, INITIAL_KEY_PACKAGES);
    await this.transport.uploadKeyPackages(kps.map((k) => k.publicBytes));
    this.profile.keyPackages.push(
      ...kps.map((k) => ({ ref: k.ref, publicBytes: toBase64(k.publicBytes), privateBytes: toBase64(k.privateBytes) })),
    );
  }

  // ---------------------------------------------------------------- key forwards

  /** Sends the owed forwards (see noteNewMembers); one that fails for an outage stays owed. */
  private async flushForwards(items: ReceivedItem[]): Promise<void> {
    for (const f of [...(this.profile.storedOutbox("forwards") ?? [])]) await this.flushOne(f, items);
    if ((this.profile.storedOutbox("forwards") ?? []).length === 0) this.profile.setOutbox("forwards", undefined);
  }

  async flushOne(f: OwedForward, items: ReceivedItem[]): Promise<void> {
    {
      const conv = this.profile.conversations[f.conversation];
      try {
        if (conv) {
          // The recipient as the directory (the log, with key transparency) tells it: no proof, no keys.
          const to = await this.verifier.user(f.to);
          // A late member gets what the unit's share window (`unit.share`) allows; the user's own approved device
          // and the unit's archive get everything.
          const cutoff = to && f.device === undefined ? await shareCutoff(this.verifier, conv, to, Date.now()) : null;
          const shared =
            cutoff === null ? null : await sharedSince(this.transport, this.profile.heldKeys, conv, cutoff);
          const payloads = forwardPayloads(
            this.profile.heldKeys,
            conv,
            to,
            f.device,
            (p) => !shared || shared.has(shareKey(p)),
          );
          for (const [i, p] of payloads.entries())
            await this.engine.sendPayload(conv.id, p, `fwd-${f.id}-${i}`, forwardClientTag(VALISE_CLIENT, f.to));
        }
      } catch (e) {
        if (transient(e)) throw e; // stays owed: the next sync retries under the same idempotency keys
        const why = e instanceof Error ? e.message : String(e);
        items.push(alertItem(`keys were not forwarded to ${f.to}: ${why}`, -1, Date.now()));
      }
      this.profile.setOutbox(
        "forwards",
        (this.profile.storedOutbox("forwards") ?? []).filter((x) => x.id !== f.id),
      );
      await this.save();
    }
  }

  /**
   * Membership follows the directory for the conversations whose keys this device could forward: a cleared member
   * of the unit with no device in the group yet is added now (and gets the keys), instead of when someone next
   * sends there. Failures are alerts; the sync goes on.
   */
  private async followForKeys(items: ReceivedItem[]): Promise<void> {
    if ((this.profile.storedOutbox("forwards") ?? []).length > 0) await this.flushForwards(items);
    const held: (CablePayload | DocumentPayload)[] = [
      ...Object.values(this.profile.heldKeys.cables ?? {}),
      ...Object.values(this.profile.heldKeys.documents ?? {}).flatMap((vs) => Object.values(vs)),
    ];
    for (const conv of Object.values(this.profile.conversations)) {
      if ((conv.kind !== "unit" && conv.kind !== "link") || !conv.unit) continue;
      if (!held.some((p) => p.sender !== "" && travelsIn(conv, p))) continue;
      try {
        const inGroup = new Set(groupMembers(this.profile.group(conv.id)).map((m) => m.user as string));
        const label = parseLabel(conv.label);
        let missing = false;
        for (const u of await this.engine.intendedUsers(conv)) {
          if (inGroup.has(u)) continue;
          const du = await this.verifier.user(u);
          if (du && dominates(parseLabel(du.clearance), label) && du.devices.some((d) => d.revokedAt === null))
            missing = true;
        }
        if (missing) await this.engine.reconcile(conv.id);
      } catch (e) {
        if (transient(e)) throw e;
        items.push(
          alertItem(
            `could not add a new member of ${conv.unit} to its ${conv.label} channel: ${e instanceof Error ? e.message : String(e)}`,
            -1,
            Date.now(),
          ),
        );
      }
    }
    if ((this.profile.storedOutbox("forwards") ?? []).length > 0) await this.flushForwards(items);
  }

  // ---------------------------------------------------------------- outboxes

  /**
   * Sends a key payload to its target's conversation. It is written to the outbox first and removed once the
   * server acknowledged it, so a crash in between is retried (same idempotency key) by the next sync.
   */
  async deliver(target: ConversationTarget, payload: CablePayload | DocumentPayload): Promise<void> {
    const entry = { conversation: target, payload, idempotencyKey: randomId("c").slice(2) };
    this.profile.outbox.push(entry);
    await this.save();
    await this.flushEntry(entry);
    await this.save();
  }

  /**
   * Sends one outbox entry. The sender (`deliver`) and a background sync may both reach the same entry: they share
   * one attempt, and an entry already acknowledged is not sent again — two attempts raced to create two
   * conversations and sent the same idempotency key to both (the server refused the second: 409).
   */
  private flushEntry(entry: ProfileRepository["outbox"][number]): Promise<void> {
    return this.engine.singleFlight(`outbox:${entry.idempotencyKey}`, async () => {
      if (!(this.profile.storedOutbox("outbox") ?? []).some((e) => e.idempotencyKey === entry.idempotencyKey)) return;
      const conv = await this.engine.conversationFor(entry.conversation);
      await this.engine.sendPayload(conv.id, entry.payload, entry.idempotencyKey);
      this.profile.setOutbox(
        "outbox",
        (this.profile.storedOutbox("outbox") ?? []).filter((e) => e.idempotencyKey !== entry.idempotencyKey),
      );
    });
  }

  /** Sends one message of the text outbox (see `send`), once for concurrent callers; null if already sent. */
  private flushText(entry: ProfileRepository["textOutbox"][number]): Promise<{ seq: number } | null> {
    return this.engine.singleFlight(`text:${entry.idempotencyKey}`, async () => {
      if (!(this.profile.storedOutbox("textOutbox") ?? []).some((e) => e.idempotencyKey === entry.idempotencyKey))
        return null;
      const drop = () =>
        this.profile.setOutbox(
          "textOutbox",
          (this.profile.storedOutbox("textOutbox") ?? []).filter((e) => e.idempotencyKey !== entry.idempotencyKey),
        );
      try {
        const conv = await this.engine.conversationFor(entry.conversation);
        const r = await this.engine.sendPayload(conv.id, { t: "text", text: entry.text }, entry.idempotencyKey);
        drop();
        return r;
      } catch (e) {
        // Refused (not cleared, not verified, …): it was not stored and never will be; only outages stay queued.
        if (!transient(e)) drop();
        throw e;
      }
    });
  }

  /** Sends a text to a user (direct conversation) or a unit (its channel), creating the conversation if needed. */
  async send(
    to: string,
    text: string,
    labelText = "UNCLASSIFIED",
  ): Promise<{ conversation: string; seq: number; label: string }> {
    const label = canonicalLabel(labelText);
    return this.authed(async () => {
      await this.catchUp();
      // Through the outbox: if this process dies or the server fails before the answer, the message may have been
      // stored; the next sync or send retries it under the same idempotency key (the server stores it once).
      const entry = {
        conversation: await this.engine.targetFor(to, label),
        text,
        idempotencyKey: randomId("c").slice(2),
      };
      // Kept by the save that makes the ratchet advance durable before the ciphertext leaves (sendPayloadNow), or by
      // an earlier one (a new conversation, a reconcile): in the outbox before anything can reach the server.
      this.profile.textOutbox.push(entry);
      let r: { seq: number } | null;
      try {
        r = await this.flushText(entry);
      } catch (e) {
        if (e instanceof ValiseError && transient(e))
          throw new ValiseError(
            e.code,
            `${e.message}; the message may have reached the server: it stays in this device's outbox and the next ` +
              `send or sync retries it under the same idempotency key (the server stores it once)`,
            { ...(e.details ?? {}), outbox: entry.idempotencyKey },
          );
        throw e;
      }
      await this.save();
      const conv = await this.engine.conversationFor(entry.conversation);
      const h = await this.history();
      if (h && r) {
        h.recordSent({
          conversation: conv.id,
          seq: r.seq,
          from: this.handle,
          device: this.deviceId,
          text,
          label,
          time: new Date().toISOString(),
        });
        await h.save();
      }
      return { conversation: conv.id, seq: r?.seq ?? 0, label };
    });
  }

  // ---------------------------------------------------------------- push

  /**
   * Listens for pushes and hands new items to `onItems` as they arrive: a full catch-up on connecting, then each
   * pushed message is applied by itself (the next one of its conversation: no request; a later one: that
   * conversation is fetched); other events (a Welcome, a commit, a cable key) catch up in full. All of it serialized.
   * While listening, messages are sent over the same socket. Returns a handle to stop listening.
   */
  async listen(
    factory: WebSocketFactory,
    onItems: (items: ReceivedItem[]) => void,
    opts: { monitorMs?: number; onAlert?: (a: AlertFrame) => void } = {},
  ): Promise<{ close(): void }> {
    await this.host.login();
    let chain = Promise.resolve();
    const run = (f: () => Promise<ReceivedItem[]>) => {
      chain = chain
        .then(f)
        .then((items) => {
          if (items.length > 0) onItems(items);
        })
        .catch(() => undefined);
    };
    const syncNow = () => run(() => this.sync());
    // `{"type":"directory"}`: the directory log's checkpoint grew; with key transparency, read the log now (notices,
    // new-device alerts) and nothing else; several frames before that read starts make one read.
    let directoryQueued = false;
    const readLogNow = () => {
      if (!this.transparency || directoryQueued) return;
      directoryQueued = true;
      run(() => {
        directoryQueued = false;
        return this.directoryChanged();
      });
    };
    const ch = await openPush(factory, this.profile.identity.serverUrl, this.transport.token ?? "", (ev) =>
      isAlertFrame(ev)
        ? opts.onAlert?.(ev)
        : ev.type === "message"
          ? run(() => this.receivePushed(ev))
          : ev.type === "directory"
            ? readLogNow()
            : syncNow(),
    );
    this.push = ch;
    syncNow(); // (re)connected: whatever arrived while not listening
    // With key transparency, read the log on a timer too (default every 30 s; a server that pushes `directory` frames
    // makes it sooner), so a device added to this account is reported within a minute even if a frame is lost.
    const timer = this.transparency ? setInterval(syncNow, opts.monitorMs ?? 30_000) : undefined;
    return {
      close: () => {
        if (timer) clearInterval(timer);
        if (this.push === ch) this.push = null;
        ch.close();
      },
    };
  }

  /** A pushed directory change: the log is read (monitoring: notices and alerts as items), nothing else. */
  private async directoryChanged(): Promise<ReceivedItem[]> {
    return this.authed(async () => {
      const items = this.profile.pending;
      await this.monitorLog(items);
      this.profile.pending = [];
      await this.save();
      return items;
    });
  }

  /**
   * One pushed message: applied directly when it is the next of a known conversation and an application message
   * that yields an item (text, document); fetched with its conversation when messages are missing before it; anything
   * else (unknown conversation, commit, cable key, forward, refusal) takes the full catch-up.
   */
  private async receivePushed(ev: PushEvent): Promise<ReceivedItem[]> {
    const id = ev.conversationId;
    const conv = id ? this.profile.conversations[id] : undefined;
    const m = pushedMessage(ev);
    if (!id || !conv || !m || m.kind !== "application") return this.sync();
    if (m.seq <= conv.cursor) return [];
    const items = this.profile.pending;
    const before = items.length;
    const receipts = this.receipts.applied;
    await this.authed(() => this.engine.syncConversation(id, items, m.seq === conv.cursor + 1 ? [m] : undefined));
    const fresh = items.slice(before);
    if ((fresh.length === 0 && this.receipts.applied === receipts) || fresh.some((i) => i.type === "alert"))
      return this.sync();
    await this.receipts.flush();
    this.profile.pending = [];
    await this.save();
    return items;
  }
}

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

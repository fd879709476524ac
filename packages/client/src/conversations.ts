/**
 * The conversation engine: the device's MLS groups and what happens in them — joining from Welcomes, processing each
 * conversation's log in order (receive), creating conversations, keeping membership with the directory (reconcile:
 * revoked and uncleared devices out, new ones in, keys owed to members who join later), and encrypting and posting
 * application messages one at a time per conversation (send). Group states live in the profile repository.
 */
import {
  ValiseError,
  canonicalLabel,
  dominates,
  fromBase64,
  fromUtf8,
  isConversationId,
  parseLabel,
  randomId,
  utf8,
  type DeviceId,
} from "@valise/core";
import {
  addDevices,
  createGroup,
  encryptMessage,
  externalRejoin,
  groupMembers,
  joinFromWelcome,
  processApplications,
  processMessage,
  removeDevices,
  type CommitOutput,
  type Group,
  type GroupContext,
  type KeyPackageBundle,
} from "@valise/protocol";
import type { HttpTransport, ServerConversation, ServerMessage } from "./transport.js";
import type { Incoming } from "@valise/protocol";

/**
 * How old the directory log size a write's answer carried may be and still stand for asking again (logSize). As
 * fresh as a request of its own would be, give or take this long.
 */
const DIRECTORY_SIZE_FRESH_MS = 250;

/** The longest run of application messages decrypted ahead at once (syncConversation). */
const RUN_MAX = 256;
import type { ConversationState, ConversationTarget } from "./profile.js";
import type { ProfileRepository } from "./profile-repo.js";
import type { DirectoryDoor } from "./verifier.js";
import {
  messageAad,
  parsePayload,
  type AppPayload,
  type ForwardPayload,
  type HistoryPayload,
  type ReceiptPayload,
  type ReceivedItem,
} from "./items.js";
import type { Receipts } from "./receipts.js";
import { acceptCable, acceptDocument } from "./held-keys.js";
import { acceptForward } from "./forward.js";
import type { HistoryStore } from "./history.js";
import { acceptHistoryPayload, type TransferHost } from "./history-transfer.js";
import type { ContentHost } from "./host.js";
import type { PushChannel } from "./push.js";

export const MAX_RETRIES = 5;

/**
 * The profile slices the engine works on: identity (read), the conversations with their inbox cursor and MLS group
 * states, key packages, the held keys (keys received are accepted into them), owed forwards and the pending items.
 */
export type EngineSlices = Pick<
  ProfileRepository,
  | "identity"
  | "conversations"
  | "inboxCursor"
  | "group"
  | "setGroup"
  | "deleteConversation"
  | "keyPackages"
  | "heldKeys"
  | "forwards"
  | "pending"
>;

/** What the engine needs of the client around it. */
export interface EngineHost {
  readonly profile: EngineSlices;
  readonly transport: HttpTransport;
  /** The door: every device added or kept is checked through it (the log, with key transparency). */
  readonly verifier: DirectoryDoor;
  readonly ctx: GroupContext;
  /** Where forwarded keys are checked and kept. */
  readonly content: ContentHost;
  save(): Promise<void>;
  history(): Promise<HistoryStore> | null;
  transferHost(): TransferHost;
  /** The open push channel (sends go over it), or null. */
  push(): PushChannel | null;
  /** Delivered/read state of text messages (receipts.ts). */
  readonly receipts: Receipts;
}

export class ConversationEngine {
  constructor(private readonly host: EngineHost) {}

  private get transport(): HttpTransport {
    return this.host.transport;
  }
  private get verifier(): DirectoryDoor {
    return this.host.verifier;
  }
  private get ctx(): GroupContext {
    return this.host.ctx;
  }
  private get content(): ContentHost {
    return this.host.content;
  }
  private get handle(): string {
    return this.profile.identity.handle;
  }
  private get deviceId(): string {
    return this.profile.identity.deviceId;
  }
  private get push(): PushChannel | null {
    return this.host.push();
  }
  private save(): Promise<void> {
    return this.host.save();
  }
  private history(): Promise<HistoryStore> | null {
    return this.host.history();
  }
  private transferHost(): TransferHost {
    return this.host.transferHost();
  }
  group(id: string): Group {
    return this.profile.group(id);
  }
  private setGroup(id: string, g: Group): void {
    this.profile.setGroup(id, g);
  }
  private get profile(): EngineSlices {
    return this.host.profile;
  }

  private readonly inFlight = new Map<string, Promise<unknown>>();
  /** Runs `fn` once for concurrent callers with the same key (they all get its result). */
  singleFlight<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const running = this.inFlight.get(key);
    if (running) return running as Promise<T>;
    const p = fn().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  async processInbox(items: ReceivedItem[]): Promise<void> {
    for (;;) {
      const inbox = await this.transport.inbox(this.profile.inboxCursor);
      if (inbox.length === 0) return;
      for (const it of inbox) {
        this.profile.inboxCursor = it.id;
        const conv = it.conversation;
        if (!isConversationId(conv.id) || Object.hasOwn(this.profile.conversations, conv.id)) continue; // bad id, or already joined (e.g. a repeated Welcome)
        const bundles: KeyPackageBundle[] = this.profile.keyPackages.map((k) => ({
          ref: k.ref,
          publicBytes: fromBase64(k.publicBytes),
          privateBytes: fromBase64(k.privateBytes),
        }));
        try {
          const { group, usedRef } = await joinFromWelcome(this.ctx, it.welcome, bundles);
          // The last package of our newest upload is the server's last resort (handed out again and again when the
          // others are gone): its private key stays until a newer upload replaces it (issue 13 finding 5).
          const lastResort = this.profile.keyPackages[this.profile.keyPackages.length - 1]?.ref;
          if (usedRef !== lastResort)
            this.profile.keyPackages = this.profile.keyPackages.filter((k) => k.ref !== usedRef);
          const label = canonicalLabel(conv.label);
          const peer =
            conv.kind === "direct" ? (groupMembers(group).find((m) => m.user !== this.handle)?.user ?? null) : null;
          this.profile.conversations[conv.id] = {
            id: conv.id,
            kind: conv.kind,
            label,
            unit: conv.unit,
            fromUnit: conv.fromUnit ?? null,
            peer,
            group: "",
            cursor: it.commitSeq,
          };
          this.setGroup(conv.id, group);
          items.push({
            type: "joined",
            from: conv.creator,
            conversation: conv.id,
            kind: conv.kind,
            label,
            text: describe(conv),
            seq: it.commitSeq,
            time: new Date(it.createdAt).toISOString(),
          });
        } catch (e) {
          items.push({
            type: "alert",
            from: conv.creator,
            conversation: conv.id,
            label: conv.label,
            text: `refused to join: ${e instanceof Error ? e.message : String(e)}`,
            seq: it.commitSeq,
            time: new Date(it.createdAt).toISOString(),
          });
        }
      }
    }
  }

  /**
   * Processes one conversation's log from the local cursor, in order. `pushed`: messages the push channel carried
   * (the next ones after the cursor): applied without fetching.
   */
  async syncConversation(
    id: string,
    items: ReceivedItem[] = this.profile.pending,
    pushed?: ServerMessage[],
  ): Promise<ReceivedItem[]> {
    const conv = this.profile.conversations[id];
    if (!conv) throw new ValiseError("not_found", `unknown conversation ${id}`);
    for (let fetched = false; ; fetched = true) {
      if (pushed && fetched) return items;
      const msgs = pushed ?? (await this.transport.messages(id, conv.cursor));
      if (msgs.length === 0) return items;
      // Runs of application messages from others are decrypted ahead, their signatures checked concurrently
      // (processApplications): seq → the result processMessage would have given. A message the run stopped at is
      // left to processMessage below, which refuses it and says why; no run starts again before it.
      const ahead = new Map<number, Incoming>();
      let noRunUntil = 0;
      for (const [i, m] of msgs.entries()) {
        if (!ahead.has(m.seq) && m.seq > noRunUntil) noRunUntil = await this.decryptAhead(id, msgs, i, ahead);
        if (m.seq !== conv.cursor + 1 && m.seq > conv.cursor + 1 && conv.cursor !== 0) {
          // The server must never skip sequence numbers inside our membership range.
          items.push({
            type: "alert",
            from: "",
            conversation: id,
            label: conv.label,
            text: `gap in conversation log: expected ${conv.cursor + 1}, got ${m.seq}`,
            seq: m.seq,
            time: new Date(m.createdAt).toISOString(),
          });
        }
        if (m.seq <= conv.cursor) continue; // at-least-once: dedupe by sequence number
        const g = this.group(id);
        if (m.sender === this.deviceId) {
          if (m.kind === "commit" && BigInt(m.epoch) >= g.epoch) {
            // Our own commit is in the log but we never applied it (crashed between send and save): rejoin.
            await this.rejoin(id);
            return items;
          }
          conv.cursor = m.seq; // our own application messages / already-applied commits
          continue;
        }
        try {
          const r = ahead.get(m.seq) ?? (await processMessage(this.ctx, g, m.payload));
          this.setGroup(id, r.group);
          if (r.kind === "commit" && !r.removedSelf) this.noteNewMembers(conv, g, r.group, r.added);
          if (r.kind === "application") {
            const aad = fromUtf8(r.aad);
            if (aad !== messageAad(id, conv.label))
              throw new ValiseError("protocol_error", "message is bound to another conversation or label");
            let payload: AppPayload;
            try {
              payload = parsePayload(r.plaintext);
            } catch (e) {
              const why = e instanceof Error ? e.message : String(e);
              throw new ValiseError(
                "protocol_error",
                `malformed payload from ${r.sender.user} (device ${r.sender.device}): ${why}`,
              );
            }
            if (payload.t === "fwd") items.push(...(await this.receiveForward(conv, payload, r.sender, m)));
            else if (payload.t === "hist") {
              const h = await this.history();
              const why = h
                ? await acceptHistoryPayload(this.transferHost(), h, payload, r.sender, groupMembers(r.group))
                : null;
              if (why) items.push({ ...alertItem(why, m.seq, m.createdAt), conversation: id, label: conv.label });
            } else if (payload.t === "receipt") this.host.receipts.receive(conv, payload, r.sender, m.seq);
            else {
              const item = this.acceptPayload(conv, payload, r.sender, m);
              if (item) items.push(item);
              if (item?.type === "message") this.host.receipts.decrypted(conv, item.seq, item.from);
            }
          } else if (r.kind === "commit" && r.removedSelf) {
            this.profile.deleteConversation(id);
            items.push({
              type: "alert",
              from: r.sender?.user ?? "",
              conversation: id,
              label: conv.label,
              text: "this device was removed from the conversation",
              seq: m.seq,
              time: new Date(m.createdAt).toISOString(),
            });
            return items;
          }
          conv.cursor = m.seq;
        } catch (e) {
          const reason = e instanceof Error ? e.message : String(e);
          items.push({
            type: "alert",
            from: "",
            conversation: id,
            label: conv.label,
            text: `refused message ${m.seq}: ${reason}`,
            seq: m.seq,
            time: new Date(m.createdAt).toISOString(),
          });
          if (m.kind === "commit") return items; // cannot move past a refused commit: the group stays where it was
          conv.cursor = m.seq; // an undecryptable application message is reported and skipped
        }
      }
    }
  }

  /**
   * Decrypts ahead the run of application messages from other devices that starts at `msgs[from]` (at least two, at
   * most RUN_MAX) and puts the results in `ahead`; returns the seq up to which no run should start again (the run's
   * last message, or the one it stopped at). The group state moves only as far as the returned results go.
   */
  private async decryptAhead(id: string, msgs: ServerMessage[], from: number, ahead: Map<number, Incoming>) {
    const conv = this.profile.conversations[id]!;
    const run: ServerMessage[] = [];
    for (let i = from; i < msgs.length && run.length < RUN_MAX; i++) {
      const m = msgs[i]!;
      // Consecutive seqs only (a gap is reported by the loop, one message at a time).
      const next = run.length === 0 ? m.seq > conv.cursor : m.seq === run[run.length - 1]!.seq + 1;
      if (m.kind !== "application" || m.sender === this.deviceId || !next) break;
      run.push(m);
    }
    if (run.length < 2) return msgs[from]!.seq;
    const b = await processApplications(
      this.ctx,
      this.group(id),
      run.map((m) => m.payload),
    );
    for (const [k, r] of b.results.entries()) ahead.set(run[k]!.seq, { kind: "application", group: b.group, ...r });
    return run[Math.min(b.results.length, run.length - 1)]!.seq;
  }

  /**
   * What an application payload becomes. Cable and document keys are kept in the profile; a payload whose label the
   * conversation may not carry (the group was not formed for it: its members are cleared only up to the
   * conversation's label) is refused.
   */
  acceptPayload(
    conv: ConversationState,
    p: Exclude<AppPayload, ForwardPayload | HistoryPayload | ReceiptPayload>,
    sender: { user: string; device: string },
    m: { seq: number; createdAt: number },
  ): ReceivedItem | null {
    const time = new Date(m.createdAt).toISOString();
    if (p.t === "text")
      return {
        type: "message",
        from: sender.user,
        device: sender.device,
        conversation: conv.id,
        kind: conv.kind,
        label: conv.label,
        text: p.text,
        seq: m.seq,
        time,
      };
    const label = canonicalLabel(p.label);
    if (label !== p.label || !dominates(parseLabel(conv.label), parseLabel(label)))
      throw new ValiseError("not_cleared", `a ${label} item may not travel in a ${conv.label} conversation`);
    if (p.t === "cable") {
      if (conv.kind !== "link" && conv.kind !== "unit")
        throw new ValiseError("protocol_error", "cable keys travel only in unit and link conversations");
      const units = new Set([p.originator, ...p.action, ...p.info]);
      if (!conv.unit || !units.has(conv.unit) || (conv.fromUnit && conv.fromUnit !== p.originator))
        throw new ValiseError("protocol_error", "cable key arrived in a conversation of units it is not addressed to");
      // Cables are handed out from the precedence-ordered queue (see catchUp); a refused copy is an alert now.
      const refused = acceptCable(this.profile.heldKeys, p, sender);
      if (refused)
        return {
          ...alertItem(refused, m.seq, m.createdAt),
          from: sender.user,
          conversation: conv.id,
          label: conv.label,
        };
      return null;
    }
    const refused = acceptDocument(this.profile.heldKeys, p, sender);
    if (refused)
      return { ...alertItem(refused, m.seq, m.createdAt), from: sender.user, conversation: conv.id, label: conv.label };
    return {
      type: "document",
      from: sender.user,
      conversation: conv.id,
      label,
      text: p.name,
      seq: m.seq,
      time,
      id: p.id,
      version: p.version,
      size: p.size,
    };
  }

  /**
   * The conversation an item for `to` (a handle or a unit) at `label` travels in: a direct conversation with a
   * user; a unit's own channel if this user is a member; otherwise a link from this user's unit (`fromUnit`, or
   * their only/first unit) to that unit.
   */
  async targetFor(to: string, label: string, fromUnit?: string): Promise<ConversationTarget> {
    if (!/^[A-Z]/.test(to)) return { kind: "direct", peer: to, label };
    const me = await this.verifier.user(this.handle);
    const units = me?.units ?? [];
    if (units.includes(to) && (fromUnit === undefined || fromUnit === to)) return { kind: "unit", unit: to, label };
    const from = fromUnit ?? units[0];
    if (!from) throw new ValiseError("forbidden", `you belong to no unit, so you cannot send to unit ${to}`);
    if (!units.includes(from)) throw new ValiseError("forbidden", `you are not a member of ${from}`);
    return { kind: "link", fromUnit: from, unit: to, label };
  }

  /** Finds (membership reconciled with the directory) or creates the conversation for a target. */
  async conversationFor(t: ConversationTarget): Promise<ConversationState> {
    const find = () =>
      Object.values(this.profile.conversations).find(
        (c) =>
          c.label === t.label &&
          c.kind === t.kind &&
          (t.kind === "direct"
            ? c.peer === t.peer
            : t.kind === "unit"
              ? c.unit === t.unit
              : c.unit === t.unit && c.fromUnit === t.fromUnit),
      );
    const conv = find();
    // Concurrent first sends to one target create one conversation, not one each.
    if (!conv)
      return this.singleFlight(
        `create:${t.kind}|${t.label}|${t.kind === "direct" ? t.peer : `${t.unit}|${t.kind === "link" ? t.fromUnit : ""}`}`,
        async () => find() ?? this.createConversation(t),
      );
    // Membership follows the directory: revoked devices out, new ones in — checked again when the directory log or
    // the group changed since this conversation's last check (every directory change is a log entry).
    await this.reconcileIfChanged(conv.id);
    return conv;
  }

  /**
   * The directory log's head size and the group's epoch at each conversation's last reconcile, in this process (a
   * fresh process checks once). While both are unchanged the directory and the group are as they were, and the
   * reconcile's lookups (the checkpoint, the unit members, every member's directory answer) are skipped: one request
   * instead of one per member. A row the server's database gained outside the log changes neither; it is never
   * encrypted to either way (the door follows the log), and the directory audit of `sync` (auditMembers) notices it.
   */
  private readonly proven = new Map<string, string>();

  /** Reconciles unless the directory log and the group are where they were at this conversation's last reconcile. */
  async reconcileIfChanged(id: string): Promise<void> {
    const size = await this.logSize();
    const key = () => `${size}/${this.group(id).epoch}`;
    if (size !== null && this.proven.get(id) === key()) return;
    await this.reconcile(id);
    // Kept only when the door's answers are proven up to the log's head: a device in no witnessed checkpoint yet was
    // left out for now, and every later use checks again until a checkpoint covers it.
    const proven = this.verifier.provenSize();
    if (size !== null && (proven === null || proven >= size)) this.proven.set(id, key());
    else this.proven.delete(id);
  }

  /**
   * The directory log's head size as the server reports it; null from a server without the route (always check).
   * A write answered within the last DIRECTORY_SIZE_FRESH_MS carried it (a cable's POST just before its key
   * delivery, the previous send): no request then.
   */
  private async logSize(): Promise<number | null> {
    const recent = this.transport.recentDirectorySize(DIRECTORY_SIZE_FRESH_MS);
    if (recent !== null) return recent;
    try {
      return (await this.transport.logSize()).size;
    } catch (e) {
      if (e instanceof ValiseError && e.code === "not_found") return null;
      throw e;
    }
  }

  /**
   * The directory audit: every user this device shares a conversation with (and the units behind its unit and link
   * conversations) fetched afresh from the server and compared with the log. A difference — a device, member,
   * clearance or unit the server's database has and the log does not — becomes an alert (transparency.ts), as it did
   * when every send reconciled. Failures of one conversation do not stop the others; sends still go through the door.
   */
  async auditMembers(): Promise<void> {
    this.verifier.forget();
    const users = new Set<string>();
    for (const conv of Object.values(this.profile.conversations)) {
      try {
        for (const u of await this.intendedUsers(conv)) users.add(u);
        for (const m of groupMembers(this.group(conv.id))) users.add(m.user);
      } catch (e) {
        if (transient(e)) throw e;
      }
    }
    for (const u of users)
      await this.verifier.user(u).catch((e: unknown) => {
        if (transient(e)) throw e;
      });
  }

  async createConversation(
    spec: ConversationTarget | { kind: "group"; members: string[]; label: string },
  ): Promise<ConversationState> {
    const id = randomId("c");
    const rc = await this.transport.createConversation({
      id,
      kind: spec.kind,
      label: spec.label,
      ...(spec.kind === "unit" || spec.kind === "link" ? { unit: spec.unit } : {}),
      ...(spec.kind === "link" ? { fromUnit: spec.fromUnit } : {}),
    });
    const group = await createGroup(this.ctx, utf8(id));
    const conv: ConversationState = {
      id,
      kind: spec.kind,
      label: rc.label,
      unit: rc.unit,
      fromUnit: spec.kind === "link" ? spec.fromUnit : null,
      peer: spec.kind === "direct" ? spec.peer : null,
      group: "",
      cursor: 0,
    };
    this.profile.conversations[id] = conv;
    this.setGroup(id, group);
    this.extraMembers.set(id, spec.kind === "group" ? spec.members : []);
    await this.reconcileIfChanged(id);
    await this.save();
    return conv;
  }
  private readonly extraMembers = new Map<string, string[]>();

  /** Users this device talks to outside its units (membership monitoring watches their directory changes too). */
  watchedUsers(): string[] {
    const out = new Set<string>();
    for (const c of Object.values(this.profile.conversations)) {
      if (c.peer) out.add(c.peer);
      if (c.kind !== "group") continue;
      try {
        for (const m of groupMembers(this.group(c.id))) out.add(m.user);
      } catch {
        /* a conversation whose state cannot be read watches nobody */
      }
    }
    out.delete(this.handle);
    return [...out];
  }

  /**
   * Users who should be in the conversation, per its kind and the directory (with key transparency, the log: a
   * member the server adds by a database row alone is not one).
   */
  async intendedUsers(conv: ConversationState): Promise<string[]> {
    const users = new Set<string>([this.handle]);
    if (conv.kind === "direct" && conv.peer) users.add(conv.peer);
    if ((conv.kind === "unit" || conv.kind === "link") && conv.unit)
      for (const u of await this.verifier.unitMembers(conv.unit)) users.add(u);
    if (conv.kind === "link" && conv.fromUnit)
      for (const u of await this.verifier.unitMembers(conv.fromUnit)) users.add(u);
    if (conv.kind === "group") {
      for (const m of groupMembers(this.group(conv.id))) users.add(m.user);
      for (const u of this.extraMembers.get(conv.id) ?? []) users.add(u);
    }
    return [...users].sort();
  }

  /**
   * Membership follows the directory: adds the active devices of the intended users that are missing (each through
   * the door), removes devices that were revoked or whose users left. Refuses if any intended user is not cleared.
   */
  async reconcile(id: string): Promise<void> {
    const conv = this.profile.conversations[id]!;
    const label = parseLabel(conv.label);
    this.verifier.forget();
    // A unit carries nothing above its max label (with key transparency, the label the log sets).
    for (const unitName of [conv.unit, conv.kind === "link" ? conv.fromUnit : null]) {
      if ((conv.kind !== "unit" && conv.kind !== "link") || !unitName) continue;
      const unit = await this.verifier.unit(unitName);
      if (!unit) throw new ValiseError("not_found", `no unit ${unitName} in the directory`);
      if (!dominates(parseLabel(unit.maxLabel), label))
        throw new ValiseError("forbidden", `${unitName} may carry at most ${unit.maxLabel}, not ${conv.label}`);
    }
    for (let attempt = 0; ; attempt++) {
      const users = await this.intendedUsers(conv);
      const wanted = new Map<string, string>(); // device → user
      for (const u of users) {
        const du = await this.verifier.user(u);
        if (!du) throw new ValiseError("not_found", `no user ${u}`);
        if (du.disabled) {
          if (u === this.handle) throw new ValiseError("forbidden", "your account is disabled");
          if (conv.kind === "direct" || (this.extraMembers.get(id) ?? []).includes(u))
            throw new ValiseError("forbidden", `${u}'s account is disabled`);
          continue; // offboarded: removed from every conversation by the next sender
        }
        if (!dominates(parseLabel(du.clearance), label)) {
          if (u === this.handle) throw new ValiseError("not_cleared", `you are not cleared for ${conv.label}`);
          if (conv.kind === "direct" || (this.extraMembers.get(id) ?? []).includes(u))
            throw new ValiseError("not_cleared", `${u} is not cleared for ${conv.label}`);
          continue; // unit, link and group conversations carry only cleared members: the others are removed
        }
        for (const d of du.devices) if (d.revokedAt === null) wanted.set(d.id, u);
      }
      // A history channel (approveDevice) holds exactly this device and the approved one: never another device.
      if (conv.historyFor)
        for (const d of [...wanted.keys()]) if (d !== this.deviceId && d !== conv.historyFor) wanted.delete(d);
      const g = this.group(id);
      const present = new Set(groupMembers(g).map((m) => m.device as string));
      const toRemove = [...present].filter((d) => !wanted.has(d) && d !== this.deviceId);
      const toAdd = [...wanted.keys()].filter((d) => !present.has(d));
      try {
        if (toRemove.length > 0) await this.commit(id, await removeDevices(this.ctx, g, toRemove as DeviceId[]));
        if (toAdd.length > 0) {
          const claimed = await this.transport.claimKeyPackages(toAdd, id);
          if (claimed.length > 0) {
            const before = this.group(id);
            const out = await addDevices(
              this.ctx,
              before,
              claimed.map((c) => c.keyPackage),
            );
            await this.commit(id, out);
            // Sent by the next catch-up (flushForwards), not here: reconcile may run inside a send on this
            // conversation, which a forward would wait for.
            if (this.noteNewMembers(conv, before, out.group, out.added)) await this.save();
          }
        }
        return;
      } catch (e) {
        if (e instanceof ValiseError && e.code === "epoch_conflict" && attempt < MAX_RETRIES) {
          await this.syncConversation(id); // someone else committed first: take theirs, then recompute
          continue;
        }
        throw e;
      }
    }
  }

  /**
   * A commit (this device's or another member's) added devices of users who had none in a unit or link
   * conversation: this device owes them the keys it holds for that conversation's unit(s) (forward.ts). Every member
   * device that holds keys forwards (copies already held are ignored by the receiver), so a member that added them
   * without holding the keys does not leave them without. Recorded in the profile, sent by flushForwards.
   */
  noteNewMembers(conv: ConversationState, before: Group, after: Group, added: readonly string[]): boolean {
    if (conv.kind !== "unit" && conv.kind !== "link") return false;
    const had = new Set(groupMembers(before).map((m) => m.user as string));
    const fresh = new Set(
      groupMembers(after)
        .filter((m) => added.includes(m.device) && !had.has(m.user) && m.user !== this.handle)
        .map((m) => m.user as string),
    );
    for (const to of fresh) this.profile.forwards.push({ conversation: conv.id, to, id: randomId("f").slice(2) });
    return fresh.size > 0;
  }

  /**
   * A conversation with exactly this device and `device` (another device of this user, checked against the
   * directory by the caller and again by the door when its key package is added): reused if one exists.
   */
  async historyChannel(device: string): Promise<string> {
    const held = Object.values(this.profile.conversations).find((c) => c.historyFor === device);
    if (held && groupMembers(this.group(held.id)).some((m) => m.device === device)) return held.id;
    const me = await this.verifier.user(this.handle);
    if (!me) throw new ValiseError("not_found", `${this.handle} is not in the directory`);
    const id = randomId("c");
    const rc = await this.transport.createConversation({ id, kind: "group", label: me.clearance });
    const conv: ConversationState = {
      id,
      kind: "group",
      label: rc.label,
      unit: null,
      fromUnit: null,
      peer: null,
      group: "",
      cursor: 0,
      historyFor: device,
    };
    this.profile.conversations[id] = conv;
    this.setGroup(id, await createGroup(this.ctx, utf8(id)));
    await this.reconcile(id); // adds exactly `device` (see reconcile: a history channel holds no other device)
    await this.save();
    if (!groupMembers(this.group(id)).some((m) => m.device === device))
      throw new ValiseError(
        "not_found",
        `${device} has no key package on the server: it cannot be sent its history yet`,
      );
    return id;
  }

  /** A forward received: addressed to this user → each key checked and kept or refused (alerts); else ignored. */
  async receiveForward(
    conv: ConversationState,
    p: ForwardPayload,
    sender: { user: string; device: string },
    m: { seq: number; createdAt: number },
  ): Promise<ReceivedItem[]> {
    const { refusals } = await acceptForward(this.content, conv, p, sender);
    return refusals.map((text) => ({
      ...alertItem(text, m.seq, m.createdAt),
      from: sender.user,
      conversation: conv.id,
      label: conv.label,
    }));
  }

  async commit(id: string, out: CommitOutput): Promise<void> {
    await this.transport.postCommit(id, {
      commit: out.commit,
      welcome: out.welcome,
      groupInfo: out.groupInfo,
      added: out.added,
      removed: out.removed,
      idempotencyKey: randomId("c").slice(2),
    });
    this.setGroup(id, out.group); // apply only after the server accepted it
  }

  /**
   * Encrypts and posts one application payload. Before encrypting, every member of the group must be an active
   * device of a user the door says is cleared for the conversation's label (and, for unit and link conversations,
   * a member of those units): a server that slipped an uncleared device into the group gets nothing. On an epoch
   * conflict, catches up and retries under the same idempotency key.
   */
  sendPayload(
    id: string,
    payload: AppPayload,
    idem = randomId("c").slice(2),
    client?: string,
  ): Promise<{ seq: number }> {
    // One at a time per conversation: concurrent sends encrypted with the same group state reuse a ratchet
    // generation, and the receiver keeps only the first of them (two shared documents at once lost a key).
    const prev = this.sending.get(id) ?? Promise.resolve();
    const run = prev.then(() => this.sendPayloadNow(id, payload, idem, client));
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.sending.set(id, tail);
    void tail.then(() => {
      if (this.sending.get(id) === tail) this.sending.delete(id);
    });
    return run;
  }
  private readonly sending = new Map<string, Promise<void>>();

  async sendPayloadNow(id: string, payload: AppPayload, idem: string, client?: string): Promise<{ seq: number }> {
    const conv = this.profile.conversations[id];
    if (!conv) throw new ValiseError("not_found", `unknown conversation ${id}`);
    for (let attempt = 0; ; attempt++) {
      const offenders = await this.checkMembersCleared(conv);
      if (offenders.length > 0) {
        // Members the directory (the log) no longer proves — revoked, uncleared, moved out, disabled, or never there:
        // commit their removal first, then encrypt to the members that remain.
        if (attempt >= MAX_RETRIES) throw offenders[0]!;
        await this.reconcile(id);
        continue;
      }
      const { group, message } = await encryptMessage(
        this.ctx,
        this.group(id),
        utf8(JSON.stringify(payload)),
        utf8(messageAad(id, conv.label)),
      );
      // The ratchet advance is durable before the ciphertext leaves the device: a crash after the post can never
      // make the next send encrypt under the same generation (same key and nonce, different plaintext).
      this.setGroup(id, group);
      await this.save();
      try {
        // Over the push socket when one is open (no HTTP request per message); a forward's own client tag needs HTTP.
        const r =
          this.push?.open && client === undefined
            ? await this.push.sendMessage(id, message, idem)
            : await this.transport.postMessage(id, message, idem, client);
        if (payload.t === "text") this.host.receipts.sent(conv, r.seq);
        return { seq: r.seq };
      } catch (e) {
        if (e instanceof ValiseError && e.code === "epoch_conflict" && attempt < MAX_RETRIES) {
          await this.syncConversation(id);
          continue;
        }
        if (e instanceof ValiseError && e.code === "pending_removal" && attempt < MAX_RETRIES) {
          await this.syncConversation(id);
          await this.reconcile(id); // commit the removal of revoked or uncleared devices, then re-encrypt
          continue;
        }
        throw e;
      }
    }
  }

  /**
   * The client half of need-to-know: every member of the group must be an active device of a user the door says is
   * cleared for its label (and, for unit and link conversations, a member of those units). Returns why each member
   * that is not must go (the caller removes them before encrypting); nothing is encrypted to them.
   */
  async checkMembersCleared(conv: ConversationState): Promise<ValiseError[]> {
    const label = parseLabel(conv.label);
    const out: ValiseError[] = [];
    for (const m of groupMembers(this.group(conv.id))) {
      if (m.device === this.deviceId) continue;
      const u = await this.verifier.user(m.user);
      const dev = u?.devices.find((d) => d.id === m.device);
      if (!u || !dev || dev.revokedAt !== null || u.disabled)
        out.push(new ValiseError("device_not_verified", `${m.user}'s device ${m.device} is not an active device`));
      else if (!dominates(parseLabel(u.clearance), label))
        out.push(new ValiseError("not_cleared", `${m.user} is in the group but not cleared for ${conv.label}`));
      else {
        const units = [conv.unit, conv.kind === "link" ? conv.fromUnit : null].filter((x): x is string => !!x);
        if ((conv.kind === "unit" || conv.kind === "link") && !units.some((x) => u.units.includes(x)))
          out.push(new ValiseError("not_cleared", `${m.user} is in the ${units.join("/")} group but not in the unit`));
      }
    }
    return out;
  }

  /** External rejoin (RFC 9420 §12.4.3.2) when local state is lost or stale: fresh state from the GroupInfo. */
  async rejoin(id: string): Promise<void> {
    const conv = this.profile.conversations[id];
    if (!conv) throw new ValiseError("not_found", `unknown conversation ${id}`);
    for (let attempt = 0; ; attempt++) {
      const gi = await this.transport.groupInfo(id);
      const r = await externalRejoin(this.ctx, gi);
      try {
        const ans = await this.transport.postCommit(id, {
          commit: r.commit,
          groupInfo: r.groupInfo,
          added: [],
          removed: [],
          idempotencyKey: randomId("c").slice(2),
          external: true,
        });
        this.setGroup(id, r.group);
        conv.cursor = ans.seq;
        return;
      } catch (e) {
        if (e instanceof ValiseError && e.code === "epoch_conflict" && attempt < MAX_RETRIES) continue;
        throw e;
      }
    }
  }
}

/** An outage or a lost answer (the request may have been stored), as opposed to a refusal. */
export function transient(e: unknown): boolean {
  return !(e instanceof ValiseError) || ["transport_error", "store_error", "internal"].includes(e.code);
}

export function alertItem(text: string, seq: number, time: number): ReceivedItem {
  return {
    type: "alert",
    from: "directory log",
    conversation: "",
    label: "",
    text,
    seq,
    time: new Date(time).toISOString(),
  };
}

function describe(c: ServerConversation): string {
  if (c.kind === "unit") return `joined the ${c.unit ?? "?"} channel`;
  if (c.kind === "direct") return `${c.creator} started a direct conversation`;
  return `${c.creator} added you to a group conversation`;
}

/**
 * The Valise client SDK: enroll a device, log in, keep conversations' MLS state, send and receive.
 * Browser-safe: no node: imports (the Node key store and WebSocket live under ./node/).
 */
import {
  ValiseError,
  canonicalLabel,
  dominates,
  describeStaleness,
  fromBase64,
  parseLabel,
  parseUserHandle,
  randomId,
  toBase64,
  verifyCheckpointQuorum,
  verifyInclusion,
  leafHash,
  parseNoteVerifierKey,
  parseCosignatureVerifierKey,
  type DeviceId,
  type UserHandle,
} from "@valise/core";
import {
  generateDeviceKeys,
  generateKeyPackages,
  groupMembers,
  updateKeys,
  signChallenge,
  type DeviceKeys,
  type Group,
  type GroupContext,
} from "@valise/protocol";
import { HttpTransport, VALISE_CLIENT, type ServerAlert, type ServerMessage } from "./transport.js";
import type { ConversationState, ConversationTarget, KeyStore, ProfileState } from "./profile.js";
import { ProfileRepository } from "./profile-repo.js";
import { Session, type Authenticate } from "./session.js";
import { OfficerApi } from "./officer.js";
import { ConversationEngine, MAX_RETRIES, alertItem, transient } from "./conversations.js";
import { DirectoryVerifier, type DirectoryDoor } from "./verifier.js";
import {
  TransparencyVerifier,
  parseTrustAnchors,
  type DirectoryAlert,
  type OwnDevice,
  type TransparencyOptions,
  type TrustAnchors,
} from "./transparency.js";
import { Receipts } from "./receipts.js";
import { MAX_TEXT, type AppPayload, type CablePayload, type DocumentPayload, type ReceivedItem } from "./items.js";
import { Cables, checkAgainstServer } from "./cables.js";
import { heldCable, migrateProfile } from "./held-keys.js";
import { Documents } from "./documents.js";
import { forwardClientTag, forwardPayloads, shareCutoff, shareKey, sharedSince, travelsIn } from "./forward.js";
import { AuditLog } from "./audit.js";
import type { HistoryStore } from "./history.js";
import { fetchHistoryBatches, sendHistory, type HistoryProgress, type TransferHost } from "./history-transfer.js";
import { archiveSigningMessage, type ArchiveEvidence } from "./archive.js";
import type { StreamCipher } from "./content.js";
import { webCryptoStreamCipher } from "./docstream.js";
import type { ContentHost } from "./host.js";
import {
  isAlertFrame,
  openPush,
  pushedMessage,
  type AlertFrame,
  type PushChannel,
  type PushEvent,
  type WebSocketFactory,
} from "./push.js";

const INITIAL_KEY_PACKAGES = 20;
const MIN_KEY_PACKAGES = 10;

export interface ClientOptions {
  store: KeyStore;
  fetch?: typeof fetch;
  /** Key transparency timing (checkpoint reuse, waiting for new entries); defaults suit production. */
  transparency?: TransparencyOptions;
  /** Streamed AEAD for documents and cables: WebCrypto by default; Node passes the worker-pool one. */
  cipher?: StreamCipher;
  /**
   * The device's message history and search index (history.ts), opened on first use with this device's identity
   * (the Node store derives its sealing key from the private key). With it, sync and send record messages, cables
   * and document shares, `approveDevice` sends the history to the approved device, and a history received from
   * another own device is fetched on sync.
   */
  history?: (device: { deviceId: string; signaturePrivateKey: Uint8Array }) => Promise<HistoryStore>;
  /** Send delivered/read receipts for the messages this device decrypts (receipts.ts); default off. */
  receipts?: boolean;
}

/** How often `sync` audits the directory answers of the people this device talks to against the log. */
export const MEMBER_AUDIT_MS = 60_000;

export class ValiseClient {
  readonly transport: HttpTransport;
  /** The door: TransparencyVerifier when the profile pins a log key, else DirectoryVerifier (trusts the server). */
  readonly verifier: DirectoryDoor;
  /** Key transparency (checkpoints, proofs, own-account monitoring); null for a profile without trust anchors. */
  readonly transparency: TransparencyVerifier | null;
  /** Cables: send, list (FLASH first), open with receipts. */
  readonly cables: Cables;
  /** Documents: streamed encrypted upload with versions, listing, verified download. */
  readonly documents: Documents;
  /** The audit log for security officers: checkpoint verified with the profile's trust anchors, events proven. */
  readonly audit: AuditLog;
  /**
   * How this device logs in, when not with its device key alone: a browser device with a passkey signs the server's
   * challenge with its device key (`signLogin` → base64 signature of `valise-login:<challenge>`) and asserts its
   * passkey over the same challenge (the web app's POST /v1/auth/passkey/session).
   */
  get authenticate(): Authenticate | null {
    return this.session.authenticate;
  }
  set authenticate(f: Authenticate | null) {
    this.session.authenticate = f;
  }
  /** Groups, receive, send, reconcile (conversations.ts). */
  private readonly engine: ConversationEngine;
  /** Login, re-login on an expired session, sign-out. */
  private readonly session: Session;
  /** Security officers' API: alerts, incidents, allies' indicators, clearances. */
  private readonly officer: OfficerApi;
  private lastLogError: string | null = null;
  /** When sync last audited the directory answers of this device's conversation members (auditMembers). */
  private lastMemberAudit = 0;
  private logStale = false;
  /** Delivered/read state of text messages (receipts.ts): `state(s)`, `onReceipts`, `markRead`. */
  readonly receipts: Receipts = new Receipts({
    handle: () => this.handle,
    state: () => this.state,
    send: (id, p) => this.authed(() => this.sendPayload(id, p)),
    save: () => this.save(),
  });
  private readonly keys: DeviceKeys;
  private readonly content: ContentHost;

  /** The profile: typed slices and MLS group states, written only when something changed. */
  private readonly profile: ProfileRepository;
  private get state(): ProfileState {
    return this.profile.state;
  }

  private constructor(
    profile: ProfileRepository,
    fetchImpl?: typeof fetch,
    transparency?: TransparencyOptions,
    cipher?: StreamCipher,
  ) {
    this.profile = profile;
    const state = profile.state;
    this.transport = new HttpTransport(state.serverUrl, fetchImpl);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    this.session = new Session(this.transport, profile, fromBase64(state.signaturePrivateKey), {
      save: () => this.save(),
      // An operation refused because the server's directory disagrees with the log still keeps the alert it raised.
      onFailure: async () => {
        if (this.transparency?.dirty) await this.save().catch(() => undefined);
      },
    });
    this.officer = new OfficerApi(this.transport, this.session.authed, () => this.login(), state.serverUrl);
    this.engine = new ConversationEngine({
      profile,
      transport: this.transport,
      get verifier() {
        return self.verifier;
      },
      get ctx() {
        return self.ctx;
      },
      get content() {
        return self.content;
      },
      save: () => this.save(),
      history: () => this.history(),
      transferHost: () => this.transferHost(),
      push: () => this.push,
      receipts: this.receipts,
    });
    this.incidents = this.officer.incidents;
    this.taxii = this.officer.taxii;
    const host = (this.content = this.contentHost(cipher));
    this.cables = new Cables(host);
    this.documents = new Documents(host);
    this.audit = new AuditLog(
      this.transport,
      () => this.state.trust,
      (fn) => this.authed(fn),
      {
        state: () => (this.state.audit ??= { checkpoints: {} }),
        save: () => this.save(),
        ...(transparency?.maxCheckpointAgeMs !== undefined
          ? { maxCheckpointAgeMs: transparency.maxCheckpointAgeMs }
          : {}),
        ...(transparency?.now ? { now: transparency.now } : {}),
      },
    );
    this.transparency = state.trust
      ? new TransparencyVerifier(this.transport, state, {
          ...transparency,
          // A forged row the log does not explain reaches the security officers too (best effort: a server that drops
          // the report cannot silence the user's own alert).
          onMismatch:
            transparency?.onMismatch ??
            ((m) => {
              // Sent now; awaited by the next save, so a CLI process does not exit before the officers are told.
              this.reports.push(this.reportMismatch(m.subject, m.differences).catch(() => undefined));
            }),
          watched: () => this.engine.watchedUsers(),
        })
      : null;
    this.verifier = this.transparency ?? new DirectoryVerifier(this.transport);
    this.keys = {
      user: state.handle as UserHandle,
      device: state.deviceId as DeviceId,
      signaturePublicKey: fromBase64(state.signaturePublicKey),
      signaturePrivateKey: fromBase64(state.signaturePrivateKey),
    };
  }

  get handle(): string {
    return this.state.handle;
  }
  get deviceId(): string {
    return this.state.deviceId;
  }
  get serverUrl(): string {
    return this.state.serverUrl;
  }
  /** The pinned trust anchors (log key, witnesses, quorum; `firstUse` if pinned from the server's answer). */
  get trustAnchors(): TrustAnchors | null {
    return this.state.trust ?? null;
  }
  conversationList(): ConversationState[] {
    return Object.values(this.state.conversations);
  }

  /**
   * Who holds the keys of a conversation now: its MLS group's members (user, device). A member the verified log
   * shows as the records archive of the conversation's unit(s) (issue 14) is marked `archive: true`.
   */
  conversationMembers(id: string): { user: string; device: string; archive?: true; role?: "archivist" }[] {
    const conv = this.state.conversations[id];
    const units = [conv?.unit, conv?.fromUnit].filter((u): u is string => !!u);
    return groupMembers(this.group(id)).map((m) => {
      const archives = this.transparency?.logUser(m.user)?.archives ?? [];
      return {
        user: m.user,
        device: m.device,
        ...(units.some((u) => archives.includes(u)) ? { archive: true as const, role: "archivist" as const } : {}),
      };
    });
  }

  /**
   * Records archive (issue 14): catches up (keys forwarded to this device arrive), then says what the verified log
   * makes this device: the units its user is the archive of, the accepted checkpoint, and the entries (with
   * inclusion proofs in that checkpoint) adding this device and assigning those units. Null units: not an archive.
   */
  async archiveEvidence(): Promise<ArchiveEvidence> {
    if (!this.transparency)
      throw new ValiseError(
        "bad_request",
        "this profile has no key transparency trust anchors: no archive without the log",
      );
    const t = this.transparency;
    await this.catchUp();
    await t.refresh(true);
    const cp = t.state.checkpoint;
    const u = Object.hasOwn(t.directory.users, this.handle) ? t.directory.users[this.handle]! : null;
    const d = Object.hasOwn(t.directory.devices, this.deviceId) ? t.directory.devices[this.deviceId]! : null;
    if (!cp || !u || !d) throw new ValiseError("log_not_verified", "this device is not in the verified directory log");
    const units = u.role === "archivist" && !u.disabled ? [...(u.archives ?? [])] : [];
    if (units.length === 0)
      throw new ValiseError(
        "forbidden",
        `${this.handle} is the records archive of no unit in the directory log (valise admin archive assign ${this.handle} UNIT)`,
      );
    const prove = async (index: number) => {
      const entry = await this.transport.logEntry(index);
      const proof = await this.transport.logInclusionProof(index, cp.size);
      // The server's copies are checked here as the third party will: in the accepted tree, at that index.
      if (!verifyInclusion(leafHash(entry), index, cp.size, proof, fromBase64(cp.rootHash)))
        throw new ValiseError(
          "log_not_verified",
          `the server's inclusion proof for log entry ${index} does not verify`,
        );
      return { index, entry: toBase64(entry), proof: proof.map((h) => toBase64(h)) };
    };
    const assignments = [];
    for (const unit of units) assignments.push(await prove(u.archiveIndex![unit]!));
    return {
      archivist: this.handle,
      device: this.deviceId,
      deviceKey: this.state.signaturePublicKey,
      units,
      checkpoint: { note: cp.note, size: cp.size, rootHash: cp.rootHash },
      proofs: { device: await prove(d.addIndex), assignments },
    };
  }

  /** Signs an archive manifest (exactly its bytes, under the archive context) with this device's key. */
  async signArchiveManifest(manifest: Uint8Array): Promise<Uint8Array> {
    return signChallenge(this.keys.signaturePrivateKey, archiveSigningMessage(manifest));
  }

  /** The content key (base64) of a cable this device received, for inspection and tests; null if none. */
  cableKey(id: string): string | null {
    return heldCable(this.state, id)?.key ?? null;
  }

  /** Document and cable keys this device holds (ids). */
  heldKeys(): { cables: string[]; documents: string[] } {
    return { cables: Object.keys(this.state.cables ?? {}), documents: Object.keys(this.state.documents ?? {}) };
  }

  private get ctx(): GroupContext {
    return { keys: this.keys, verifier: this.verifier };
  }

  /**
   * Redeems a one-time enrollment code: makes the device's keys and key packages, registers them, saves the profile.
   * `trust` (the enrollment bundle's log key, witness keys and quorum) turns on key transparency for this profile;
   * the server's current checkpoint must verify with it before the code is spent.
   */
  static async enroll(
    opts: ClientOptions & {
      serverUrl: string;
      code: string;
      deviceName?: string;
      trust?: TrustAnchors;
      /**
       * Without `trust`: pin the server's directory log key and witnesses on first use (default), so the device
       * still checks every device against the log and watches its account from now on; `false` trusts the server's
       * directory answers (no key transparency).
       */
      pinOnFirstUse?: boolean;
    },
  ): Promise<ValiseClient> {
    if (await opts.store.load())
      throw new ValiseError("conflict", "this profile is already enrolled; use another profile directory");
    const transport = new HttpTransport(opts.serverUrl, opts.fetch);
    let trust = opts.trust ? parseTrustAnchors(opts.trust) : undefined;
    if (!trust && opts.pinOnFirstUse !== false) {
      const served = await transport.logTrust().catch((e: unknown) => {
        if (e instanceof ValiseError && e.code === "not_found") return null; // a server without a log key
        throw e;
      });
      if (served) trust = { ...parseTrustAnchors(served), firstUse: true };
    }
    if (trust) await checkServerLog(transport, trust);
    const deviceId = randomId("d");
    // The code names the user on the server side; we learn the handle from the answer, then make key packages
    // (which carry the handle in their credential) and upload them once logged in.
    const provisional = await generateDeviceKeys("pending" as UserHandle, deviceId);
    const name = opts.deviceName ?? "device";
    const res = await transport.enroll(
      opts.code,
      { id: deviceId, name, signaturePublicKey: provisional.signaturePublicKey },
      [],
    );
    const keys: DeviceKeys = { ...provisional, user: parseUserHandle(res.user.handle) };
    const kps = await generateKeyPackages(keys, INITIAL_KEY_PACKAGES);
    const state: ProfileState = {
      version: 1,
      serverUrl: opts.serverUrl,
      handle: res.user.handle,
      deviceId,
      deviceName: name,
      signaturePublicKey: toBase64(keys.signaturePublicKey),
      signaturePrivateKey: toBase64(keys.signaturePrivateKey),
      keyPackages: kps.map((k) => ({
        ref: k.ref,
        publicBytes: toBase64(k.publicBytes),
        privateBytes: toBase64(k.privateBytes),
      })),
      inboxCursor: 0,
      conversations: {},
      pending: [],
      session: null,
      ...(trust ? { trust } : {}),
    };
    await opts.store.save(state);
    const profile = new ProfileRepository(state, opts.store, true);
    migrateProfile(profile.state);
    const client = new ValiseClient(profile, opts.fetch, opts.transparency, opts.cipher);
    client.historyLoader = opts.history ?? null;
    client.receipts.sending = opts.receipts ?? false;
    await client.login();
    await client.transport.uploadKeyPackages(kps.map((k) => k.publicBytes));
    await client.save();
    return client;
  }

  static async open(opts: ClientOptions): Promise<ValiseClient> {
    const state = await opts.store.load();
    if (!state) throw new ValiseError("not_found", "no enrolled profile here; run `valise enroll` first");
    const profile = new ProfileRepository(state, opts.store, true);
    migrateProfile(profile.state);
    const c = new ValiseClient(profile, opts.fetch, opts.transparency, opts.cipher);
    c.historyLoader = opts.history ?? null;
    c.receipts.sending = opts.receipts ?? false;
    return c;
  }

  private historyLoader: ClientOptions["history"] | null = null;
  private historyOpen: Promise<HistoryStore> | null = null;
  /** The device's history store (ClientOptions.history), or null when this client keeps none. */
  history(): Promise<HistoryStore> | null {
    const load = this.historyLoader;
    if (!load) return null;
    return (this.historyOpen ??= load({ deviceId: this.deviceId, signaturePrivateKey: this.keys.signaturePrivateKey }));
  }

  /** The narrow view of this client that the cable and document services use. */
  private contentHost(cipher: StreamCipher | undefined): ContentHost {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return {
      get handle() {
        return self.handle;
      },
      get deviceId() {
        return self.deviceId;
      },
      transport: this.transport,
      cipher: cipher ?? webCryptoStreamCipher(),
      get state() {
        return self.state;
      },
      authed: (fn) => this.authed(fn),
      me: async () => {
        const u = await this.verifier.user(this.handle);
        if (!u) throw new ValiseError("not_found", "this user is not in the directory");
        return u;
      },
      user: (h) => this.verifier.user(h),
      deliver: (target, payload) => this.deliver(target, payload),
      save: () => this.save(),
      catchUp: () => this.catchUp(),
    };
  }

  /**
   * Sends a key payload to its target's conversation. It is written to the outbox first and removed once the
   * server acknowledged it, so a crash in between is retried (same idempotency key) by the next sync.
   */
  private async deliver(target: ConversationTarget, payload: CablePayload | DocumentPayload): Promise<void> {
    const entry = { conversation: target, payload, idempotencyKey: randomId("c").slice(2) };
    (this.state.outbox ??= []).push(entry);
    await this.save();
    await this.flushEntry(entry);
    await this.save();
  }

  /**
   * Sends one outbox entry. The sender (`deliver`) and a background sync may both reach the same entry: they share
   * one attempt, and an entry already acknowledged is not sent again — two attempts raced to create two
   * conversations and sent the same idempotency key to both (the server refused the second: 409).
   */
  private flushEntry(entry: NonNullable<ProfileState["outbox"]>[number]): Promise<void> {
    return this.engine.singleFlight(`outbox:${entry.idempotencyKey}`, async () => {
      if (!(this.state.outbox ?? []).some((e) => e.idempotencyKey === entry.idempotencyKey)) return;
      const conv = await this.conversationFor(entry.conversation);
      await this.sendPayload(conv.id, entry.payload, entry.idempotencyKey);
      this.state.outbox = (this.state.outbox ?? []).filter((e) => e.idempotencyKey !== entry.idempotencyKey);
    });
  }

  /** Sends one message of the text outbox (see `send`), once for concurrent callers; null if already sent. */
  private flushText(entry: NonNullable<ProfileState["textOutbox"]>[number]): Promise<{ seq: number } | null> {
    return this.engine.singleFlight(`text:${entry.idempotencyKey}`, async () => {
      if (!(this.state.textOutbox ?? []).some((e) => e.idempotencyKey === entry.idempotencyKey)) return null;
      const drop = () =>
        (this.state.textOutbox = (this.state.textOutbox ?? []).filter(
          (e) => e.idempotencyKey !== entry.idempotencyKey,
        ));
      try {
        const conv = await this.conversationFor(entry.conversation);
        const r = await this.sendPayload(conv.id, { t: "text", text: entry.text }, entry.idempotencyKey);
        drop();
        return r;
      } catch (e) {
        // Refused (not cleared, not verified, …): it was not stored and never will be; only outages stay queued.
        if (!transient(e)) drop();
        throw e;
      }
    });
  }

  /** Officers: set a user's clearance. Devices no longer cleared are cut off before this returns. */
  async setClearance(handle: string, clearance: string) {
    return this.officer.setClearance(handle, clearance);
  }

  /** Ed25519 challenge login; the session token is kept in the profile until it expires. */
  login(force = false): Promise<void> {
    return this.session.login(force);
  }

  /**
   * Signs out: the session ends on the server (POST /v1/auth/logout, audited; the token is refused from then on),
   * then here (the keys stay: a sign-out is not a revocation). `serverEnded` is false when the server could not be
   * told (unreachable): the session then ends by itself when it expires, at `expiresAt` (ms since the epoch).
   */
  signOut(): Promise<{ serverEnded: boolean; expiresAt: number | null }> {
    return this.session.signOut();
  }

  /**
   * Ends this client object: no later `save` reaches the key store, even one from a sync or push still in flight.
   * The web app closes the client when the user signs out, before it erases the browser's store — otherwise a
   * background save landing after the erase would write the profile back.
   */
  close(): void {
    this.profile.close();
    this.transport.token = null;
  }

  /**
   * The user revokes another of their own devices (lost or stolen): a `device.revoke` entry in the directory log, its
   * sessions and key packages gone; every group it is in removes it before anything new is sent there. The device in
   * use cannot revoke itself. The own-account alert the revocation raises here is dismissed (this device made it).
   */
  async revokeOwnDevice(device: string): Promise<void> {
    if (device === this.deviceId)
      throw new ValiseError("bad_request", "this device cannot revoke itself: revoke it from another of your devices");
    await this.authed(() => this.transport.revokeOwnDevice(device));
    if (this.transparency) {
      await this.transparency.refresh(true).catch(() => undefined);
      this.transparency.ack(device);
    }
    await this.save();
  }

  /**
   * A profile whose log key was pinned on first use (a code without its bundle): the user checks it against the key
   * in the enrollment bundle (or the administrator's). The same key: the pin is confirmed (no longer first use). A
   * different key: refused, the pin unchanged — the server this device enrolled with showed another log's key.
   */
  async confirmLogKey(logKey: string): Promise<void> {
    const pinned = this.state.trust;
    if (!pinned) throw new ValiseError("bad_request", "this profile pins no log key");
    if (pinned.logKey !== logKey.trim())
      throw new ValiseError(
        "forbidden",
        `the log key you gave differs from the one this device pinned on first use (${pinned.logKey}): do not use this device; tell your security officer`,
      );
    delete pinned.firstUse;
    await this.save();
  }

  /** Runs `fn` logged in; on an expired session, logs in again once. */
  private authed<T>(fn: () => Promise<T>): Promise<T> {
    return this.session.authed(fn);
  }

  /** Key-transparency reports to the officers still on their way. */
  private reports: Promise<void>[] = [];

  async save(): Promise<void> {
    if (this.reports.length > 0) {
      const sending = this.reports;
      this.reports = [];
      await Promise.all(sending);
    }
    if (this.transparency) this.transparency.dirty = false;
    await this.profile.save();
  }

  /** Profile writes since this client was opened (see ProfileRepository.stats). */
  get profileWrites(): Readonly<ProfileRepository["stats"]> {
    return this.profile.stats;
  }

  private group(id: string): Group {
    return this.profile.group(id);
  }
  private setGroup(id: string, g: Group): void {
    this.profile.setGroup(id, g);
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
      this.lastMemberAudit = Date.now();
      await this.authed(() => this.engine.auditMembers());
    }
    await this.catchUp();
    await this.receipts.flush();
    const items = this.state.pending;
    const h = await this.history();
    if (h) {
      // History received from another own device (after its approval): the batches the server holds now.
      const alerts = await this.authed(() => fetchHistoryBatches(this.transferHost(), h));
      for (const a of alerts) items.push(alertItem(a, -1, Date.now()));
      h.record(items);
      await h.save();
    }
    this.state.pending = [];
    await this.save();
    return items;
  }

  /** Fetches and processes everything new into the pending items; state is saved at the end. */
  private async catchUp(): Promise<void> {
    return this.authed(async () => {
      const items = this.state.pending;
      await this.monitorLog(items);
      await this.engine.processInbox(items);
      const remote = await this.transport.conversations();
      for (const rc of remote) {
        const local = this.state.conversations[rc.id];
        if (!local || rc.headSeq <= local.cursor || (rc.leftSeq != null && local.cursor >= rc.leftSeq - 1)) continue;
        await this.syncConversation(rc.id, items);
      }
      await this.followForKeys(items);
      await this.cableQueue(items);
      await this.replenishKeyPackages();
      await this.save();
      // Kept as soon as decrypted (MLS decrypts once): a command that catches up without handing items over (an
      // archive export, a send) still has them in the device's history.
      const h = await this.history();
      if (h && h.record(items) > 0) await h.save();
      for (const entry of [...(this.state.outbox ?? [])]) await this.flushEntry(entry);
      for (const entry of [...(this.state.textOutbox ?? [])])
        await this.flushText(entry).catch((e: unknown) => {
          if (transient(e)) throw e;
          items.push(
            alertItem(`a queued message was not sent: ${e instanceof Error ? e.message : String(e)}`, -1, Date.now()),
          );
        });
      if ((this.state.textOutbox ?? []).length === 0) delete this.state.textOutbox;
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
        const p = heldCable(this.state, c.id);
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

  /**
   * This user's devices and own-account alerts. With key transparency, from the verified directory log (read up to
   * the latest accepted checkpoint); without, the server's unverified answer and no alerts.
   */
  async ownDevices(): Promise<{
    verified: boolean;
    checkpointSize: number | null;
    devices: OwnDevice[];
    alerts: DirectoryAlert[];
    error: string | null;
  }> {
    return this.authed(async () => {
      if (!this.transparency) {
        const me = await this.transport.me();
        return {
          verified: false,
          checkpointSize: null,
          devices: me.devices.map((d) => ({
            id: d.id,
            name: d.name,
            key: d.signaturePublicKey,
            logIndex: d.logIndex ?? -1,
            time: d.createdAt,
            revokedLogIndex: d.revokeLogIndex ?? null,
            self: d.id === this.deviceId,
            expected: true,
          })),
          alerts: [],
          error: null,
        };
      }
      let error: string | null = null;
      try {
        await this.transparency.refresh(true);
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
      }
      const s = this.transparency.state;
      await this.save();
      return {
        verified: true,
        checkpointSize: s.checkpoint?.size ?? null,
        devices: Object.values(s.own.devices).sort((a, b) => a.logIndex - b.logIndex),
        alerts: s.alerts,
        error,
      };
    });
  }

  /** Dismiss own-account alerts about `device` (a device the user enrolled); true if it changed anything. */
  async ackDevice(device: string): Promise<boolean> {
    if (!this.transparency)
      throw new ValiseError("bad_request", "this profile has no key transparency (enrolled without a bundle)");
    const hit = this.transparency.ack(device);
    await this.save();
    return hit;
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
      const entry = { conversation: await this.targetFor(to, label), text, idempotencyKey: randomId("c").slice(2) };
      (this.state.textOutbox ??= []).push(entry);
      await this.save();
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
      const conv = await this.conversationFor(entry.conversation);
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

  /** Tell the security officers that the server's directory disagrees with the log (an officer alert). */
  private async reportMismatch(subject: string, differences: string[]): Promise<void> {
    await this.authed(() =>
      this.transport.reportKt({
        kind: "directory_mismatch",
        subject: subject.slice(0, 200),
        detail: differences.join("; ").slice(0, 2000),
      }),
    );
  }

  /**
   * History for this user's new device (issue 14 part 1): after `devices approve`, this device forwards the cable
   * and document keys it holds to that device only, in every unit and link conversation the device is (or, after a
   * reconcile here, becomes) a member of — end to end inside MLS, checked by the receiver like any forward. Only an
   * active device of this user in the directory (the log) can be approved; an unapproved device gets nothing old.
   * The forwards are owed in the profile and sent in messages of at most 200 keys under fixed idempotency keys, so an
   * interrupted approval resumes where it stopped (`onProgress(sent, total)` counts messages).
   * With a history store (ClientOptions.history), the message history follows (history-transfer.ts): encrypted
   * batches and a signed manifest to that device only; `onHistory` reports its progress; it resumes likewise.
   */
  async approveDevice(
    device: string,
    onProgress?: (done: number, total: number) => void,
    onHistory?: (p: HistoryProgress) => void,
  ): Promise<{
    conversations: number;
    keys: number;
    history?: { transfer: string; messages: number; batches: number; resumed: boolean; replaced?: string };
  }> {
    return this.authed(async () => {
      let me = await this.verifier.user(this.handle);
      if (!me?.devices.some((x) => x.id === device)) {
        // A device enrolled since this directory answer was cached (a long-running app approves a device seconds
        // after its enrolment): ask the log again, which waits for the checkpoint that holds it.
        this.verifier.forget();
        me = await this.verifier.user(this.handle);
      }
      const d = me?.devices.find((x) => x.id === device);
      if (!me || !d) throw new ValiseError("not_found", `${device} is not a device of ${this.handle} in the directory`);
      if (d.revokedAt !== null) throw new ValiseError("forbidden", `${device} is revoked: no history is sent to it`);
      if (device === this.deviceId) throw new ValiseError("bad_request", "this is the device itself");
      if (this.transparency) this.transparency.ack(device);
      await this.catchUp();
      let keys = 0;
      let conversations = 0;
      const owed = this.state.forwards ?? [];
      for (const conv of Object.values(this.state.conversations)) {
        if (conv.kind !== "unit" && conv.kind !== "link") continue;
        const n = forwardPayloads(this.state, conv, me, device).reduce(
          (a, p) => a + p.cables.length + p.documents.length,
          0,
        );
        if (n === 0) continue;
        if (!groupMembers(this.group(conv.id)).some((m) => m.device === device)) await this.reconcile(conv.id);
        if (!groupMembers(this.group(conv.id)).some((m) => m.device === device)) continue;
        if (!owed.some((f) => f.conversation === conv.id && f.device === device))
          owed.push({ conversation: conv.id, to: this.handle, device, id: randomId("f").slice(2) });
        keys += n;
        conversations++;
      }
      this.state.forwards = owed;
      await this.save();
      const items: ReceivedItem[] = [];
      const total = owed.filter((f) => f.device === device).length;
      let done = 0;
      onProgress?.(0, total);
      for (const f of [...owed].filter((x) => x.device === device)) {
        this.state.forwards = [f, ...(this.state.forwards ?? []).filter((x) => x.id !== f.id)];
        await this.flushOne(f, items);
        onProgress?.(++done, total);
      }
      this.state.pending.push(...items);
      await this.save();
      const h = await this.history();
      if (!h) return { conversations, keys };
      const history = await sendHistory(this.transferHost(), h, device, onHistory);
      return { conversations, keys, history };
    });
  }

  /** What history-transfer.ts needs of this client. */
  private transferHost(): TransferHost {
    return {
      handle: this.handle,
      deviceId: this.deviceId,
      transport: this.transport,
      cipher: this.content.cipher,
      signingKey: this.keys.signaturePrivateKey,
      user: (h) => this.verifier.user(h),
      channelTo: (device) => this.engine.historyChannel(device),
      send: (conv, payload, idem) => this.sendPayload(conv, payload, idem),
    };
  }

  /** Sends the owed forwards (see noteNewMembers); one that fails for an outage stays owed. */
  private async flushForwards(items: ReceivedItem[]): Promise<void> {
    for (const f of [...(this.state.forwards ?? [])]) await this.flushOne(f, items);
    if ((this.state.forwards ?? []).length === 0) delete this.state.forwards;
  }

  private async flushOne(f: NonNullable<ProfileState["forwards"]>[number], items: ReceivedItem[]): Promise<void> {
    {
      const conv = this.state.conversations[f.conversation];
      try {
        if (conv) {
          // The recipient as the directory (the log, with key transparency) tells it: no proof, no keys.
          const to = await this.verifier.user(f.to);
          // A late member gets what the unit's share window (`unit.share`) allows; the user's own approved device
          // and the unit's archive get everything.
          const cutoff = to && f.device === undefined ? await shareCutoff(this.verifier, conv, to, Date.now()) : null;
          const shared = cutoff === null ? null : await sharedSince(this.transport, this.state, conv, cutoff);
          const payloads = forwardPayloads(this.state, conv, to, f.device, (p) => !shared || shared.has(shareKey(p)));
          for (const [i, p] of payloads.entries())
            await this.sendPayload(conv.id, p, `fwd-${f.id}-${i}`, forwardClientTag(VALISE_CLIENT, f.to));
        }
      } catch (e) {
        if (transient(e)) throw e; // stays owed: the next sync retries under the same idempotency keys
        const why = e instanceof Error ? e.message : String(e);
        items.push(alertItem(`keys were not forwarded to ${f.to}: ${why}`, -1, Date.now()));
      }
      this.state.forwards = (this.state.forwards ?? []).filter((x) => x.id !== f.id);
      await this.save();
    }
  }

  /**
   * Membership follows the directory for the conversations whose keys this device could forward: a cleared member
   * of the unit with no device in the group yet is added now (and gets the keys), instead of when someone next
   * sends there. Failures are alerts; the sync goes on.
   */
  private async followForKeys(items: ReceivedItem[]): Promise<void> {
    if ((this.state.forwards ?? []).length > 0) await this.flushForwards(items);
    const held: (CablePayload | DocumentPayload)[] = [
      ...Object.values(this.state.cables ?? {}),
      ...Object.values(this.state.documents ?? {}).flatMap((vs) => Object.values(vs)),
    ];
    for (const conv of Object.values(this.state.conversations)) {
      if ((conv.kind !== "unit" && conv.kind !== "link") || !conv.unit) continue;
      if (!held.some((p) => p.sender !== "" && travelsIn(conv, p))) continue;
      try {
        const inGroup = new Set(groupMembers(this.group(conv.id)).map((m) => m.user as string));
        const label = parseLabel(conv.label);
        let missing = false;
        for (const u of await this.engine.intendedUsers(conv)) {
          if (inGroup.has(u)) continue;
          const du = await this.verifier.user(u);
          if (du && dominates(parseLabel(du.clearance), label) && du.devices.some((d) => d.revokedAt === null))
            missing = true;
        }
        if (missing) await this.reconcile(conv.id);
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
    if ((this.state.forwards ?? []).length > 0) await this.flushForwards(items);
  }

  /**
   * Processes one conversation's log from the local cursor, in order. `pushed`: messages the push channel carried
   * (the next ones after the cursor): applied without fetching.
   */
  syncConversation(id: string, items: ReceivedItem[] = this.state.pending, pushed?: ServerMessage[]) {
    return this.engine.syncConversation(id, items, pushed);
  }

  /**
   * The conversation an item for `to` (a handle or a unit) at `label` travels in: a direct conversation with a
   * user; a unit's own channel if this user is a member; otherwise a link from this user's unit (`fromUnit`, or
   * their only/first unit) to that unit.
   */
  targetFor(to: string, label: string, fromUnit?: string): Promise<ConversationTarget> {
    return this.engine.targetFor(to, label, fromUnit);
  }

  /** Finds (membership reconciled with the directory) or creates the conversation for a target. */
  conversationFor(t: ConversationTarget): Promise<ConversationState> {
    return this.engine.conversationFor(t);
  }

  createConversation(
    spec: ConversationTarget | { kind: "group"; members: string[]; label: string },
  ): Promise<ConversationState> {
    return this.engine.createConversation(spec);
  }

  /**
   * Membership follows the directory: adds the active devices of the intended users that are missing (each through
   * the door), removes devices that were revoked or whose users left. Refuses if any intended user is not cleared.
   */
  reconcile(id: string): Promise<void> {
    return this.engine.reconcile(id);
  }

  /**
   * Encrypts and posts one application payload, one at a time per conversation; every member must be an active
   * device of a user the door says is cleared (see ConversationEngine.sendPayload).
   */
  sendPayload(id: string, payload: AppPayload, idem?: string, client?: string): Promise<{ seq: number }> {
    return this.engine.sendPayload(id, payload, idem, client);
  }

  /** External rejoin (RFC 9420 §12.4.3.2) when local state is lost or stale: fresh state from the GroupInfo. */
  rejoin(id: string): Promise<void> {
    return this.engine.rejoin(id);
  }

  /** Encrypts and posts a text; on an epoch conflict, catches up and retries with the same idempotency key. */
  async sendText(id: string, text: string): Promise<{ seq: number }> {
    if (text.length > MAX_TEXT) throw new ValiseError("bad_request", `a message has at most ${MAX_TEXT} characters`);
    return this.sendPayload(id, { t: "text", text });
  }

  /** The open push channel of `listen` (sends go over it while open). */
  private push: PushChannel | null = null;

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
    await this.login();
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
    const ch = await openPush(factory, this.serverUrl, this.transport.token ?? "", (ev) =>
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
      const items = this.state.pending;
      await this.monitorLog(items);
      this.state.pending = [];
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
    const conv = id ? this.state.conversations[id] : undefined;
    const m = pushedMessage(ev);
    if (!id || !conv || !m || m.kind !== "application") return this.sync();
    if (m.seq <= conv.cursor) return [];
    const items = this.state.pending;
    const before = items.length;
    const receipts = this.receipts.applied;
    await this.authed(() => this.syncConversation(id, items, m.seq === conv.cursor + 1 ? [m] : undefined));
    const fresh = items.slice(before);
    if ((fresh.length === 0 && this.receipts.applied === receipts) || fresh.some((i) => i.type === "alert"))
      return this.sync();
    await this.receipts.flush();
    this.state.pending = [];
    await this.save();
    return items;
  }

  /** Detection alerts (security officers only; anyone else gets 403 `forbidden`), in id order. */
  alerts(q: Parameters<OfficerApi["alerts"]>[0] = {}) {
    return this.officer.alerts(q);
  }

  /**
   * Incidents (security officers only; anyone else gets 403 `forbidden`): alerts grouped under a title, exported as
   * a STIX 2.1 bundle and shared to the TAXII collection partners read. Each call logs in again once on an expired
   * session.
   */
  readonly incidents: OfficerApi["incidents"];

  /**
   * Allies' indicators (security officers only): partners' TAXII collections polled by the server, STIX bundles
   * imported by hand, and the indicators held. Imports are searched against the stored audit log.
   */
  readonly taxii: OfficerApi["taxii"];

  /** Acknowledges an alert (officers only); the first acknowledgement stays. */
  ackAlert(id: number): Promise<ServerAlert> {
    return this.officer.ackAlert(id);
  }

  /** Alerts as the server pushes them (officers only: other sessions get no alert frames). */
  watchAlerts(factory: WebSocketFactory, onAlert: (a: AlertFrame) => void): Promise<{ close(): void }> {
    return this.officer.watchAlerts(factory, onAlert);
  }

  /** Self-update (post-compromise security): fresh leaf keys in a new epoch; retries after an epoch conflict. */
  async updateKeys(id: string): Promise<void> {
    await this.authed(async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.engine.commit(id, await updateKeys(this.ctx, this.group(id)));
          return;
        } catch (e) {
          if (e instanceof ValiseError && e.code === "epoch_conflict" && attempt < MAX_RETRIES) {
            await this.syncConversation(id);
            continue;
          }
          throw e;
        }
      }
    });
    await this.save();
  }

  /** Forget a conversation's local MLS state (tests and recovery); `rejoin` brings it back. */
  dropGroupState(id: string): void {
    this.profile.dropGroup(id);
  }

  private async replenishKeyPackages(): Promise<void> {
    const { count } = await this.transport.keyPackageCount();
    if (count >= MIN_KEY_PACKAGES) return;
    const kps = await generateKeyPackages(this.keys, INITIAL_KEY_PACKAGES);
    await this.transport.uploadKeyPackages(kps.map((k) => k.publicBytes));
    this.state.keyPackages.push(
      ...kps.map((k) => ({ ref: k.ref, publicBytes: toBase64(k.publicBytes), privateBytes: toBase64(k.privateBytes) })),
    );
  }
}

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** Before spending an enrollment code: the server's checkpoint (if any yet) must verify with the bundle's keys. */
async function checkServerLog(transport: HttpTransport, trust: TrustAnchors): Promise<void> {
  let note: string;
  try {
    note = await transport.logCheckpoint();
  } catch (e) {
    if (e instanceof ValiseError && e.code === "not_found") return; // no checkpoint yet: checked at first use
    throw e;
  }
  const q = verifyCheckpointQuorum(
    note,
    parseNoteVerifierKey(trust.logKey),
    trust.witnesses.map(parseCosignatureVerifierKey),
    trust.quorum,
  );
  if (!q.ok)
    throw new ValiseError(
      "log_not_verified",
      `the server's directory log checkpoint does not verify with the enrollment bundle: ${q.reason}`,
    );
}

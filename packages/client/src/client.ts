/**
 * The Valise client SDK: enroll a device, log in, keep conversations' MLS state, send and receive.
 * Browser-safe: no node: imports (the Node key store and WebSocket live under ./node/).
 */
import { ValiseError, fromBase64, type DeviceId, type UserHandle } from "@valise/core";
import {
  groupMembers,
  updateKeys,
  signChallenge,
  type DeviceKeys,
  type Group,
  type GroupContext,
} from "@valise/protocol";
import { HttpTransport, type ServerAlert, type ServerMessage } from "./transport.js";
import type { ConversationState, ConversationTarget, KeyStore } from "./profile.js";
import { ProfileRepository } from "./profile-repo.js";
import { Session, type Authenticate } from "./session.js";
import { OfficerApi } from "./officer.js";
import { ConversationEngine, MAX_RETRIES } from "./conversations.js";
import { DirectoryVerifier, type DirectoryDoor } from "./verifier.js";
import { TransparencyVerifier, type TransparencyOptions, type TrustAnchors } from "./transparency.js";
import { Receipts } from "./receipts.js";
import { MAX_TEXT, type AppPayload, type ReceivedItem } from "./items.js";
import { Cables } from "./cables.js";
import { heldCable } from "./held-keys.js";
import { migrateProfile } from "./migrate.js";
import { Documents } from "./documents.js";
import { AuditLog } from "./audit.js";
import type { HistoryStore } from "./history.js";
import type { HistoryProgress } from "./history-transfer.js";
import { archiveSigningMessage, type ArchiveEvidence } from "./archive.js";
import type { StreamCipher } from "./content.js";
import { webCryptoStreamCipher } from "./docstream.js";
import type { ContentHost } from "./host.js";
import type { AlertFrame, WebSocketFactory } from "./push.js";
import { SyncOrchestrator } from "./sync.js";
import { enrollDevice, type EnrollOptions } from "./enroll.js";
import { OwnDevices } from "./devices.js";

export { MEMBER_AUDIT_MS } from "./sync.js";
export type { EnrollOptions } from "./enroll.js";

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
  /** Sync, catch-up, the outboxes, listening for pushes (sync.ts). */
  private readonly orchestrator: SyncOrchestrator;
  /** This user's own devices: list, approve, revoke; directory mismatches reported (devices.ts). */
  private readonly devices: OwnDevices;
  /** Delivered/read state of text messages (receipts.ts): `state(s)`, `onReceipts`, `markRead`. */
  readonly receipts: Receipts = new Receipts({
    handle: () => this.handle,
    profile: () => this.profile,
    send: (id, p) => this.authed(() => this.sendPayload(id, p)),
    save: () => this.save(),
  });
  private readonly keys: DeviceKeys;
  private readonly content: ContentHost;

  /** The profile: typed slices and MLS group states, written only when something changed. */
  private readonly profile: ProfileRepository;

  private constructor(
    profile: ProfileRepository,
    fetchImpl?: typeof fetch,
    transparency?: TransparencyOptions,
    cipher?: StreamCipher,
  ) {
    this.profile = profile;
    const state = profile.identity;
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
      transferHost: () => this.devices.transferHost(),
      push: () => this.orchestrator.push,
      receipts: this.receipts,
    });
    this.incidents = this.officer.incidents;
    this.taxii = this.officer.taxii;
    const host = (this.content = this.contentHost(cipher));
    this.cables = new Cables(host);
    this.documents = new Documents(host);
    this.audit = new AuditLog(
      this.transport,
      () => this.profile.identity.trust,
      (fn) => this.authed(fn),
      {
        state: () => this.profile.audit,
        save: () => this.save(),
        ...(transparency?.maxCheckpointAgeMs !== undefined
          ? { maxCheckpointAgeMs: transparency.maxCheckpointAgeMs }
          : {}),
        ...(transparency?.now ? { now: transparency.now } : {}),
      },
    );
    this.transparency = state.trust
      ? // The verifier's own narrow view of the profile (TransparencyProfile: identity, trust anchors, the log slice).
        new TransparencyVerifier(this.transport, profile.state, {
          ...transparency,
          // A forged row the log does not explain reaches the security officers too (best effort: a server that drops
          // the report cannot silence the user's own alert).
          onMismatch:
            transparency?.onMismatch ??
            ((m) => {
              // Sent now; awaited by the next save, so a CLI process does not exit before the officers are told.
              this.reports.push(this.devices.reportMismatch(m.subject, m.differences).catch(() => undefined));
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
    const common = {
      profile,
      transport: this.transport,
      verifier: this.verifier,
      transparency: this.transparency,
      engine: this.engine,
      receipts: this.receipts,
      keys: this.keys,
      authed: this.session.authed,
      save: () => this.save(),
      history: () => this.history(),
    };
    this.orchestrator = new SyncOrchestrator({
      ...common,
      login: () => this.login(),
      transferHost: () => this.devices.transferHost(),
    });
    this.devices = new OwnDevices({
      ...common,
      cipher: host.cipher,
      catchUp: () => this.orchestrator.catchUp(),
      flushOne: (f, items) => this.orchestrator.flushOne(f, items),
    });
  }

  get handle(): string {
    return this.profile.identity.handle;
  }
  get deviceId(): string {
    return this.profile.identity.deviceId;
  }
  get serverUrl(): string {
    return this.profile.identity.serverUrl;
  }
  /** The pinned trust anchors (log key, witnesses, quorum; `firstUse` if pinned from the server's answer). */
  get trustAnchors(): TrustAnchors | null {
    return this.profile.identity.trust ?? null;
  }
  conversationList(): ConversationState[] {
    return Object.values(this.profile.conversations);
  }

  /**
   * Who holds the keys of a conversation now: its MLS group's members (user, device). A member the verified log
   * shows as the records archive of the conversation's unit(s) (issue 14) is marked `archive: true`.
   */
  conversationMembers(id: string): { user: string; device: string; archive?: true; role?: "archivist" }[] {
    const conv = this.profile.conversations[id];
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
   * Records archive (issue 14): what the verified log makes this device — the units its user is the archive of, the
   * accepted checkpoint, and the entries with inclusion proofs (see OwnDevices.archiveEvidence).
   */
  archiveEvidence(): Promise<ArchiveEvidence> {
    return this.devices.archiveEvidence();
  }

  /** Signs an archive manifest (exactly its bytes, under the archive context) with this device's key. */
  async signArchiveManifest(manifest: Uint8Array): Promise<Uint8Array> {
    return signChallenge(this.keys.signaturePrivateKey, archiveSigningMessage(manifest));
  }

  /** The content key (base64) of a cable this device received, for inspection and tests; null if none. */
  cableKey(id: string): string | null {
    return heldCable(this.profile.heldKeys, id)?.key ?? null;
  }

  /** Document and cable keys this device holds (ids). */
  heldKeys(): { cables: string[]; documents: string[] } {
    const held = this.profile.heldKeys;
    return { cables: Object.keys(held.cables ?? {}), documents: Object.keys(held.documents ?? {}) };
  }

  private get ctx(): GroupContext {
    return { keys: this.keys, verifier: this.verifier };
  }

  /**
   * Redeems a one-time enrollment code: makes the device's keys and key packages, registers them, saves the profile.
   * `trust` (the enrollment bundle's log key, witness keys and quorum) turns on key transparency for this profile;
   * the server's current checkpoint must verify with it before the code is spent.
   */
  static async enroll(opts: ClientOptions & EnrollOptions): Promise<ValiseClient> {
    const { state, keyPackages } = await enrollDevice(opts);
    const profile = new ProfileRepository(state, opts.store, true);
    migrateProfile(profile.state);
    const client = new ValiseClient(profile, opts.fetch, opts.transparency, opts.cipher);
    client.historyLoader = opts.history ?? null;
    client.receipts.sending = opts.receipts ?? false;
    await client.login();
    await client.transport.uploadKeyPackages(keyPackages);
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
      profile: this.profile,
      authed: (fn) => this.authed(fn),
      me: async () => {
        const u = await this.verifier.user(this.handle);
        if (!u) throw new ValiseError("not_found", "this user is not in the directory");
        return u;
      },
      user: (h) => this.verifier.user(h),
      deliver: (target, payload) => this.orchestrator.deliver(target, payload),
      save: () => this.save(),
      catchUp: () => this.catchUp(),
    };
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
   * The user revokes another of their own devices (lost or stolen): a `device.revoke` entry in the directory log; the
   * device in use cannot revoke itself (see OwnDevices.revokeOwnDevice).
   */
  revokeOwnDevice(device: string): Promise<void> {
    return this.devices.revokeOwnDevice(device);
  }

  /**
   * A profile whose log key was pinned on first use (a code without its bundle): the user checks it against the key
   * in the enrollment bundle (or the administrator's). The same key: the pin is confirmed (no longer first use). A
   * different key: refused, the pin unchanged — the server this device enrolled with showed another log's key.
   */
  async confirmLogKey(logKey: string): Promise<void> {
    const pinned = this.profile.identity.trust;
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
   * including any that an internal catch-up (before a send) received but nobody has been handed yet (see
   * SyncOrchestrator.sync: with key transparency, it also audits the members' directory answers once a minute).
   */
  sync(): Promise<ReceivedItem[]> {
    return this.orchestrator.sync();
  }

  /** Fetches and processes everything new into the pending items; state is saved at the end. */
  private catchUp(): Promise<void> {
    return this.orchestrator.catchUp();
  }

  /**
   * This user's devices and own-account alerts. With key transparency, from the verified directory log (read up to
   * the latest accepted checkpoint); without, the server's unverified answer and no alerts.
   */
  ownDevices(): ReturnType<OwnDevices["ownDevices"]> {
    return this.devices.ownDevices();
  }

  /** Dismiss own-account alerts about `device` (a device the user enrolled); true if it changed anything. */
  ackDevice(device: string): Promise<boolean> {
    return this.devices.ackDevice(device);
  }

  /** Sends a text to a user (direct conversation) or a unit (its channel), creating the conversation if needed. */
  send(
    to: string,
    text: string,
    labelText = "UNCLASSIFIED",
  ): Promise<{ conversation: string; seq: number; label: string }> {
    return this.orchestrator.send(to, text, labelText);
  }

  /**
   * History for this user's new device (issue 14 part 1): the cable and document keys this device holds are forwarded
   * to it, then the message history with a history store (see OwnDevices.approveDevice); an interrupted approval
   * resumes where it stopped.
   */
  approveDevice(
    device: string,
    onProgress?: (done: number, total: number) => void,
    onHistory?: (p: HistoryProgress) => void,
  ): ReturnType<OwnDevices["approveDevice"]> {
    return this.devices.approveDevice(device, onProgress, onHistory);
  }

  /**
   * Processes one conversation's log from the local cursor, in order. `pushed`: messages the push channel carried
   * (the next ones after the cursor): applied without fetching.
   */
  syncConversation(id: string, items: ReceivedItem[] = this.profile.pending, pushed?: ServerMessage[]) {
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

  /**
   * Listens for pushes and hands new items to `onItems` as they arrive: a full catch-up on connecting, then each
   * pushed message is applied by itself; other events catch up in full (see SyncOrchestrator.listen). Returns a handle
   * to stop listening.
   */
  listen(
    factory: WebSocketFactory,
    onItems: (items: ReceivedItem[]) => void,
    opts: { monitorMs?: number; onAlert?: (a: AlertFrame) => void } = {},
  ): Promise<{ close(): void }> {
    return this.orchestrator.listen(factory, onItems, opts);
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
}

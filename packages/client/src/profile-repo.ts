/**
 * The profile repository: the one owner of a device's ProfileState. Each part of the client works on its own typed
 * slice (identity, session, key packages, conversations, held keys, outboxes, pending items, the verified log, the
 * audit checkpoints) and the MLS group states live decoded here, each re-encoded only after it changed.
 *
 * `save()` writes only when something changed since the last write: each slice is serialized and compared with what
 * was last written, and a save that changed nothing (most of the saves a send or a sync makes) writes nothing. The
 * store still receives the whole profile in one atomic write (a crash leaves the old or the new profile, never a mix
 * of slices from two moments); a store that can take the serialized text (`TextKeyStore`) is handed the text built
 * from the slices already serialized, so nothing is serialized twice.
 */
import { ValiseError, fromBase64, toBase64 } from "@valise/core";
import { decodeGroup, encodeGroup, type Group } from "@valise/protocol";
import type { ConversationState, KeyStore, PendingUpload, ProfileState } from "./profile.js";
import type { CablePayload, DocumentPayload, ReceivedItem } from "./items.js";
import type { LogState } from "./transparency.js";
import type { AuditLogState } from "./audit.js";
import { cableStore, documentStore, type HeldKeys } from "./held-keys.js";
import { nullRecord, own } from "./schema.js";

/** The slices of a profile and the ProfileState fields each holds. */
export const PROFILE_SLICES = {
  identity: [
    "version",
    "serverUrl",
    "handle",
    "deviceId",
    "deviceName",
    "signaturePublicKey",
    "signaturePrivateKey",
    "trust",
  ],
  session: ["session"],
  keyPackages: ["keyPackages"],
  conversations: ["conversations", "inboxCursor"],
  keys: ["cables", "documents"],
  outbox: ["outbox", "textOutbox", "forwards", "uploads"],
  pending: ["pending"],
  log: ["log"],
  audit: ["audit"],
  receipts: ["receipts"],
} as const satisfies Record<string, readonly (keyof ProfileState)[]>;
export type ProfileSlice = keyof typeof PROFILE_SLICES;
type Field = (typeof PROFILE_SLICES)[ProfileSlice][number];

const FIELD_SLICE = new Map<keyof ProfileState, ProfileSlice>(
  (Object.entries(PROFILE_SLICES) as [ProfileSlice, readonly Field[]][]).flatMap(([s, fs]) =>
    fs.map((f) => [f, s] as const),
  ),
);

/** The lists of the outbox slice (owed work) besides the uploads. */
export type OutboxList = "outbox" | "textOutbox" | "forwards";

/** A key store that can write the profile's serialized JSON directly (FileKeyStore, MemoryKeyStore). */
export interface TextKeyStore extends KeyStore {
  saveText(json: string): Promise<void>;
}
const takesText = (s: KeyStore): s is TextKeyStore => typeof (s as Partial<TextKeyStore>).saveText === "function";

/** What one `save()` did: the slices that changed and the profile's JSON length written (0: nothing written). */
export interface SaveResult {
  changed: ProfileSlice[];
  bytes: number;
}

export class ProfileRepository {
  private readonly groups = new Map<string, Group>();
  /** Groups changed since the last save (re-encoded by the next one). */
  private readonly dirtyGroups = new Set<string>();
  /** Each field's JSON as last written (or as loaded). */
  private written = new Map<keyof ProfileState, string>();
  private closed = false;
  /**
   * Totals since this repository was opened: saves asked for, writes made, saves that wrote nothing, bytes handed to
   * the store, and `fullBytes`: what writing the whole profile on every save (as before the repository) would have
   * handed it (the benchmark's baseline, measured on the same saves).
   */
  readonly stats = { saves: 0, writes: 0, skipped: 0, bytes: 0, fullBytes: 0 };

  constructor(
    readonly state: ProfileState,
    private readonly store: KeyStore,
    /** The state as the store holds it now (the freshly loaded profile); omitted: the first save writes. */
    loaded = false,
  ) {
    if (loaded) this.written = this.serialize();
  }

  // ------------------------------------------------------------------ typed slices

  get identity(): Readonly<
    Pick<
      ProfileState,
      "serverUrl" | "handle" | "deviceId" | "deviceName" | "signaturePublicKey" | "signaturePrivateKey" | "trust"
    >
  > {
    return this.state;
  }
  get conversations(): Record<string, ConversationState> {
    return this.state.conversations;
  }
  /** The last Welcome (inbox item) processed. */
  get inboxCursor(): number {
    return this.state.inboxCursor;
  }
  set inboxCursor(id: number) {
    this.state.inboxCursor = id;
  }
  conversation(id: string): ConversationState | undefined {
    return Object.hasOwn(this.state.conversations, id) ? this.state.conversations[id] : undefined;
  }
  /** The outboxes and owed work (key deliveries, texts, forwards, uploads): created on first use. */
  get outbox(): NonNullable<ProfileState["outbox"]> {
    return (this.state.outbox ??= []);
  }
  get textOutbox(): NonNullable<ProfileState["textOutbox"]> {
    return (this.state.textOutbox ??= []);
  }
  get forwards(): NonNullable<ProfileState["forwards"]> {
    return (this.state.forwards ??= []);
  }
  /** An outbox list as stored: undefined when absent (reads that must not create it). */
  storedOutbox<K extends OutboxList>(list: K): ProfileState[K] {
    return this.state[list];
  }
  /** Replaces an outbox list; undefined removes it from the profile. */
  setOutbox<K extends OutboxList>(list: K, value: ProfileState[K]): void {
    if (value === undefined) delete this.state[list];
    else this.state[list] = value;
  }

  /**
   * The held cable and document keys (held-keys.ts reads and accepts them; absent records are created by the first
   * key written). `cables`/`documents`: the records themselves, created on first use.
   */
  get heldKeys(): HeldKeys {
    return this.state;
  }
  get cables(): Record<string, CablePayload> {
    return cableStore(this.state);
  }
  get documents(): Record<string, Record<string, DocumentPayload>> {
    return documentStore(this.state);
  }

  /** Resumable document uploads by blob id: created on first use (`upload`, `uploadList` read without creating). */
  get uploads(): Record<string, PendingUpload> {
    return (this.state.uploads ??= {});
  }
  upload(blob: string): PendingUpload | undefined {
    return own(this.state.uploads, blob);
  }
  uploadList(): PendingUpload[] {
    return Object.values(this.state.uploads ?? {});
  }
  deleteUpload(blob: string): void {
    if (this.state.uploads) delete this.state.uploads[blob];
  }

  /** Items received but not yet handed to the user; `takePending` hands them over and empties the list. */
  get pending(): ReceivedItem[] {
    return this.state.pending;
  }
  set pending(items: ReceivedItem[]) {
    this.state.pending = items;
  }

  /** The verified directory log (transparency.ts keeps it; created there on first use). */
  get log(): LogState | undefined {
    return this.state.log;
  }
  set log(l: LogState | undefined) {
    if (l === undefined) delete this.state.log;
    else this.state.log = l;
  }

  /** The audit log checkpoints this device accepted: created on first use. */
  get audit(): AuditLogState {
    return (this.state.audit ??= { checkpoints: {} });
  }

  /** Delivered/read receipts (receipts.ts): created on first use. */
  get receipts(): NonNullable<ProfileState["receipts"]> {
    return (this.state.receipts ??= { sent: nullRecord(), owed: nullRecord() });
  }
  /** The receipts slice as stored (undefined until a receipt was recorded): reads that must not create it. */
  get storedReceipts(): ProfileState["receipts"] {
    return this.state.receipts;
  }

  /** Unused key packages (their private parts): the last one is the last-resort package. */
  get keyPackages(): ProfileState["keyPackages"] {
    return this.state.keyPackages;
  }
  set keyPackages(kps: ProfileState["keyPackages"]) {
    this.state.keyPackages = kps;
  }

  /** The server session (token and expiry), or null when logged out. */
  get session(): ProfileState["session"] {
    return this.state.session;
  }
  set session(s: ProfileState["session"]) {
    this.state.session = s;
  }

  // ------------------------------------------------------------------ MLS group states

  /** The decoded group of a conversation (decoded once, kept). */
  group(id: string): Group {
    let g = this.groups.get(id);
    if (!g) {
      const c = this.conversation(id);
      if (!c) throw new ValiseError("not_found", `unknown conversation ${id}`);
      g = decodeGroup(fromBase64(c.group));
      this.groups.set(id, g);
    }
    return g;
  }
  setGroup(id: string, g: Group): void {
    this.groups.set(id, g);
    this.dirtyGroups.add(id);
  }
  /** Forgets the decoded state (the profile's copy stays; `rejoin` brings a fresh one). */
  dropGroup(id: string): void {
    this.groups.delete(id);
    this.dirtyGroups.delete(id);
  }
  /** Removes a conversation and its group state. */
  deleteConversation(id: string): void {
    delete this.state.conversations[id];
    this.dropGroup(id);
  }

  // ------------------------------------------------------------------ saving

  private serialize(): Map<keyof ProfileState, string> {
    const out = new Map<keyof ProfileState, string>();
    for (const f of FIELD_SLICE.keys()) {
      const v = this.state[f];
      if (v !== undefined) out.set(f, JSON.stringify(v));
    }
    // Fields a newer profile added and no slice names yet are kept (written with the identity slice).
    for (const f of Object.keys(this.state) as (keyof ProfileState)[])
      if (!FIELD_SLICE.has(f) && this.state[f] !== undefined) out.set(f, JSON.stringify(this.state[f]));
    return out;
  }

  /** The slices that differ from what was last written (after folding the changed groups into the profile). */
  private changes(now: Map<keyof ProfileState, string>): ProfileSlice[] {
    const changed = new Set<ProfileSlice>();
    for (const f of new Set([...now.keys(), ...this.written.keys()]))
      if (now.get(f) !== this.written.get(f)) changed.add(FIELD_SLICE.get(f) ?? "identity");
    return [...changed];
  }

  /** The write in progress (or the last one): saves run one after another. */
  private writing: Promise<unknown> = Promise.resolve();

  /**
   * Writes the profile if any slice changed since the last write; after `close()`, never. One write at a time, each
   * taking the state as it is when its turn comes: two saves in flight at once (a sync's and an upload checkpoint's,
   * say) could otherwise reach the store out of order — the sealed browser store encrypts before it writes — and an
   * older profile land last, over a newer one: an upload's checkpoint, or an MLS ratchet state, rolled back on disk.
   */
  save(): Promise<SaveResult> {
    const run = this.writing.then(() => this.saveNow());
    this.writing = run.catch(() => undefined);
    return run;
  }

  private async saveNow(): Promise<SaveResult> {
    for (const id of this.dirtyGroups) {
      const c = this.conversation(id);
      const g = this.groups.get(id);
      if (c && g) c.group = toBase64(encodeGroup(g));
    }
    this.dirtyGroups.clear();
    if (this.closed) return { changed: [], bytes: 0 };
    const now = this.serialize();
    const changed = this.changes(now);
    // The length of the profile's JSON (`{"field":value,…}`), counted without building it.
    const size = [...now].reduce((a, [k, v]) => a + k.length + v.length + 4, 1);
    this.stats.saves++;
    this.stats.fullBytes += size;
    if (changed.length === 0) {
      this.stats.skipped++;
      return { changed, bytes: 0 };
    }
    if (takesText(this.store)) await this.store.saveText(`{${[...now].map(([k, v]) => `"${k}":${v}`).join(",")}}`);
    else await this.store.save(this.state);
    this.written = now;
    this.stats.writes++;
    this.stats.bytes += size;
    return { changed, bytes: size };
  }

  /** No later save reaches the store (see ValiseClient.close). */
  close(): void {
    this.closed = true;
  }
}

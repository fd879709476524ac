/**
 * Key transparency on the client (DESIGN.md §3, issue 4 item 5): the door checks every device against the
 * witnessed directory log instead of trusting the server's directory answer, and the device watches every log entry
 * about its own user.
 *
 * - A checkpoint is accepted only if the log key (from the enrollment bundle) signed it and at least `quorum` of
 *   the bundle's witnesses cosigned it; it must extend the last accepted one (same size → same root; larger →
 *   a consistency proof), so a rollback or a fork is refused.
 * - The device reads every entry up to the accepted checkpoint (C2SP tlog-tiles entry bundles), hashes them into an
 *   RFC 9162 frontier whose root must equal the checkpoint's, and keeps what it needs to answer "is this still
 *   true?": revocations and each user's latest clearance entry, and everything about its own user (alerts).
 * - The whole directory comes from the log (issue 12): while scanning, the device folds every entry into `dir` —
 *   units and their max labels, users with their units, clearance, role and state, devices with keys and revocations.
 *   Every fact that decides who gets keys or what a conversation may carry is read from there, never from the
 *   server's answers. The server's answers are still compared with it: a disagreement that a fresh checkpoint does not
 *   explain (a forged database row) becomes an alert naming what differs, is reported to the security officers, and
 *   the client goes on with what the log proves.
 * - A device is accepted only if the log adds exactly this user, device and key, has not revoked it, and has not
 *   disabled its user. The scan hashed every entry into the accepted checkpoint's root, so that is proof enough.
 * - Membership monitoring: new entries about the units this user belongs to and the people it talks to (members
 *   joining or leaving, new or revoked devices, clearance, role and state changes, a unit's max label) become notices
 *   that `sync` hands out before anything new is encrypted to them.
 *
 * Browser-safe: no node: imports. Everything from the server is untrusted input; verification never trusts sizes,
 * indices or bytes it has not checked.
 */
import {
  DEFAULT_MAX_CHECKPOINT_AGE_SECONDS,
  ValiseError,
  checkpointFreshness,
  equalBytes,
  freshnessAt,
  fail,
  revokedVerdict,
  fromBase64,
  frontierAppend,
  frontierRoot,
  isDeviceId,
  isTreeIndex,
  isUnitName,
  isUserHandle,
  leafHash,
  OK,
  openNote,
  parseCosignatureVerifierKey,
  parseDirectoryEntry,
  parseNoteVerifierKey,
  toBase64,
  verifyCheckpointQuorum,
  verifyKeyHandover,
  type CheckpointFreshness,
  type DirectoryEntry,
  type Frontier,
  type NoteVerifier,
  type Verdict,
} from "@valise/core";
import type { DeviceCredential } from "@valise/protocol";
import { requireExtends, type AcceptedCheckpoint } from "./checkpoint-state.js";
import type { HttpTransport, ServerUser } from "./transport.js";
import type { DirectoryDoor } from "./verifier.js";

/** What the enrollment bundle pins: the directory log's verifier key, the witnesses' keys, and the quorum. */
export interface TrustAnchors {
  /** signed-note verifier key of the directory log (`name+hash+base64(0x01 || key)`). */
  logKey: string;
  /** tlog-cosignature verifier keys of the witnesses (`name+hash+base64(0x04 || key)`). */
  witnesses: string[];
  /** How many distinct witnesses must cosign a checkpoint (0: the log's signature alone — no witnessing). */
  quorum: number;
  /**
   * Pinned from the server's own answer at enrollment (a code without a bundle): trust on first use. Monitoring works
   * the same from then on, but a server that was already hostile at enrollment could have pinned its own key.
   */
  firstUse?: boolean;
  /**
   * Log-key hand-overs this device followed (issue 19), oldest first: `logKey` is the last one's `to`. The device
   * pinned `from` until the log reached `directorySize`; from then on the new key signs.
   */
  handovers?: { from: string; to: string; directorySize: number; auditSize: number; at: number }[];
}

/** Check trust anchors from an enrollment bundle; throws ValiseError("bad_request") saying what is wrong. */
export function parseTrustAnchors(x: unknown): TrustAnchors {
  const bad = (why: string) => new ValiseError("bad_request", `enrollment bundle: ${why}`);
  if (typeof x !== "object" || x === null) throw bad("expected an object");
  const o = x as Record<string, unknown>;
  if (typeof o.logKey !== "string") throw bad("logKey must be the directory log's verifier key");
  try {
    parseNoteVerifierKey(o.logKey);
  } catch (e) {
    throw bad(`logKey: ${e instanceof Error ? e.message : String(e)}`);
  }
  const witnesses = o.witnesses ?? [];
  if (!Array.isArray(witnesses) || !witnesses.every((w) => typeof w === "string"))
    throw bad("witnesses must be a list of witness verifier keys");
  for (const w of witnesses) {
    try {
      parseCosignatureVerifierKey(w);
    } catch (e) {
      throw bad(`witness ${w}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const quorum = o.quorum ?? 0;
  if (!Number.isSafeInteger(quorum) || (quorum as number) < 0 || (quorum as number) > witnesses.length)
    throw bad(`quorum must be an integer from 0 to the number of witnesses (${witnesses.length})`);
  return {
    logKey: o.logKey,
    witnesses: [...witnesses],
    quorum: quorum as number,
    ...(o.firstUse === true ? { firstUse: true } : {}),
  };
}

/** A device of this profile's own user, as the verified log tells it. */
export interface OwnDevice {
  id: string;
  name: string;
  /** base64 Ed25519 signature key, from the log. */
  key: string;
  logIndex: number;
  /** Enrollment time the entry states (ms since the epoch). */
  time: number;
  revokedLogIndex: number | null;
  /** This device. */
  self: boolean;
  /** Enrolled before this device (the user's devices then), this device, or acknowledged by the user. */
  expected: boolean;
}

export interface DirectoryAlert {
  /** `log-<index>`: one alert per log entry; `mismatch-<n>`: the server's directory disagreed with the log. */
  id: string;
  kind:
    | "device.add"
    | "device.revoke"
    | "user.add"
    | "user.clearance"
    | "user.role"
    | "user.disable"
    | "user.enable"
    | "member.add"
    | "member.remove"
    | "archive.assign"
    | "archive.remove"
    | "directory.mismatch"
    | "log.key";
  logIndex: number;
  device?: string;
  text: string;
  /** The entry's time (ms since the epoch). */
  time: number;
  acked: boolean;
  /** Already handed to the user by a sync. */
  surfaced: boolean;
}

/** A user as the verified log tells it. */
export interface LogUser {
  units: string[];
  clearance: string;
  /** Index of the latest entry setting the clearance (`user.add` or `user.clearance`). */
  clearanceIndex: number;
  role: string;
  disabled: boolean;
  /** Index of the `user.add`. */
  index: number;
  /**
   * The units (also in `units`) this user is the records archive of (`archive.assign`, issue 14): only while the
   * role is `archivist`; a role change ends them.
   */
  archives?: string[];
  /** The index of the `archive.assign` entry of each of `archives`. */
  archiveIndex?: Record<string, number>;
}

/** A device as the verified log tells it. */
export interface LogDevice {
  user: string;
  name: string;
  /** base64 Ed25519 signature key. */
  key: string;
  addIndex: number;
  time: number;
  revokeIndex: number | null;
  revokeTime: number | null;
}

/** The directory folded from every entry of the verified log (plain JSON; keys are checked identifiers). */
export interface LogDirectory {
  /** `share`: the unit's `unit.share` window (absent: `all`). */
  units: Record<string, { maxLabel: string; index: number; share?: string }>;
  users: Record<string, LogUser>;
  devices: Record<string, LogDevice>;
}

/** A change the log shows about a unit this user belongs to or a person it talks to (membership monitoring). */
export interface DirectoryNotice {
  /** `log-<index>`. */
  id: string;
  logIndex: number;
  /** The entry type (`member.add`, `device.add`, …). */
  event: string;
  user: string | null;
  unit: string | null;
  device: string | null;
  text: string;
  time: number;
  surfaced: boolean;
}

/** What this device has verified of the directory log; kept in the profile (JSON). */
export interface LogState {
  /** The last accepted checkpoint: the signed note as served, its size, root and freshness proof. */
  checkpoint: AcceptedCheckpoint | null;
  /** Entries read and hashed: how many, and the RFC 9162 frontier (base64 perfect-subtree hashes). */
  scanned: { size: number; frontier: string[] };
  /** Every revoked device in the log → the index of its `device.revoke`. */
  revoked: Record<string, number>;
  /** Every user → the index of the latest entry setting their clearance (`user.add` or `user.clearance`). */
  clearance: Record<string, number>;
  own: {
    /** The index of this device's own `device.add`; entries before it are the baseline (no alerts). */
    selfLogIndex: number | null;
    account: { units: string[]; clearance: string; role: string } | null;
    devices: Record<string, OwnDevice>;
  };
  alerts: DirectoryAlert[];
  /** Devices acknowledged before the log showed them. */
  acked: string[];
  /** When this device first accepted a checkpoint (ms): its own `device.add` is expected in the log soon after. */
  firstAcceptedAt?: number;
  /** The directory as the log tells it (absent in profiles from before issue 12: rebuilt by a full rescan). */
  dir?: LogDirectory;
  /** Membership monitoring: changes to hand out in `sync`. */
  notices?: DirectoryNotice[];
  /** Disagreements between the server and the log already alerted (key → when first seen, ms). */
  mismatches?: Record<string, number>;
}

export function emptyDirectory(): LogDirectory {
  return { units: {}, users: {}, devices: {} };
}

/** A disagreement between the server's directory and the log, as reported to the security officers. */
export interface DirectoryMismatch {
  subject: string;
  differences: string[];
}

export function emptyLogState(): LogState {
  return {
    checkpoint: null,
    scanned: { size: 0, frontier: [] },
    revoked: {},
    clearance: {},
    own: { selfLogIndex: null, account: null, devices: {} },
    alerts: [],
    acked: [],
    dir: emptyDirectory(),
    notices: [],
    mismatches: {},
  };
}

export interface TransparencyOptions {
  /** How long a fetched checkpoint and directory answer are reused (default 5 s; `forget()` drops them). */
  ttlMs?: number;
  /** While waiting for a checkpoint that covers a new entry: poll interval and limit (default 100 ms, 15 s). */
  pollMs?: number;
  maxWaitMs?: number;
  /** How long after its first accepted checkpoint this device's own enrollment must be in the log (default 2 min). */
  selfGraceMs?: number;
  /**
   * Freshness bound (issue 13): a checkpoint is stale when its newest witness-quorum cosignature is older than this
   * (default 10 min; the server asks witnesses to cosign again every minute even when the log has not grown).
   */
  maxCheckpointAgeMs?: number;
  /**
   * How long a disagreement between the server's answer and the log may be explained by a change the next checkpoint
   * will show (default 3 s; the server signs a checkpoint at least once a second).
   */
  settleMs?: number;
  /** Told of every new disagreement (the client reports it to the security officers). */
  onMismatch?: (m: DirectoryMismatch) => void;
  /** Handles this device talks to outside its units (conversation peers): their changes are notices too. */
  watched?: () => Iterable<string>;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** Entries per C2SP tlog-tiles entry bundle. */
const BUNDLE_WIDTH = 256;

function refused(message: string): ValiseError {
  return new ValiseError("log_not_verified", message);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Split a C2SP tlog-tiles entry bundle (uint16 big-endian length-prefixed entries). */
function splitBundle(b: Uint8Array, width: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < b.length) {
    if (at + 2 > b.length) throw refused("truncated entry bundle");
    const n = (b[at]! << 8) | b[at + 1]!;
    if (at + 2 + n > b.length) throw refused("truncated entry bundle");
    out.push(b.slice(at + 2, at + 2 + n));
    at += 2 + n;
  }
  if (out.length !== width) throw refused(`entry bundle has ${out.length} entries, expected ${width}`);
  return out;
}

/** A share window in words (`30 days`, `12 hours`, `90 seconds`). */
export function describeSeconds(n: number): string {
  const unit = (k: number, w: string) => `${k} ${w}${k === 1 ? "" : "s"}`;
  if (n % 86_400 === 0) return unit(n / 86_400, "day");
  if (n % 3600 === 0) return unit(n / 3600, "hour");
  if (n % 60 === 0) return unit(n / 60, "minute");
  return unit(n, "second");
}

const iso = (t: number) => (Number.isFinite(t) ? new Date(t).toISOString() : String(t));

/** An own property of a JSON record, never an inherited one (`__proto__`, `constructor`). */
function own<T>(r: Record<string, T>, k: string): T | undefined {
  return Object.hasOwn(r, k) ? r[k] : undefined;
}

const sameList = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);
const q = (x: unknown) => JSON.stringify(x);
/** How many alerted disagreements a profile remembers. */
const MAX_MISMATCHES = 1000;

/**
 * What the verifier reads and writes of the device's profile (ProfileState has all of it; named here so that
 * profile.ts, which stores LogState, and this module do not import each other).
 */
export interface TransparencyProfile {
  handle: string;
  deviceId: string;
  signaturePublicKey: string;
  trust?: TrustAnchors;
  log?: LogState;
}

export class TransparencyVerifier implements DirectoryDoor {
  /** The pinned log key; replaced only by following a hand-over the pinned key signed (`followHandover`). */
  private logVerifier: NoteVerifier;
  private readonly witnessVerifiers: NoteVerifier[];
  private readonly quorum: number;
  private readonly ttlMs: number;
  private readonly pollMs: number;
  private readonly maxWaitMs: number;
  private readonly selfGraceMs: number;
  private readonly maxAgeMs: number;
  private readonly settleMs: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly onMismatch: ((m: DirectoryMismatch) => void) | undefined;
  private readonly watched: (() => Iterable<string>) | undefined;
  private checkedAt = -Infinity;
  private refreshing: Promise<void> | null = null;
  /** A new alert was raised since the profile was last saved (the client saves even when the operation fails). */
  dirty = false;
  private readonly users = new Map<string, { at: number; user: Promise<ServerUser | null> }>();
  private readonly members = new Map<string, { at: number; members: Promise<string[]> }>();
  /** user → their device ids in the log, rebuilt when the scanned size changes. */
  private byUser: { size: number; map: Map<string, string[]> } | null = null;

  constructor(
    private readonly transport: HttpTransport,
    private readonly profile: TransparencyProfile,
    opts: TransparencyOptions = {},
  ) {
    const trust = profile.trust;
    if (!trust) throw new ValiseError("bad_request", "this profile has no key transparency trust anchors");
    this.logVerifier = parseNoteVerifierKey(trust.logKey);
    this.witnessVerifiers = trust.witnesses.map(parseCosignatureVerifierKey);
    this.quorum = trust.quorum;
    this.ttlMs = opts.ttlMs ?? 5_000;
    this.pollMs = opts.pollMs ?? 100;
    this.maxWaitMs = opts.maxWaitMs ?? 15_000;
    this.selfGraceMs = opts.selfGraceMs ?? 120_000;
    this.maxAgeMs = opts.maxCheckpointAgeMs ?? DEFAULT_MAX_CHECKPOINT_AGE_SECONDS * 1000;
    this.settleMs = opts.settleMs ?? 3_000;
    this.now = opts.now ?? (() => Date.now());
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.onMismatch = opts.onMismatch;
    this.watched = opts.watched;
    profile.log ??= emptyLogState();
  }

  /** The verified log state (in the profile; saved with it). */
  get state(): LogState {
    return (this.profile.log ??= emptyLogState());
  }

  /** The directory as the verified log tells it (empty until a checkpoint is accepted). */
  get directory(): LogDirectory {
    return this.state.dir ?? emptyDirectory();
  }

  provenSize(): number | null {
    return this.state.checkpoint?.size ?? 0;
  }

  forget(): void {
    this.users.clear();
    this.members.clear();
    this.checkedAt = -Infinity;
  }

  /**
   * Fetch the latest checkpoint and accept it if it is witnessed and extends the accepted one; read the new entries.
   * Throws ValiseError("log_not_verified") saying why a checkpoint was refused (the accepted state is kept).
   */
  refresh(force = false): Promise<void> {
    if (this.refreshing) return this.refreshing;
    if (!force && this.now() - this.checkedAt < this.ttlMs) return Promise.resolve();
    this.refreshing = this.accept().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async accept(): Promise<void> {
    const note = await this.transport.logCheckpoint();
    let q = verifyCheckpointQuorum(note, this.logVerifier, this.witnessVerifiers, this.quorum);
    // Not signed by the pinned key: a key rotation is followed only through a hand-over the pinned key signed.
    if (!q.ok && !signedBy(note, this.logVerifier) && (await this.followHandover()))
      q = verifyCheckpointQuorum(note, this.logVerifier, this.witnessVerifiers, this.quorum);
    if (!q.ok) {
      if (!signedBy(note, this.logVerifier))
        this.keyAlert(
          `The server served a directory log checkpoint that the pinned log key ${this.profile.trust!.logKey} did not ` +
            "sign, and no hand-over signed by that key announces another: refused",
        );
      throw refused(`directory log checkpoint refused: ${q.reason}`);
    }
    const cp = q.checkpoint;
    const prev = this.state.checkpoint;
    const last = this.profile.trust!.handovers?.at(-1);
    if (last && last.to === this.profile.trust!.logKey && cp.size < last.directorySize)
      throw refused(
        `directory log checkpoint refused: the new log key signs from size ${last.directorySize} on ` +
          `(its hand-over), not a tree of ${cp.size}`,
      );
    // Rollback, fork, or a larger tree without a valid consistency proof from the accepted one: refused.
    await requireExtends("directory log", prev, cp, (from, to) => this.transport.logConsistencyProof(from, to));
    const next = structuredClone(this.state);
    const alertsBefore = next.alerts.length;
    const noticesBefore = (next.notices ??= []).length;
    // A profile from before the directory was folded from the log: read it again from entry 0 (own-account state,
    // alerts and notices are kept; only entries past the old size raise new ones).
    if (!next.dir) await this.scan(next, next.scanned.size, true);
    if (cp.size > next.scanned.size) await this.scan(next, cp.size);
    if (next.scanned.size !== cp.size) throw refused("directory log scan ended at the wrong size");
    const root = frontierRoot(this.frontierOf(next));
    if (!equalBytes(root, cp.rootHash))
      throw refused(`directory log checkpoint refused: the entries served do not hash to the root of size ${cp.size}`);
    // Freshness (issue 13): when a witness quorum last vouched that this is the latest tree. A stale checkpoint is
    // still consistent, so it is accepted, but `freshness()` says it is stale (sync raises an alert about it). At the
    // same size, an older cosignature replayed proves nothing new: the newest proof of this tree is kept.
    let cosignedAt = checkpointFreshness(q.cosigners, this.quorum, this.now(), this.maxAgeMs / 1000).cosignedAt;
    if (prev && prev.size === cp.size && (prev.cosignedAt ?? null) !== null)
      cosignedAt = Math.max(cosignedAt ?? 0, prev.cosignedAt!);
    const keep = prev && prev.size === cp.size && cosignedAt === prev.cosignedAt;
    next.checkpoint = {
      note: keep ? prev.note : note,
      size: cp.size,
      rootHash: toBase64(cp.rootHash),
      cosignedAt,
      acceptedAt: keep ? (prev.acceptedAt ?? this.now()) : this.now(),
    };
    next.firstAcceptedAt ??= this.now();
    // Alerts, notices and acknowledgements made while this ran stay; the scan's new ones are appended.
    const cur = this.state;
    next.alerts = [...cur.alerts, ...next.alerts.slice(alertsBefore)];
    next.notices = [...(cur.notices ?? []), ...next.notices.slice(noticesBefore)];
    next.mismatches = cur.mismatches ?? {};
    next.acked = cur.acked;
    this.profile.log = next;
    this.checkedAt = this.now();
  }

  /**
   * Log-key rotation (issue 19): fetch the server's hand-overs and follow the one signed by the pinned key (and by
   * the key it names), if the accepted checkpoint is not past the size it hands over at. On success the new key is
   * pinned, the hand-over recorded in the trust anchors, and an alert tells the user once (and `--json`). A hand-over
   * from the pinned key that fails any check is refused with an alert; hand-overs from other keys (forged, or ones
   * followed before: a replay) change nothing. Returns whether the pin changed.
   */
  private async followHandover(): Promise<boolean> {
    let notes: string[];
    try {
      notes = await this.transport.logKeyHandovers();
    } catch {
      return false; // a server from before rotation, or none served: nothing to follow
    }
    const trust = this.profile.trust!;
    let changed = false;
    for (let round = 0; round < 16; round++) {
      const pinned = trust.logKey;
      let next: { note: string; v: ReturnType<typeof verifyKeyHandover> } | undefined;
      for (const note of notes.slice(0, 64)) {
        if (typeof note !== "string") continue;
        const v = verifyKeyHandover(note, pinned);
        if (v.ok) {
          next = { note, v };
          break;
        }
        // A note claiming to hand over from the pinned key that does not verify is an attack or a broken server.
        if (/^old /m.test(note) && note.includes(`\nold ${pinned}\n`)) next ??= { note, v };
      }
      if (!next) return changed;
      if (!next.v.ok) {
        this.keyAlert(`A log-key hand-over from the pinned key was refused: ${next.v.reason}`);
        return changed;
      }
      const h = next.v.handover;
      const accepted = this.state.checkpoint?.size ?? 0;
      if (accepted > h.directorySize) {
        this.keyAlert(
          `A log-key hand-over from ${pinned} to ${h.newKey} at size ${h.directorySize} was refused: this device ` +
            `already accepted a checkpoint of ${accepted} entries signed by the old key (it signed past its hand-over)`,
        );
        return changed;
      }
      trust.handovers = [
        ...(trust.handovers ?? []),
        { from: pinned, to: h.newKey, directorySize: h.directorySize, auditSize: h.auditSize, at: this.now() },
      ];
      trust.logKey = h.newKey;
      this.logVerifier = parseNoteVerifierKey(h.newKey);
      changed = true;
      this.dirty = true;
      this.state.alerts.push({
        id: `log-key-${this.now()}-${this.state.alerts.length}`,
        kind: "log.key",
        logIndex: -1,
        text:
          `The directory log's signing key changed: ${pinned} handed over to ${h.newKey} from log size ` +
          `${h.directorySize} (audit log ${h.auditSize}), in a statement signed by both keys. This device now pins ` +
          "the new key; checkpoints signed by the old one past that size are refused",
        time: this.now(),
        acked: false,
        surfaced: false,
      });
    }
    return changed;
  }

  /** A refused log key or hand-over: one alert per distinct text (an attack, or a server operator's mistake). */
  private keyAlert(text: string): void {
    const key = `log-key: ${text}`;
    if (this.alerted(key)) return;
    const seen = (this.state.mismatches ??= {});
    seen[key] = this.now();
    this.dirty = true;
    this.state.alerts.push({
      id: `log-key-${this.now()}-${this.state.alerts.length}`,
      kind: "log.key",
      logIndex: -1,
      text,
      time: this.now(),
      acked: false,
      surfaced: false,
    });
  }

  /**
   * How fresh the accepted checkpoint is (proved by witness cosignature timestamps, see core checkpointFreshness):
   * stale once the newest quorum cosignature is older than `maxCheckpointAgeMs`. An explicit status, not a failure:
   * sends keep working while witnesses are briefly late; sync raises an alert and `valise log status` shows it.
   */
  freshness(): CheckpointFreshness {
    return freshnessAt(this.state.checkpoint?.cosignedAt ?? null, this.quorum, this.now(), this.maxAgeMs / 1000);
  }

  private frontierOf(s: LogState): Frontier {
    return { size: s.scanned.size, hashes: s.scanned.frontier.map((h) => fromBase64(h)) };
  }

  /**
   * Read entries [scanned, size) from entry bundles into `s`: frontier, directory, own account, notices. With
   * `rebuild`, read from entry 0 into a fresh directory, raising no alert or notice for entries read before.
   */
  private async scan(s: LogState, size: number, rebuild = false): Promise<void> {
    const newFrom = s.scanned.size;
    if (rebuild) {
      s.dir = emptyDirectory();
      s.scanned = { size: 0, frontier: [] };
    }
    const dir = (s.dir ??= emptyDirectory());
    const watched = new Set(this.watched?.() ?? []);
    let f = this.frontierOf(s);
    while (f.size < size) {
      const tile = Math.floor(f.size / BUNDLE_WIDTH);
      const end = Math.min((tile + 1) * BUNDLE_WIDTH, size);
      const width = end - tile * BUNDLE_WIDTH;
      const entries = splitBundle(await this.transport.logEntryBundle(tile, width), width);
      for (let i = f.size - tile * BUNDLE_WIDTH; i < width; i++) {
        const bytes = entries[i]!;
        const index = tile * BUNDLE_WIDTH + i;
        const parsed = parseDirectoryEntry(bytes);
        if (!parsed.ok) throw refused(`directory log entry ${index} is not a canonical entry: ${parsed.reason}`);
        checkIdentifiers(parsed.entry, index);
        f = frontierAppend(f, leafHash(bytes)).frontier;
        if (index >= newFrom) {
          this.notice(s, dir, parsed.entry, index, watched);
          this.apply(s, parsed.entry, index);
        }
        applyToDirectory(s, dir, parsed.entry, index);
      }
    }
    s.scanned = { size: f.size, frontier: f.hashes.map((h) => toBase64(h)) };
    if (rebuild && s.scanned.size !== newFrom) throw refused("directory log rescan ended at the wrong size");
  }

  /** Membership monitoring: an entry about a unit this user is in, or a person it talks to, becomes a notice. */
  private notice(s: LogState, dir: LogDirectory, e: DirectoryEntry, index: number, watched: Set<string>): void {
    const me = this.profile.handle;
    if (s.own.selfLogIndex === null || e.type === "unit.add") return; // the baseline: no news before this device
    if ("user" in e && e.user === me) return; // about this user: own-account alerts
    const myUnits = own(dir.users, me)?.units ?? [];
    const shares = (user: string) => {
      const u = own(dir.users, user);
      return watched.has(user) || (!!u && u.units.some((x) => myUnits.includes(x)));
    };
    const who = (user: string) => {
      const u = own(dir.users, user);
      return u && u.units.length > 0 ? `${user} (${u.units.join(", ")})` : user;
    };
    let text: string | null = null;
    let unit: string | null = null;
    let device: string | null = null;
    switch (e.type) {
      case "unit.label": {
        if (!myUnits.includes(e.unit)) return;
        unit = e.unit;
        const before = own(dir.units, e.unit)?.maxLabel ?? "?";
        text = `${e.unit} may now carry up to ${e.maxLabel} (was ${before})`;
        break;
      }
      case "unit.share": {
        if (!myUnits.includes(e.unit)) return;
        unit = e.unit;
        text =
          e.since === "all"
            ? `${e.unit} now shares every key it holds with members who join later`
            : `${e.unit} now shares with members who join later only the keys of the last ${describeSeconds(Number(e.since))}`;
        break;
      }
      case "archive.assign": {
        if (!myUnits.includes(e.unit) && !watched.has(e.user)) return;
        unit = e.unit;
        const u = own(dir.users, e.user);
        if (!u || u.role !== "archivist" || u.units.includes(e.unit)) return; // proves no archive (see the fold)
        text =
          `${e.user} is now the records archive of ${e.unit} (cleared ${u.clearance}): its devices join the unit's ` +
          "channels and links and receive every key of the unit they are cleared for";
        break;
      }
      case "archive.remove": {
        if (!myUnits.includes(e.unit) && !watched.has(e.user)) return;
        unit = e.unit;
        text = `${e.user} is no longer the records archive of ${e.unit}`;
        break;
      }
      case "user.add": {
        const mine = e.units.filter((x) => myUnits.includes(x));
        if (mine.length === 0 && !watched.has(e.user)) return;
        unit = mine[0] ?? null;
        text = `${e.user} joined ${mine.join(", ") || e.units.join(", ") || "the directory"}, cleared ${e.clearance}, role ${e.role}`;
        break;
      }
      case "member.add": {
        if (!myUnits.includes(e.unit) && !watched.has(e.user)) return;
        unit = e.unit;
        const u = own(dir.users, e.user);
        text = `${who(e.user)} joined ${e.unit}${u ? `, cleared ${u.clearance}` : ""}`;
        break;
      }
      case "member.remove": {
        if (!myUnits.includes(e.unit) && !watched.has(e.user)) return;
        unit = e.unit;
        text = `${e.user} left ${e.unit}`;
        break;
      }
      case "device.add": {
        if (!shares(e.user)) return;
        device = e.device;
        text = `new device ${q(e.name)} of ${who(e.user)} (${e.device})`;
        break;
      }
      case "device.revoke": {
        if (!shares(e.user)) return;
        device = e.device;
        const d = own(dir.devices, e.device);
        text = `device ${d ? q(d.name) : e.device} of ${e.user} was revoked: it reads nothing sent from now on`;
        break;
      }
      case "user.clearance": {
        if (!shares(e.user)) return;
        const before = own(dir.users, e.user)?.clearance ?? "?";
        if (before === e.clearance) return;
        text = `${who(e.user)} is now cleared ${e.clearance} (was ${before})`;
        break;
      }
      case "user.role": {
        if (!shares(e.user)) return;
        text = `${who(e.user)} now has the role ${e.role}`;
        break;
      }
      case "user.disable":
        if (!shares(e.user)) return;
        text = `${who(e.user)} was offboarded: the account is disabled and its devices get nothing new`;
        break;
      case "user.enable":
        if (!shares(e.user)) return;
        text = `${who(e.user)}'s account was enabled again`;
        break;
    }
    (s.notices ??= []).push({
      id: `log-${index}`,
      logIndex: index,
      event: e.type,
      user: "user" in e ? e.user : null,
      unit,
      device,
      text,
      time: e.time,
      surfaced: false,
    });
  }

  /** Own-account monitoring: entries about this profile's user become alerts (after the baseline). */
  private apply(s: LogState, e: DirectoryEntry, index: number): void {
    if (!("user" in e) || e.user !== this.profile.handle) return;
    const own = s.own;
    const baseline = own.selfLogIndex === null;
    const alert = (kind: DirectoryAlert["kind"], text: string, device?: string) => {
      if (baseline) return;
      s.alerts.push({
        id: `log-${index}`,
        kind,
        logIndex: index,
        ...(device !== undefined ? { device } : {}),
        text,
        time: e.time,
        acked: false,
        surfaced: false,
      });
    };
    switch (e.type) {
      case "user.add": {
        const before = own.account;
        own.account = { units: [...e.units], clearance: e.clearance, role: e.role };
        if (before)
          alert(
            "user.add",
            `Your account was created again in the directory: role ${e.role}, clearance ${e.clearance}, ` +
              `units ${e.units.join(", ") || "none"} (was role ${before.role}, clearance ${before.clearance})`,
          );
        return;
      }
      case "user.clearance": {
        const before = own.account?.clearance ?? "?";
        if (own.account) own.account.clearance = e.clearance;
        if (before !== e.clearance) alert("user.clearance", `Your clearance changed from ${before} to ${e.clearance}`);
        return;
      }
      case "user.role": {
        const before = own.account?.role ?? "?";
        if (own.account) own.account.role = e.role;
        if (before !== e.role) alert("user.role", `Your role changed from ${before} to ${e.role}`);
        return;
      }
      case "member.add":
      case "member.remove": {
        const add = e.type === "member.add";
        if (own.account)
          own.account.units = add
            ? [...new Set([...own.account.units, e.unit])].sort()
            : own.account.units.filter((u) => u !== e.unit);
        alert(e.type, add ? `You were added to unit ${e.unit}` : `You were removed from unit ${e.unit}`);
        return;
      }
      case "archive.assign":
        alert("archive.assign", `You are now the records archive of unit ${e.unit}`);
        return;
      case "archive.remove":
        alert("archive.remove", `You are no longer the records archive of unit ${e.unit}`);
        return;
      case "user.disable":
        alert("user.disable", "Your account was disabled: this device can no longer log in");
        return;
      case "user.enable":
        alert("user.enable", "Your account was enabled again");
        return;
      case "device.add": {
        let sameKey = false;
        try {
          sameKey = equalBytes(fromBase64(e.key), fromBase64(this.profile.signaturePublicKey));
        } catch {
          /* a malformed key is not ours */
        }
        const self = e.device === this.profile.deviceId && sameKey;
        if (self && own.selfLogIndex === null) own.selfLogIndex = index;
        const expected = baseline || self || s.acked.includes(e.device);
        own.devices[e.device] = {
          id: e.device,
          name: e.name,
          key: e.key,
          logIndex: index,
          time: e.time,
          revokedLogIndex: null,
          self,
          expected,
        };
        if (expected) return;
        if (e.device === this.profile.deviceId)
          alert(
            "device.add",
            `A device with this device's id but another key was added to your account (${e.device})`,
            e.device,
          );
        else
          alert(
            "device.add",
            `New device added to your account: ${e.name} (${e.device}, ${iso(e.time)}). If you did not enrol it, ` +
              "tell your security officer; if you did, dismiss this alert",
            e.device,
          );
        return;
      }
      case "device.revoke": {
        const d = Object.hasOwn(own.devices, e.device) ? own.devices[e.device] : undefined;
        if (d) d.revokedLogIndex = index;
        alert(
          "device.revoke",
          e.device === this.profile.deviceId
            ? "This device was revoked"
            : `Device ${d?.name ?? "?"} (${e.device}) was revoked from your account`,
          e.device,
        );
        return;
      }
    }
  }

  /** Wait until an accepted checkpoint covers entry `index` (the server signs at least once a second). */
  private async cover(index: unknown): Promise<number> {
    if (!isTreeIndex(index)) throw refused("the server gave no valid directory log index");
    await this.refresh();
    const deadline = this.now() + this.maxWaitMs;
    while (!(this.state.checkpoint && this.state.checkpoint.size > index)) {
      if (this.now() >= deadline)
        throw refused(`directory log entry ${index} is in no accepted checkpoint (waited ${this.maxWaitMs} ms)`);
      await this.sleep(this.pollMs);
      await this.refresh(true);
    }
    return index;
  }

  // ------------------------------------------------------------------ the directory, as the log tells it

  private devicesOf(handle: string): string[] {
    const size = this.state.scanned.size;
    if (!this.byUser || this.byUser.size !== size) {
      const map = new Map<string, string[]>();
      for (const [id, d] of Object.entries(this.directory.devices)) {
        const l = map.get(d.user);
        if (l) l.push(id);
        else map.set(d.user, [id]);
      }
      this.byUser = { size, map };
    }
    return this.byUser.map.get(handle) ?? [];
  }

  /** `handle` as the accepted log tells it (devices with their log indices), or null if the log has no such user. */
  logUser(handle: string): ServerUser | null {
    const dir = this.directory;
    const u = own(dir.users, handle);
    if (!u) return null;
    const devices = this.devicesOf(handle)
      .map((id) => [id, own(dir.devices, id)!] as const)
      .sort((a, b) => a[1].addIndex - b[1].addIndex)
      .map(([id, d]) => ({
        id,
        name: d.name,
        signaturePublicKey: d.key,
        createdAt: d.time,
        revokedAt: d.revokeIndex === null ? null : (d.revokeTime ?? d.time),
        logIndex: d.addIndex,
        revokeLogIndex: d.revokeIndex,
      }));
    return {
      handle,
      units: [...u.units],
      clearance: u.clearance,
      role: u.role,
      disabled: u.disabled,
      ...(u.archives && u.archives.length > 0 ? { archives: [...u.archives] } : {}),
      devices,
      logIndex: u.index,
      clearanceLogIndex: u.clearanceIndex,
    };
  }

  /** The members of `unit` the log proves (disabled users excluded), sorted. */
  logUnitMembers(unit: string): string[] {
    return Object.entries(this.directory.users)
      .filter(([, u]) => !u.disabled && u.units.includes(unit))
      .map(([h]) => h)
      .sort();
  }

  /** A unit as the log tells it; null if the log has no such unit. */
  async unit(name: string): Promise<{ name: string; maxLabel: string; share?: string } | null> {
    await this.refresh();
    const u = own(this.directory.units, name);
    return u ? { name, maxLabel: u.maxLabel, ...(u.share !== undefined ? { share: u.share } : {}) } : null;
  }

  /**
   * The user `handle`, from the log. The server's answer is fetched and compared: a disagreement that the next
   * checkpoint explains (a change the server made just now) is waited for; any other is an alert.
   */
  user(handle: string): Promise<ServerUser | null> {
    const hit = this.users.get(handle);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.user;
    const user = this.checkedUser(handle);
    this.users.set(handle, { at: this.now(), user });
    user.catch(() => this.users.delete(handle));
    return user;
  }

  private async serverUser(handle: string): Promise<ServerUser | null> {
    try {
      const u = await this.transport.user(handle);
      if (typeof u !== "object" || u === null || u.handle !== handle || !Array.isArray(u.devices))
        throw refused(`malformed directory answer for ${handle}`);
      return u;
    } catch (e) {
      if (e instanceof ValiseError && e.code === "not_found") return null;
      throw e;
    }
  }

  private async checkedUser(handle: string): Promise<ServerUser | null> {
    await this.refresh();
    let server = await this.serverUser(handle);
    const deadline = this.now() + this.settleMs;
    for (;;) {
      const log = this.logUser(handle);
      const { differences, waitFor } = this.compareUser(handle, server, log);
      if (differences.length === 0) return log;
      const key = `user ${handle}: ${differences.join("; ")}`;
      if (!this.alerted(key)) {
        if (waitFor !== null) {
          // The server names a log entry the accepted checkpoint does not cover yet: wait for it (bounded).
          const covered = await this.cover(waitFor).then(
            () => true,
            () => false,
          );
          if (covered) continue;
        } else if (await this.settle(deadline)) {
          server = await this.serverUser(handle);
          continue;
        }
      }
      this.mismatch(`user ${handle}`, key, differences);
      return log;
    }
  }

  /** Wait (until `deadline`) for a checkpoint larger than the accepted one; true if one came. */
  private async settle(deadline: number): Promise<boolean> {
    const size = this.state.checkpoint?.size ?? 0;
    while (this.now() < deadline) {
      await this.sleep(this.pollMs);
      await this.refresh(true);
      if ((this.state.checkpoint?.size ?? 0) > size) return true;
    }
    return false;
  }

  /** What the server's answer says that the log does not; `waitFor`: the largest log index it names past the checkpoint. */
  private compareUser(
    handle: string,
    server: ServerUser | null,
    log: ServerUser | null,
  ): { differences: string[]; waitFor: number | null } {
    const size = this.state.checkpoint?.size ?? 0;
    let waitFor: number | null = null;
    const later = (i: unknown) => {
      if (isTreeIndex(i) && i >= size) waitFor = Math.max(waitFor ?? -1, i);
    };
    const out: string[] = [];
    if (!server && !log) return { differences: out, waitFor };
    if (!server)
      return { differences: [`the server does not know ${handle}; log entry ${log!.logIndex} adds them`], waitFor };
    const extra = server as ServerUser & Record<string, unknown>;
    for (const k of ["logIndex", "clearanceLogIndex", "roleLogIndex", "stateLogIndex"]) later(extra[k]);
    const memberIdx = extra.memberLogIndices;
    if (typeof memberIdx === "object" && memberIdx !== null) for (const v of Object.values(memberIdx)) later(v);
    if (!log) {
      out.push(`${handle} is in the server's database but not in the directory log`);
      return { differences: out, waitFor };
    }
    if (!Array.isArray(server.units) || !sameList(server.units.map(String), log.units))
      out.push(`units: the server says ${q(server.units)}, the log says ${q(log.units)}`);
    if (server.clearance !== log.clearance)
      out.push(`clearance: the server says ${q(server.clearance)}, the log says ${q(log.clearance)}`);
    if (server.role !== log.role) out.push(`role: the server says ${q(server.role)}, the log says ${q(log.role)}`);
    if (typeof server.disabled === "boolean" && server.disabled !== log.disabled)
      out.push(`the server says the account is ${server.disabled ? "disabled" : "active"}, the log says otherwise`);
    const logDevices = new Map(log.devices.map((d) => [d.id, d]));
    const seen = new Set<string>();
    for (const d of server.devices) {
      const id = typeof d?.id === "string" ? d.id : q(d?.id);
      seen.add(id);
      const ld = logDevices.get(id);
      if (!ld) {
        if (d.revokedAt !== null) continue; // a revoked ghost gets nothing either way
        const pending = isTreeIndex(d.logIndex) && d.logIndex >= size;
        later(d.logIndex);
        out.push(
          pending
            ? `device ${q(id)} is in no witnessed checkpoint yet (the server places it at log entry ${d.logIndex})`
            : `device ${q(id)} is in the server's database but not in the directory log`,
        );
        continue;
      }
      if (d.signaturePublicKey !== ld.signaturePublicKey)
        out.push(`device ${q(id)} has another key on the server than in log entry ${ld.logIndex}`);
      if (d.revokedAt === null && ld.revokedAt !== null)
        out.push(`the server lists device ${q(id)} as active, but log entry ${ld.revokeLogIndex} revoked it`);
      if (d.revokedAt !== null && ld.revokedAt === null) {
        later(d.revokeLogIndex);
        out.push(`the server lists device ${q(id)} as revoked, the log does not`);
      }
    }
    for (const d of log.devices)
      if (!seen.has(d.id) && d.revokedAt === null)
        out.push(`the server omits device ${d.id} (log entry ${d.logIndex})`);
    return { differences: out, waitFor };
  }

  /** The members of `unit` the log proves; the server's list is compared like a user's answer. */
  unitMembers(unit: string): Promise<string[]> {
    const hit = this.members.get(unit);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.members;
    const members = this.checkedMembers(unit);
    this.members.set(unit, { at: this.now(), members });
    members.catch(() => this.members.delete(unit));
    return members;
  }

  private async serverMembers(unit: string): Promise<string[] | null> {
    try {
      const r = await this.transport.unitMembers(unit);
      return Array.isArray(r?.members) ? r.members.map(String) : [];
    } catch (e) {
      if (e instanceof ValiseError && e.code === "not_found") return null;
      throw e;
    }
  }

  private async checkedMembers(unit: string): Promise<string[]> {
    await this.refresh();
    let server = await this.serverMembers(unit);
    const deadline = this.now() + this.settleMs;
    for (;;) {
      const known = !!own(this.directory.units, unit);
      const log = this.logUnitMembers(unit);
      const differences: string[] = [];
      if (server === null) {
        if (known) differences.push(`the server does not know unit ${unit}, the log has it`);
      } else {
        if (!known) differences.push(`unit ${unit} is in the server's database but not in the directory log`);
        for (const h of server)
          if (!log.includes(h)) differences.push(`the server lists ${q(h)} as a member, the log does not`);
        for (const h of log) if (!server.includes(h)) differences.push(`the server omits member ${h}`);
      }
      if (differences.length === 0) return log;
      const key = `unit ${unit}: ${differences.join("; ")}`;
      if (!this.alerted(key) && (await this.settle(deadline))) {
        server = await this.serverMembers(unit);
        continue;
      }
      this.mismatch(`unit ${unit}`, key, differences);
      return log;
    }
  }

  private alerted(key: string): boolean {
    return Object.hasOwn(this.state.mismatches ?? {}, key);
  }

  /** A disagreement the log does not explain: one alert (and one report to the officers) per distinct difference. */
  private mismatch(subject: string, key: string, differences: string[]): void {
    const s = this.state;
    const seen = (s.mismatches ??= {});
    if (Object.hasOwn(seen, key)) return;
    const keys = Object.keys(seen);
    if (keys.length >= MAX_MISMATCHES) delete seen[keys[0]!];
    seen[key] = this.now();
    this.dirty = true;
    s.alerts.push({
      id: `mismatch-${this.now()}-${s.alerts.length}`,
      kind: "directory.mismatch",
      logIndex: -1,
      text:
        `The server's directory disagrees with the witnessed directory log about ${subject}: ` +
        `${differences.join("; ")}. Valise follows the log (nothing is encrypted to what the log does not prove); ` +
        "the security officers are told",
      time: this.now(),
      acked: false,
      surfaced: false,
    });
    try {
      this.onMismatch?.({ subject, differences });
    } catch {
      /* reporting is best effort; the alert stays */
    }
  }

  async verifyDevice(cred: DeviceCredential): Promise<Verdict> {
    try {
      await this.refresh();
      let d = own(this.directory.devices, cred.device);
      if (!d) {
        // Enrolled since the accepted checkpoint? The server says where it is logged; wait for a checkpoint to cover it.
        this.users.delete(cred.user);
        await this.user(cred.user);
        d = own(this.directory.devices, cred.device);
      }
      if (!d) return fail(`device ${cred.device} of ${cred.user} is not in the directory log`);
      if (d.user !== cred.user)
        return fail(`directory log entry ${d.addIndex} adds device ${cred.device} for ${d.user}, not ${cred.user}`);
      let key: Uint8Array;
      try {
        key = fromBase64(d.key);
      } catch {
        return fail(`directory log entry ${d.addIndex} has a malformed key`);
      }
      if (!equalBytes(key, cred.signaturePublicKey))
        return fail(`device ${cred.device} has a different key in the directory log (entry ${d.addIndex})`);
      if (d.revokeIndex !== null)
        return revokedVerdict(`device ${cred.device} was revoked in directory log entry ${d.revokeIndex}`);
      const u = own(this.directory.users, cred.user);
      if (!u) return fail(`user ${cred.user} is not in the directory log`);
      if (u.disabled) return fail(`${cred.user}'s account is disabled in the directory log`);
      return OK;
    } catch (e) {
      return fail(message(e));
    }
  }

  /**
   * Monitoring: accept the latest checkpoint and read every new entry; compare the server's answer about this user
   * with the log (a ghost device or membership in the database alerts its owner). Returns the alerts and notices not
   * handed out before (marking them handed out), or why the checkpoint was refused.
   */
  async monitor(): Promise<{ alerts: DirectoryAlert[]; notices: DirectoryNotice[]; error: string | null }> {
    let error: string | null = null;
    try {
      await this.refresh(true);
      this.users.delete(this.profile.handle);
      await this.user(this.profile.handle);
    } catch (e) {
      error = message(e);
    }
    // Own-account alerts start at this device's own entry; a server that never logs it would silence them (and
    // other devices refuse this one), so its absence after the grace period is itself an alert.
    const s = this.state;
    if (
      error === null &&
      s.own.selfLogIndex === null &&
      s.firstAcceptedAt !== undefined &&
      this.now() - s.firstAcceptedAt > this.selfGraceMs
    )
      error =
        `this device (${this.profile.deviceId}) is not in the witnessed directory log ` +
        `${Math.round((this.now() - s.firstAcceptedAt) / 1000)} s after enrolling: other devices will refuse it and ` +
        "own-account alerts cannot start";
    const alerts = s.alerts.filter((a) => !a.surfaced && !a.acked);
    for (const a of alerts) a.surfaced = true;
    const notices = (s.notices ?? []).filter((n) => !n.surfaced);
    for (const n of notices) n.surfaced = true;
    // Handed-out notices are not kept for ever.
    if ((s.notices?.length ?? 0) > 500) s.notices = s.notices!.filter((n) => !n.surfaced).slice(-500);
    return { alerts, notices, error };
  }

  /** The user dismisses alerts about a device they expected (e.g. their new phone); true if anything matched. */
  ack(device: string): boolean {
    const s = this.state;
    let hit = false;
    for (const a of s.alerts)
      if (a.device === device && !a.acked) {
        a.acked = true;
        hit = true;
      }
    const d = Object.hasOwn(s.own.devices, device) ? s.own.devices[device] : undefined;
    if (d) {
      hit ||= !d.expected;
      d.expected = true;
    } else if (!s.acked.includes(device)) s.acked.push(device);
    return hit;
  }
}

/** Every identifier an entry names must be well-formed: they become keys of the profile's records. */
function checkIdentifiers(e: DirectoryEntry, index: number): void {
  const bad = (what: string, v: unknown) =>
    refused(`directory log entry ${index} names an invalid ${what} ${JSON.stringify(v).slice(0, 80)}`);
  if ("unit" in e && !isUnitName(e.unit)) throw bad("unit", e.unit);
  if ("user" in e && !isUserHandle(e.user)) throw bad("user", e.user);
  if ("device" in e && !isDeviceId(e.device)) throw bad("device", e.device);
  if (e.type === "user.add") for (const u of e.units) if (!isUnitName(u)) throw bad("unit", u);
}

/** Fold one entry into the directory (and the legacy revocation/clearance indices). */
function applyToDirectory(s: LogState, dir: LogDirectory, e: DirectoryEntry, index: number): void {
  const user = "user" in e ? own(dir.users, e.user) : undefined;
  switch (e.type) {
    case "unit.add":
      dir.units[e.unit] = { maxLabel: e.maxLabel, index };
      return;
    case "unit.label": {
      const share = own(dir.units, e.unit)?.share;
      dir.units[e.unit] = { maxLabel: e.maxLabel, index, ...(share !== undefined ? { share } : {}) };
      return;
    }
    case "unit.share": {
      const u = own(dir.units, e.unit);
      if (u) {
        if (e.since === "all") delete u.share;
        else u.share = e.since;
      }
      return;
    }
    case "archive.assign":
      // Only an archivist who is not already a member becomes an archive (the server refuses the others; a log that
      // holds one anyway proves no archive, and the server's rows then disagree with the log: an alert).
      if (user && user.role === "archivist" && !user.disabled && !user.units.includes(e.unit)) {
        user.units = [...user.units, e.unit].sort();
        user.archives = [...(user.archives ?? []), e.unit].sort();
        user.archiveIndex = { ...(user.archiveIndex ?? {}), [e.unit]: index };
      }
      return;
    case "archive.remove":
      if (user && (user.archives ?? []).includes(e.unit)) {
        user.units = user.units.filter((u) => u !== e.unit);
        user.archives = user.archives!.filter((u) => u !== e.unit);
      }
      return;
    case "user.add":
      dir.users[e.user] = {
        units: [...e.units],
        clearance: e.clearance,
        clearanceIndex: index,
        role: e.role,
        disabled: false,
        index,
      };
      s.clearance[e.user] = index;
      return;
    case "user.clearance":
      if (user) {
        user.clearance = e.clearance;
        user.clearanceIndex = index;
      }
      s.clearance[e.user] = index;
      return;
    case "user.role":
      if (user) {
        if (user.role === "archivist" && e.role !== "archivist" && (user.archives ?? []).length > 0) {
          // An archive exists only while its user is an archivist: a role change ends every assignment.
          user.units = user.units.filter((u) => !user.archives!.includes(u));
          delete user.archives;
        }
        user.role = e.role;
      }
      return;
    case "user.disable":
    case "user.enable":
      if (user) user.disabled = e.type === "user.disable";
      return;
    case "member.add":
      if (user && !user.units.includes(e.unit)) user.units = [...user.units, e.unit].sort();
      return;
    case "member.remove":
      if (user) {
        user.units = user.units.filter((u) => u !== e.unit);
        if (user.archives) user.archives = user.archives.filter((u) => u !== e.unit);
      }
      return;
    case "device.add":
      // A device's key never changes: a second entry for the same id does not replace the first.
      if (!own(dir.devices, e.device))
        dir.devices[e.device] = {
          user: e.user,
          name: e.name,
          key: e.key,
          addIndex: index,
          time: e.time,
          revokeIndex: null,
          revokeTime: null,
        };
      return;
    case "device.revoke": {
      const d = own(dir.devices, e.device);
      if (d && d.user === e.user && d.revokeIndex === null) {
        d.revokeIndex = index;
        d.revokeTime = e.time;
      }
      s.revoked[e.device] = index;
      return;
    }
  }
}

/** Whether `note` carries a valid signature by `key` (the pinned log key), whatever else it carries. */
function signedBy(note: string, key: NoteVerifier): boolean {
  const o = openNote(note, [key]);
  return o.ok && o.sigs.some((s) => s.name === key.name && s.keyId === key.keyId);
}

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
 * - A device is accepted only if the server names the log entry of its `device.add` (GET /v1/users/:handle gives
 *   the indices), that entry has exactly this user, device and key, its inclusion proof leads to the accepted
 *   checkpoint's root, and the log has no `device.revoke` for it. A directory answer older than the accepted
 *   checkpoint (a revocation or clearance change missing) is refused.
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
  fromBase64,
  frontierAppend,
  frontierRoot,
  isTreeIndex,
  leafHash,
  OK,
  parseCosignatureVerifierKey,
  parseDirectoryEntry,
  parseNoteVerifierKey,
  toBase64,
  verifyCheckpointQuorum,
  verifyInclusion,
  type CheckpointFreshness,
  type DirectoryEntry,
  type Frontier,
  type NoteVerifier,
  type Verdict,
} from "@valise/core";
import type { DeviceCredential } from "@valise/protocol";
import { requireExtends, type AcceptedCheckpoint } from "./checkpoint-state.js";
import type { ProfileState } from "./profile.js";
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
  return { logKey: o.logKey, witnesses: [...witnesses], quorum: quorum as number };
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
  /** `log-<index>`: one alert per log entry. */
  id: string;
  kind: "device.add" | "device.revoke" | "user.add" | "user.clearance";
  logIndex: number;
  device?: string;
  text: string;
  /** The entry's time (ms since the epoch). */
  time: number;
  acked: boolean;
  /** Already handed to the user by a sync. */
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

const iso = (t: number) => (Number.isFinite(t) ? new Date(t).toISOString() : String(t));

export class TransparencyVerifier implements DirectoryDoor {
  private readonly logVerifier: NoteVerifier;
  private readonly witnessVerifiers: NoteVerifier[];
  private readonly quorum: number;
  private readonly ttlMs: number;
  private readonly pollMs: number;
  private readonly maxWaitMs: number;
  private readonly selfGraceMs: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private checkedAt = -Infinity;
  private refreshing: Promise<void> | null = null;
  private readonly users = new Map<string, { at: number; user: Promise<ServerUser | null> }>();
  /** Entries whose inclusion in an accepted checkpoint is proven (immutable: the log only grows). */
  private readonly proven = new Map<number, Promise<DirectoryEntry>>();

  constructor(
    private readonly transport: HttpTransport,
    private readonly profile: ProfileState,
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
    this.now = opts.now ?? (() => Date.now());
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    profile.log ??= emptyLogState();
  }

  /** The verified log state (in the profile; saved with it). */
  get state(): LogState {
    return (this.profile.log ??= emptyLogState());
  }

  forget(): void {
    this.users.clear();
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
    const q = verifyCheckpointQuorum(note, this.logVerifier, this.witnessVerifiers, this.quorum);
    if (!q.ok) throw refused(`directory log checkpoint refused: ${q.reason}`);
    const cp = q.checkpoint;
    const prev = this.state.checkpoint;
    // Rollback, fork, or a larger tree without a valid consistency proof from the accepted one: refused.
    await requireExtends("directory log", prev, cp, (from, to) => this.transport.logConsistencyProof(from, to));
    const next = structuredClone(this.state);
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
    this.profile.log = next;
    this.checkedAt = this.now();
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

  /** Read entries [scanned, size) from entry bundles into `s`: frontier, revocations, clearances, own account. */
  private async scan(s: LogState, size: number): Promise<void> {
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
        f = frontierAppend(f, leafHash(bytes)).frontier;
        this.apply(s, parsed.entry, index);
      }
    }
    s.scanned = { size: f.size, frontier: f.hashes.map((h) => toBase64(h)) };
  }

  private apply(s: LogState, e: DirectoryEntry, index: number): void {
    if (e.type === "device.revoke") s.revoked[e.device] = index;
    if (e.type === "user.add" || e.type === "user.clearance") s.clearance[e.user] = index;
    if (e.type === "unit.add" || e.type === "unit.label" || e.user !== this.profile.handle) return;
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
        const d = own.devices[e.device];
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

  /** Entry `index`, byte-checked and proven included in the accepted checkpoint (covering it). */
  private entry(index: number): Promise<DirectoryEntry> {
    let p = this.proven.get(index);
    if (!p) {
      p = this.prove(index);
      this.proven.set(index, p);
      p.catch(() => this.proven.delete(index));
    }
    return p;
  }

  private async prove(index: number): Promise<DirectoryEntry> {
    const cp = this.state.checkpoint;
    if (!cp || cp.size <= index) throw refused(`directory log entry ${index} is in no accepted checkpoint`);
    const [bytes, proof] = await Promise.all([
      this.transport.logEntry(index),
      this.transport.logInclusionProof(index, cp.size),
    ]);
    const parsed = parseDirectoryEntry(bytes);
    if (!parsed.ok) throw refused(`directory log entry ${index} is not a canonical entry: ${parsed.reason}`);
    if (!verifyInclusion(leafHash(bytes), index, cp.size, proof, fromBase64(cp.rootHash)))
      throw refused(`directory log entry ${index} is not in the accepted checkpoint (inclusion proof fails)`);
    return parsed.entry;
  }

  user(handle: string): Promise<ServerUser | null> {
    const hit = this.users.get(handle);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.user;
    const user = this.checkedUser(handle);
    this.users.set(handle, { at: this.now(), user });
    user.catch(() => this.users.delete(handle));
    return user;
  }

  /**
   * The server's answer for `handle`, checked against the log: its clearance is the one in the user's latest
   * clearance entry (proven included), and no device it lists as active is revoked in the log. One retry covers a
   * change that landed between the answer and the checkpoint.
   */
  private async checkedUser(handle: string): Promise<ServerUser | null> {
    for (let attempt = 0; ; attempt++) {
      let u: ServerUser;
      try {
        u = await this.transport.user(handle);
      } catch (e) {
        if (e instanceof ValiseError && e.code === "not_found") return null;
        throw e;
      }
      if (typeof u !== "object" || u === null || u.handle !== handle || !Array.isArray(u.devices))
        throw refused(`malformed directory answer for ${handle}`);
      const ci = await this.cover(u.clearanceLogIndex);
      const e = await this.entry(ci);
      if ((e.type !== "user.add" && e.type !== "user.clearance") || e.user !== handle)
        throw refused(`directory log entry ${ci} is not ${handle}'s clearance`);
      if (e.clearance !== u.clearance)
        throw refused(`the server says ${handle} is cleared for ${u.clearance}, the directory log says ${e.clearance}`);
      const stale: string[] = [];
      const latest = this.state.clearance[handle];
      if (latest !== ci) stale.push(`${handle}'s clearance was set again in log entry ${String(latest)}`);
      for (const d of u.devices) {
        const rev = this.state.revoked[d.id];
        if (rev !== undefined && d.revokedAt === null)
          stale.push(`it lists device ${d.id} as active, but log entry ${rev} revoked it`);
      }
      if (stale.length === 0) return u;
      if (attempt >= 1)
        throw refused(
          `directory answer for ${handle} is older than the accepted checkpoint (size ` +
            `${this.state.checkpoint?.size ?? 0}): ${stale.join("; ")}`,
        );
      await this.refresh(true);
    }
  }

  async verifyDevice(cred: DeviceCredential): Promise<Verdict> {
    try {
      let u = await this.user(cred.user);
      if (u && !u.devices.some((x) => x.id === cred.device)) {
        // A device enrolled since the cached answer: ask again before refusing.
        this.users.delete(cred.user);
        u = await this.user(cred.user);
      }
      if (!u) return fail(`user ${cred.user} not in the directory`);
      const d = u.devices.find((x) => x.id === cred.device);
      if (!d) return fail(`device ${cred.device} is not listed for ${cred.user}`);
      if (d.revokedAt !== null) return fail(`device ${cred.device} was revoked`);
      if (d.logIndex === null || d.logIndex === undefined)
        return fail(`device ${cred.device} of ${cred.user} is not in the directory log`);
      const idx = await this.cover(d.logIndex);
      const e = await this.entry(idx);
      if (e.type !== "device.add" || e.user !== cred.user || e.device !== cred.device)
        return fail(`directory log entry ${idx} does not add device ${cred.device} of ${cred.user}`);
      let key: Uint8Array;
      try {
        key = fromBase64(e.key);
      } catch {
        return fail(`directory log entry ${idx} has a malformed key`);
      }
      if (!equalBytes(key, cred.signaturePublicKey))
        return fail(`device ${cred.device} has a different key in the directory log (entry ${idx})`);
      const rev = this.state.revoked[cred.device];
      if (rev !== undefined) return fail(`device ${cred.device} was revoked in directory log entry ${rev}`);
      return OK;
    } catch (e) {
      return fail(message(e));
    }
  }

  /**
   * Own-account monitoring: accept the latest checkpoint and read every new entry; returns the alerts not handed
   * out before (and marks them handed out), or why the checkpoint was refused.
   */
  async monitor(): Promise<{ alerts: DirectoryAlert[]; error: string | null }> {
    let error: string | null = null;
    try {
      await this.refresh(true);
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
    const alerts = this.state.alerts.filter((a) => !a.surfaced && !a.acked);
    for (const a of alerts) a.surfaced = true;
    return { alerts, error };
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
    const d = s.own.devices[device];
    if (d) {
      hit ||= !d.expected;
      d.expected = true;
    } else if (!s.acked.includes(device)) s.acked.push(device);
    return hit;
  }
}

/**
 * The audit log as a security officer reads it (DESIGN.md §3 "Audit log"), shared by the CLI (`valise audit …`) and
 * the web app's officer screen. Browser-safe: no `node:` imports.
 *
 * Nothing the server says is taken as fact until it is proven:
 * - the checkpoint must carry the log key's signature under the audit origin (`…/audit`) and, with the profile's
 *   enrollment trust anchors, cosignatures by the pinned quorum of witnesses (so a rewritten, re-signed log cannot be
 *   shown: the witnesses refuse to cosign a history that does not extend the one they saw);
 * - each event must be a well-formed audit event with a valid RFC 9162 inclusion proof in that checkpoint's tree, and
 *   must match the query it answers (the server filters on its own index columns, which it could lie about).
 * Events that fail are never returned among `events`: they are counted in `unproven`, with the reason, so a screen
 * can say "the server returned N events that are not in the signed log".
 *
 * What inclusion proofs do not show is completeness: a server could leave an event out of a query's answer. `download`
 * (every entry of the checkpointed tree, hashed back into the signed root) is the check for that.
 *
 * Nor does a signature show that the checkpoint is the latest (issue 13): a server could replay an older witnessed
 * checkpoint and hide every event after it. So the last checkpoint accepted is kept in the profile (per log origin,
 * across processes and page loads) and every new one must extend it (checkpoint-state.ts: a smaller size is a
 * rollback, another root at the same size a fork, a larger size needs a consistency proof); and a checkpoint is
 * fresh only while its witness quorum cosigned it within `maxCheckpointAgeMs` (core checkpointFreshness): an older
 * one is reported `stale`, never silently taken as current.
 */
import {
  DEFAULT_MAX_CHECKPOINT_AGE_SECONDS,
  ValiseError,
  auditLogOrigin,
  checkpointFreshness,
  describeStaleness,
  equalBytes,
  leafHash,
  parseAuditEvent,
  parseCosignatureVerifierKey,
  parseNoteVerifierKey,
  EMPTY_FRONTIER,
  frontierAppend,
  frontierRoot,
  rangeNodes,
  type Frontier,
  toBase64,
  verifyCheckpointQuorum,
  freshnessAt,
  verifyInclusion,
  type AuditEvent,
  type Checkpoint,
  type CheckpointFreshness,
  type Cosigner,
  type NoteVerifier,
} from "@valise/core";
import { requireExtends, type AcceptedCheckpoint } from "./checkpoint-state.js";
import type { AuditFilter, HttpTransport } from "./transport.js";
import type { TrustAnchors } from "./transparency.js";

/** Where the log key came from: a caller's explicit key, the profile's enrollment bundle, or the server itself. */
export type AuditKeySource = "flag" | "profile" | "server";

/** Trust anchors given explicitly (e.g. `valise audit --log-key`), instead of the profile's. */
export interface AuditAnchors {
  logKey: string;
  witnesses?: readonly string[];
  quorum?: number;
}

export interface VerifiedAuditCheckpoint {
  /** The audit log's checkpoint: origin `…/audit`, size, root hash, all signed by the log key. */
  checkpoint: Checkpoint;
  /** The signed note as served (checkpoint text, log signature, witness cosignatures), e.g. for an offline export. */
  note: string;
  keySource: AuditKeySource;
  /** Witness cosignatures that verified with pinned keys, the quorum required, how many witnesses are pinned. */
  witnesses: { cosigned: number; quorum: number; pinned: number; names: string[] };
  /** Said loudly when the proof is weaker than it looks (the key came from the server; no witness quorum). */
  warning: string | null;
  /**
   * How fresh the checkpoint is, by its witness quorum's cosignature timestamps: `stale` when older than the bound
   * (the server may be withholding newer events); `proven: false` when no witness quorum is pinned.
   */
  freshness: CheckpointFreshness;
  /** The size this device had accepted before this checkpoint (null: the first one it saw of this log). */
  acceptedSize: number | null;
}

/** What a device keeps of the audit log (in the profile): the last accepted checkpoint per log origin. */
export interface AuditLogState {
  checkpoints: Record<string, AcceptedCheckpoint>;
}

export interface AuditLogOptions {
  /** The device's audit log state (in its profile, created if absent); without it nothing is remembered. */
  state?: () => AuditLogState;
  /** Persist the profile after a new checkpoint is accepted (the web app has no other save point for it). */
  save?: () => Promise<void>;
  /** Freshness bound (default 10 min). */
  maxCheckpointAgeMs?: number;
  now?: () => number;
}

export type { AuditFilter };

/** An event the server returned that is not proven: never shown as fact. */
export interface UnprovenAuditEvent {
  index: number;
  reason: string;
}

export interface AuditQueryResult extends VerifiedAuditCheckpoint {
  /** Proven events, newest first, each included in `checkpoint`'s tree and matching the filter. */
  events: AuditEvent[];
  /** Their log indices, parallel to `events`. */
  indices: number[];
  /** What the server returned that is not proven (tampered, no or a wrong proof, not matching the query). */
  unproven: UnprovenAuditEvent[];
  /** The server returned as many entries as the limit: older matching events may exist (page with `before`). */
  more: boolean;
}

export type AuditDownload =
  | {
      ok: true;
      /** The events from `prunedBefore` on, in log order. */
      events: AuditEvent[];
      /** the raw entries (leaf data) from `prunedBefore` on, in log order */
      entries: Uint8Array[];
      /**
       * Entries below this index were exported and pruned (0: none); `prefix` is their frontier (perfect-subtree
       * roots, largest first), which the remaining entries were hashed onto to reach the signed root.
       */
      prunedBefore: number;
      prefix: Uint8Array[];
    }
  | { ok: false; reason: string; index?: number | undefined };

/** Cable metadata for officers (no subject, no content): what the audit log's cable events name by id. */
export interface AuditCable {
  id: string;
  reference: string;
  originator: string;
  label: string;
  createdAt: number;
}

/** The transport calls this module uses (HttpTransport has them; tests may stand in a fake). */
export type AuditTransport = Pick<
  HttpTransport,
  "auditCheckpoint" | "auditKey" | "auditEvents" | "auditEntries" | "auditCableByReference" | "auditConsistencyProof"
> &
  Partial<Pick<HttpTransport, "auditPruned">>;

const PAGE = 1000;
const DEFAULT_LIMIT = 100;

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Verify an audit checkpoint note with a log key and a witness quorum. Throws ValiseError("bad_encoding") saying
 * what is wrong (the code `valise audit` has always reported for a checkpoint that does not verify).
 */
export function verifyAuditCheckpoint(
  note: string,
  log: NoteVerifier,
  witnesses: readonly NoteVerifier[],
  quorum: number,
): { checkpoint: Checkpoint; cosigners: string[]; cosignatures: Cosigner[] } {
  const r = verifyCheckpointQuorum(note, log, witnesses, quorum, { origin: auditLogOrigin(log.name) });
  if (!r.ok) throw new ValiseError("bad_encoding", `audit checkpoint does not verify: ${r.reason}`);
  return { checkpoint: r.checkpoint, cosigners: r.cosigners.map((c) => c.name), cosignatures: r.cosigners };
}

function matches(ev: AuditEvent, f: AuditFilter): boolean {
  if (f.actor !== undefined && ev.actor !== f.actor) return false;
  if (f.action !== undefined && ev.action !== f.action) return false;
  if (f.object !== undefined && ev.object !== f.object) return false;
  const t = Date.parse(ev.time);
  if (f.since !== undefined && !(t >= Date.parse(f.since))) return false;
  if (f.until !== undefined && !(t < Date.parse(f.until))) return false;
  return true;
}

/**
 * Keep the server's query answers that are proven: a well-formed event, leaf `index` of `cp`'s tree by its inclusion
 * proof, matching the filter, each index once. Never throws; what fails is in `unproven`, in the server's order.
 */
export function proveAuditEvents(
  found: readonly { index: number; entry: Uint8Array; proof: readonly Uint8Array[] }[],
  cp: Checkpoint,
  f: AuditFilter = {},
): { events: AuditEvent[]; indices: number[]; unproven: UnprovenAuditEvent[] } {
  const events: AuditEvent[] = [];
  const indices: number[] = [];
  const unproven: UnprovenAuditEvent[] = [];
  const seen = new Set<number>();
  for (const e of found) {
    const fail = (reason: string) => unproven.push({ index: e.index, reason });
    if (!Number.isSafeInteger(e.index) || e.index < 0 || e.index >= cp.size) {
      fail(`entry ${String(e.index)} is not in the signed audit log of size ${cp.size}`);
      continue;
    }
    const p = parseAuditEvent(e.entry);
    if (!p.ok) {
      fail(`entry ${e.index} is not an audit event: ${p.reason}`);
      continue;
    }
    if (!verifyInclusion(leafHash(e.entry), e.index, cp.size, e.proof, cp.rootHash)) {
      fail(`entry ${e.index} is not in the signed audit log (inclusion proof fails)`);
      continue;
    }
    // The server filtered on its own index columns: check the proven events really match.
    if (!matches(p.event, f) || (f.before !== undefined && e.index >= f.before)) {
      fail(`entry ${e.index} does not match the query`);
      continue;
    }
    if (seen.has(e.index)) {
      fail(`entry ${e.index} was returned twice`);
      continue;
    }
    seen.add(e.index);
    events.push(p.event);
    indices.push(e.index);
  }
  return { events, indices, unproven };
}

/** A sentence for a status line: what the checkpoint proves, e.g. "…at size 1,234, signed by the log key and…". */
export function describeAuditProof(r: AuditQueryResult): string {
  const n = r.events.length;
  const size = r.checkpoint.size.toLocaleString("en-US");
  const w = r.witnesses;
  const key =
    r.keySource === "server"
      ? "signed by the key the server announces (not pinned: trust on first use)"
      : r.keySource === "flag"
        ? "signed by the given log key"
        : "signed by the log key";
  const cosigned =
    w.quorum > 0
      ? ` and cosigned by ${w.cosigned} of ${w.pinned} witnesses${w.quorum < w.pinned ? ` (${w.quorum} required)` : ""}`
      : " (no witnesses pinned)";
  const what =
    n === 0 ? "No matching events" : n === 1 ? "1 event, proven" : `${n.toLocaleString("en-US")} events, each proven`;
  const stale = r.freshness.stale ? `. STALE: ${describeStaleness("audit log", r.freshness)}` : "";
  return `${what} in the audit log at size ${size}, ${key}${cosigned}${stale}`;
}

/**
 * The audit log for a security officer's session. Trust anchors: explicit ones if given, else the profile's
 * enrollment trust (log key, witnesses, quorum), else the key the server announces (`keySource: "server"`, with a
 * warning: the server could rewrite the log and re-sign it).
 */
export class AuditLog {
  constructor(
    private readonly t: AuditTransport,
    private readonly trust: () => TrustAnchors | undefined,
    private readonly authed: <T>(fn: () => Promise<T>) => Promise<T> = (fn) => fn(),
    private readonly opts: AuditLogOptions = {},
  ) {}

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /**
   * Fetch the latest audit checkpoint, verify it, and check it extends the last one this device accepted (then
   * remember it). Throws ValiseError saying what is wrong: `bad_encoding` for a checkpoint that does not verify,
   * `log_not_verified` ("audit log checkpoint refused: rollback — …" or "…: fork — …") for one that does not extend
   * the accepted one. A stale checkpoint is returned with `freshness.stale` set.
   */
  async checkpoint(anchors?: AuditAnchors): Promise<VerifiedAuditCheckpoint> {
    const pinned = this.trust();
    let keySource: AuditKeySource;
    let vkey: string;
    let witnessKeys: readonly string[] = [];
    let quorum = 0;
    if (anchors) {
      keySource = "flag";
      vkey = anchors.logKey;
      witnessKeys = anchors.witnesses ?? [];
      quorum = anchors.quorum ?? 0;
    } else if (pinned) {
      // The witnesses and quorum pinned at enrollment apply to the audit log too (it is witnessed like the directory).
      keySource = "profile";
      vkey = pinned.logKey;
      witnessKeys = pinned.witnesses;
      quorum = pinned.quorum;
    } else {
      keySource = "server";
      vkey = (await this.authed(() => this.t.auditKey())).vkey;
    }
    let log: NoteVerifier;
    let witnesses: NoteVerifier[];
    try {
      log = parseNoteVerifierKey(vkey);
      witnesses = witnessKeys.map((w) => parseCosignatureVerifierKey(w));
    } catch (e) {
      throw new ValiseError("bad_request", `audit log trust anchors: ${errText(e)}`);
    }
    const note = await this.authed(() => this.t.auditCheckpoint());
    const { checkpoint, cosigners, cosignatures } = verifyAuditCheckpoint(note, log, witnesses, quorum);
    const maxAge = (this.opts.maxCheckpointAgeMs ?? DEFAULT_MAX_CHECKPOINT_AGE_SECONDS * 1000) / 1000;
    const served = checkpointFreshness(cosignatures, quorum, this.now(), maxAge);
    const state = this.opts.state?.();
    const prev = state?.checkpoints[checkpoint.origin];
    await requireExtends("audit log", prev, checkpoint, (from, to) =>
      this.authed(() => this.t.auditConsistencyProof(from, to)),
    );
    // The same tree replayed with older cosignatures proves nothing new: the newest proof of it is kept.
    const same = prev !== undefined && prev.size === checkpoint.size;
    const cosignedAt =
      same && (prev.cosignedAt ?? null) !== null && (served.cosignedAt ?? -1) < prev.cosignedAt!
        ? prev.cosignedAt!
        : served.cosignedAt;
    const freshness = quorum > 0 ? freshnessAt(cosignedAt, quorum, this.now(), maxAge) : served;
    if (state && !(same && prev.cosignedAt === cosignedAt)) {
      state.checkpoints[checkpoint.origin] = {
        note,
        size: checkpoint.size,
        rootHash: toBase64(checkpoint.rootHash),
        cosignedAt,
        acceptedAt: this.now(),
      };
      await this.opts.save?.();
    }
    const warning =
      keySource === "server"
        ? "The log key is the one the server announces (trust on first use): this profile pins no key, so a server " +
          "that rewrote its log could re-sign it."
        : keySource === "profile" && pinned?.firstUse
          ? "The log key was pinned on first use at enrollment (from the server's own answer, no bundle): a server " +
            "that was already hostile then could have pinned a key of its own."
          : quorum === 0
            ? "No witness quorum is pinned: the checkpoint is signed by the log key alone."
            : null;
    return {
      checkpoint,
      note,
      keySource,
      witnesses: { cosigned: cosigners.length, quorum, pinned: witnesses.length, names: cosigners },
      warning,
      freshness,
      acceptedSize: prev?.size ?? null,
    };
  }

  /** Events matching all the given fields, newest first, each proven in the verified checkpoint. */
  async query(f: AuditFilter = {}, anchors?: AuditAnchors): Promise<AuditQueryResult> {
    const filter: AuditFilter = {
      ...f,
      since: f.since === undefined ? undefined : isoTime(f.since, "since"),
      until: f.until === undefined ? undefined : isoTime(f.until, "until"),
    };
    const limit = f.limit ?? DEFAULT_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > PAGE)
      throw new ValiseError("bad_request", `limit must be an integer 1-${PAGE}`);
    const verified = await this.checkpoint(anchors);
    const cp = verified.checkpoint;
    const found = await this.authed(() =>
      this.t.auditEvents({
        actor: filter.actor,
        action: filter.action,
        object: filter.object,
        since: filter.since,
        until: filter.until,
        before: filter.before,
        limit,
        size: cp.size,
      }),
    );
    const proven = proveAuditEvents(found, cp, filter);
    return { ...verified, ...proven, more: found.length >= limit };
  }

  /** Every entry of the checkpointed tree, each a well-formed event, hashing to the signed root (or why not). */
  async download(cp: Checkpoint): Promise<AuditDownload> {
    // A log pruned by retention (issue 19) keeps its tree hashes: the pruned prefix is its frontier, and the entries
    // from there on must hash onto it to the signed root. The prune must be recorded in the log itself (an
    // `audit.prune` event ending exactly there), so a server cannot withhold old entries by just claiming a prune.
    const pr = this.t.auditPruned
      ? await this.authed(() => this.t.auditPruned!())
      : { before: 0, frontier: [] as Uint8Array[] };
    if (!Number.isSafeInteger(pr.before) || pr.before < 0 || pr.before > cp.size)
      return { ok: false, reason: `the server claims a prune below ${pr.before}, beyond the checkpoint's ${cp.size}` };
    if (pr.frontier.length !== rangeNodes(0, pr.before).length || pr.frontier.some((h) => h.length !== 32))
      return { ok: false, reason: `the pruned prefix's hashes are malformed` };
    let f: Frontier = pr.before === 0 ? EMPTY_FRONTIER : { size: pr.before, hashes: pr.frontier };
    const events: AuditEvent[] = [];
    const entries: Uint8Array[] = [];
    for (let start = pr.before; start < cp.size; start += PAGE) {
      const count = Math.min(PAGE, cp.size - start);
      const page = await this.authed(() => this.t.auditEntries(start, count));
      for (const [i, data] of page.slice(0, count).entries()) {
        const p = parseAuditEvent(data);
        if (!p.ok)
          return { ok: false, reason: `entry ${start + i} is not an audit event: ${p.reason}`, index: start + i };
        events.push(p.event);
        entries.push(data);
        f = frontierAppend(f, leafHash(data)).frontier;
      }
      if (page.length !== count)
        return {
          ok: false,
          reason: `the server returned ${page.length} of entries ${start}…${start + count - 1}: entries are missing`,
          index: start + Math.min(page.length, count),
        };
    }
    if (!equalBytes(frontierRoot(f), cp.rootHash))
      return { ok: false, reason: "the entries do not hash to the checkpoint's root: the log was altered" };
    if (pr.before > 0 && !events.some((e) => e.action === "audit.prune" && e.object.endsWith(`-${pr.before}`)))
      return {
        ok: false,
        reason: `entries below ${pr.before} are withheld as pruned, but the log records no audit.prune up to there`,
        index: 0,
      };
    return { ok: true, events, entries, prunedBefore: pr.before, prefix: pr.frontier };
  }

  /**
   * A cable's metadata by its reference (`EMB/BEIJING 2026/000123`, or `2026/000123` when only one originator has
   * that number), for officers: the id the audit log's cable events name. Not proven by the log: it only tells which
   * id to query; the events found for that id are proven.
   */
  cableByReference(reference: string): Promise<AuditCable> {
    return this.authed(() => this.t.auditCableByReference(reference));
  }
}

function isoTime(v: string, name: string): string {
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new ValiseError("bad_request", `${name} must be an ISO 8601 time`);
  return new Date(t).toISOString();
}

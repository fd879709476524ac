/**
 * Batched audit appends (DESIGN.md §3 "Audit log"): events recorded while a batch is being written go together into
 * the next one — one transaction, one fsync for many — like the message append batcher. Nothing is sampled or
 * dropped: `record` resolves only once the event is durable in the audit log, and rejects if its batch failed, so
 * the request that caused it fails too (it is not answered as if it had been audited).
 */
import { ValiseError, type AuditAction, type AuditEvent, type AuditOutcome } from "@valise/core";
import { MAX_AUDIT_STRING } from "@valise/core";
import { newAuditId, type AuditLog } from "../storage/audit-log.js";
import { GroupCommit, type Pending } from "../delivery/group-commit.js";

/** Audit events taken from the recorder's queue to be appended in another writer's transaction. */
export type TakenEvents = Pending<AuditEvent, undefined>[];

/** What a caller states about one access; id and time are filled in here. */
export interface AuditRecord {
  actor: string;
  device: string | null;
  source: string;
  client: string | null;
  action: AuditAction;
  object: string;
  targetDevice?: string | null;
  label?: string | null;
  unit?: string | null;
  bytes: number;
  outcome: AuditOutcome;
  /** An access to a canary document (officer-set; only ever visible in the audit log). */
  canary?: boolean;
}

const cut = (s: string) => (s.length > MAX_AUDIT_STRING ? s.slice(0, MAX_AUDIT_STRING) : s);
const cutOrNull = (s: string | null | undefined) => (s === null || s === undefined ? null : cut(s));

/** What a failed audit append rejects with: a ValiseError as is, anything else as store_error (503). */
function appendFailure(e: unknown): ValiseError {
  if (e instanceof ValiseError) return e;
  const why = e instanceof Error ? e.message : typeof e === "string" ? e : "unknown error";
  return new ValiseError("store_error", `audit log append failed: ${why}`);
}

export class AuditRecorder {
  private readonly commits: GroupCommit<AuditEvent, undefined>;
  /** Called after each batch is durable (the online detector's cheap notify; once per batch, not per event). */
  onWritten: (() => void) | undefined;
  /** The write path's health for /readyz: when the last audit batch failed and when one last succeeded (ms). */
  lastFailureAt: number | null = null;
  lastSuccessAt: number | null = null;
  constructor(
    log: AuditLog,
    private readonly now: () => number,
    maxBatch = 2000,
    onBatch?: (size: number) => void,
    /** Each batch's size, transaction time (s) and outcome (metrics). */
    onCommitted?: (size: number, seconds: number, ok: boolean) => void,
  ) {
    this.commits = new GroupCommit(
      async (events) => {
        try {
          await log.appendEvents(events);
          this.lastSuccessAt = Date.now();
        } catch (e) {
          this.lastFailureAt = Date.now();
          throw appendFailure(e);
        }
        this.onWritten?.();
        return events.map(() => undefined);
      },
      maxBatch,
      onBatch,
      onCommitted,
    );
  }

  /** The event as it will be stored. */
  event(r: AuditRecord): AuditEvent {
    return {
      id: newAuditId(),
      time: new Date(this.now()).toISOString(),
      actor: cut(r.actor),
      device: cutOrNull(r.device),
      source: cut(r.source),
      client: cutOrNull(r.client),
      action: r.action,
      object: cut(r.object),
      target_device: cutOrNull(r.targetDevice),
      label: cutOrNull(r.label),
      unit: cutOrNull(r.unit),
      bytes: Math.max(0, Math.floor(r.bytes)),
      canary: r.canary ?? false,
      outcome: r.outcome,
    };
  }

  /** Resolves once the event is durable in the audit log. */
  record(r: AuditRecord): Promise<void> {
    return this.commits.submit(this.event(r));
  }

  /**
   * While `aboutToWrite()` (another writer, the message append batch, will commit soon), the recorder's next write
   * waits once (DEFER_MS, group-commit.ts) so that the events queued now go into that transaction (`takeQueued`)
   * instead of a commit of their own.
   */
  deferTo(aboutToWrite: () => boolean): void {
    this.commits.defer = aboutToWrite;
  }

  /** Queued events for another writer's transaction; it must call `settleTaken` once that transaction ended. */
  takeQueued(): TakenEvents {
    return this.commits.takeQueued();
  }

  /** The taken events are durable (no error) or not (`error`: each record() rejects, as for a failed batch). */
  settleTaken(taken: TakenEvents, error?: unknown): void {
    if (taken.length === 0) return;
    if (error !== undefined) {
      this.lastFailureAt = Date.now();
      const e = appendFailure(error);
      for (const p of taken) p.reject(e);
      return;
    }
    this.lastSuccessAt = Date.now();
    this.onWritten?.();
    for (const p of taken) p.resolve(undefined);
  }
}

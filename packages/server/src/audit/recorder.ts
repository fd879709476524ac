/**
 * Batched audit appends (DESIGN.md §3 "Audit log"): events recorded while a batch is being written go together into
 * the next one — one transaction, one fsync for many — like the message append batcher. Nothing is sampled or
 * dropped: `record` resolves only once the event is durable in the audit log, and rejects if its batch failed, so
 * the request that caused it fails too (it is not answered as if it had been audited).
 */
import { ValiseError, type AuditAction, type AuditEvent, type AuditOutcome } from "@valise/core";
import { MAX_AUDIT_STRING } from "@valise/core";
import { newAuditId, type AuditLog } from "../storage/audit-log.js";

/** What a caller states about one access; id, time and the canary flag are filled in here. */
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
}

interface Pending {
  event: AuditEvent;
  resolve: () => void;
  reject: (e: unknown) => void;
}

const cut = (s: string) => (s.length > MAX_AUDIT_STRING ? s.slice(0, MAX_AUDIT_STRING) : s);
const cutOrNull = (s: string | null | undefined) => (s === null || s === undefined ? null : cut(s));

export class AuditRecorder {
  private queue: Pending[] = [];
  private running = false;
  constructor(
    private readonly log: AuditLog,
    private readonly now: () => number,
    private readonly maxBatch = 2000,
    private readonly onBatch?: (size: number) => void,
  ) {}

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
      // Canary documents come with the documents issue; until then nothing is a canary.
      canary: false,
      outcome: r.outcome,
    };
  }

  /** Resolves once the event is durable in the audit log. */
  record(r: AuditRecord): Promise<void> {
    const event = this.event(r);
    return new Promise((resolve, reject) => {
      this.queue.push({ event, resolve, reject });
      if (!this.running) {
        this.running = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.onBatch?.(batch.length);
      try {
        await this.log.appendEvents(batch.map((p) => p.event));
        for (const p of batch) p.resolve();
      } catch (e) {
        const err =
          e instanceof ValiseError
            ? e
            : new ValiseError("store_error", `audit log append failed: ${e instanceof Error ? e.message : String(e)}`);
        for (const p of batch) p.reject(err);
      }
    }
    this.running = false;
  }
}

/**
 * Group commit: items submitted while a write is in flight are written together in the next one (one transaction,
 * one fsync for many). `submit` resolves only after the item's batch was written, with that item's result; if the
 * batch fails, every item in it is rejected (nothing in it was acknowledged).
 *
 * Another writer may take queued items into its own transaction (`takeQueued`, then `settle` once that transaction
 * committed or failed): the audit events of a moment ride in the message batch's transaction instead of needing a
 * commit of their own. `defer` (optional) says that such a writer is about to run: the drain then waits once (DEFER_MS)
 * so that the writer takes the queue, and writes itself only what is left.
 */
/** How long a deferred write waits (ms) for the other writer to take its queue. */
export const DEFER_MS = 1;

export interface Pending<I, R> {
  item: I;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

export class GroupCommit<I, R> {
  private queue: Pending<I, R>[] = [];
  private running = false;
  private deferred = false;
  /** When true, the next write waits DEFER_MS once (another writer will probably take the queued items). */
  defer: (() => boolean) | undefined;
  constructor(
    /** Writes one batch durably and returns one result per item, in order. */
    private readonly write: (items: I[]) => Promise<R[]>,
    private readonly maxBatch: number,
    private readonly onBatch?: (size: number) => void,
    /** After each write: the batch size, how long the write (its transaction) took in seconds, and whether it committed. */
    private readonly onWritten?: (size: number, seconds: number, ok: boolean) => void,
  ) {}

  submit(item: I): Promise<R> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.running) {
        this.running = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  /** Items submitted and not yet being written. */
  get queued(): number {
    return this.queue.length;
  }

  /**
   * Takes up to `max` queued items (none of them being written) for another writer's transaction. The caller must
   * `settle` every one of them: resolved once that transaction committed, rejected if it failed.
   */
  takeQueued(max = this.maxBatch): Pending<I, R>[] {
    const taken = this.queue.splice(0, max);
    if (taken.length > 0) this.onBatch?.(taken.length);
    return taken;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      // Once at most (never a wait without end while the other writer is busy): still `running`, so nothing else
      // schedules a drain meanwhile; whatever the other writer leaves is written after the wait.
      if (!this.deferred && this.defer?.()) {
        this.deferred = true;
        // A timer, not setImmediate: the event loop may wait for I/O meanwhile (the sends that make that batch).
        setTimeout(() => void this.drain(), DEFER_MS);
        return;
      }
      this.deferred = false;
      const batch = this.queue.splice(0, this.maxBatch);
      this.onBatch?.(batch.length);
      const t0 = performance.now();
      try {
        const results = await this.write(batch.map((p) => p.item));
        this.onWritten?.(batch.length, (performance.now() - t0) / 1000, true);
        batch.forEach((p, i) => p.resolve(results[i]!));
      } catch (e) {
        this.onWritten?.(batch.length, (performance.now() - t0) / 1000, false);
        for (const p of batch) p.reject(e);
      }
    }
    this.running = false;
  }
}

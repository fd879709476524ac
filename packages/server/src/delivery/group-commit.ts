/**
 * Group commit: items submitted while a write is in flight are written together in the next one (one transaction,
 * one fsync for many). `submit` resolves only after the item's batch was written, with that item's result; if the
 * batch fails, every item in it is rejected (nothing in it was acknowledged).
 */
interface Pending<I, R> {
  item: I;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

export class GroupCommit<I, R> {
  private queue: Pending<I, R>[] = [];
  private running = false;
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

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
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

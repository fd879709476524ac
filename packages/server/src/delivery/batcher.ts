/**
 * Group commit for appends: requests that arrive while a transaction is in flight are written together in the next
 * one, so one fsync acknowledges many messages. Nothing is acknowledged before its transaction committed.
 */
import type { AppendRequest, AppendResult, ConversationStore } from "../storage/conversation-store.js";

interface Pending {
  req: AppendRequest;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

export class AppendBatcher {
  private queue: Pending[] = [];
  private running = false;
  constructor(
    private readonly store: ConversationStore,
    private readonly onCommitted: (reqs: AppendRequest[], results: AppendResult[]) => void,
    private readonly maxBatch = 512,
    private readonly onBatch?: (size: number) => void,
  ) {}

  append(req: AppendRequest): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
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
        const results = await this.store.appendBatch(batch.map((p) => p.req));
        this.onCommitted(
          batch.map((p) => p.req),
          results,
        );
        batch.forEach((p, i) => p.resolve(results[i]!));
      } catch (e) {
        // The whole transaction rolled back: nothing in it was acknowledged; every sender gets the error and retries
        // with its idempotency key.
        for (const p of batch) p.reject(e);
      }
    }
    this.running = false;
  }
}

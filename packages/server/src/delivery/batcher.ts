/**
 * Group commit for message appends: one transaction, one fsync acknowledges many messages. Nothing is acknowledged
 * before its transaction committed; if it rolls back, every sender gets the error and retries with its idempotency
 * key.
 */
import type { AppendRequest, AppendResult, ConversationStore } from "../storage/conversation-store.js";
import { GroupCommit } from "./group-commit.js";

export class AppendBatcher {
  private readonly commits: GroupCommit<AppendRequest, AppendResult>;
  constructor(
    store: ConversationStore,
    onCommitted: (reqs: AppendRequest[], results: AppendResult[]) => void,
    maxBatch = 512,
    onBatch?: (size: number) => void,
    onWritten?: (size: number, seconds: number, ok: boolean) => void,
  ) {
    this.commits = new GroupCommit(
      async (reqs) => {
        const results = await store.appendBatch(reqs);
        onCommitted(reqs, results);
        return results;
      },
      maxBatch,
      onBatch,
      onWritten,
    );
  }

  append(req: AppendRequest): Promise<AppendResult> {
    return this.commits.submit(req);
  }
}

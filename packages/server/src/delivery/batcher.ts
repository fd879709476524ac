/**
 * Group commit for message appends: one transaction, one fsync acknowledges many messages. Nothing is acknowledged
 * before its transaction committed; if it rolls back, every sender gets the error and retries with its idempotency
 * key.
 *
 * With an audit recorder, the audit events queued when a batch is written (pushed messages' reads, other requests'
 * events) are appended in the same transaction and resolved when it commits: one commit instead of two, and the
 * recorder waits a turn for a batch that is about to be written (AuditRecorder.deferTo).
 */
import type { AppendRequest, AppendResult, ConversationStore } from "../storage/conversation-store.js";
import type { AuditRecorder } from "../audit/recorder.js";
import { GroupCommit } from "./group-commit.js";

/** A batch written this recently (ms) means more are coming: audit events wait for the next one (DEFER_MS). */
const ACTIVE_MS = 5;

export class AppendBatcher {
  private readonly commits: GroupCommit<AppendRequest, AppendResult>;
  private lastWritten = -Infinity;
  constructor(
    store: ConversationStore,
    onCommitted: (reqs: AppendRequest[], results: AppendResult[]) => void,
    maxBatch = 512,
    onBatch?: (size: number) => void,
    onWritten?: (size: number, seconds: number, ok: boolean) => void,
    audit?: AuditRecorder,
  ) {
    this.commits = new GroupCommit(
      async (reqs) => {
        const riders = audit?.takeQueued() ?? [];
        let results: AppendResult[];
        try {
          results = await store.appendBatch(
            reqs,
            riders.map((p) => p.item),
          );
        } catch (e) {
          audit?.settleTaken(riders, e);
          throw e;
        }
        audit?.settleTaken(riders);
        this.lastWritten = performance.now();
        onCommitted(reqs, results);
        return results;
      },
      maxBatch,
      onBatch,
      onWritten,
    );
    // Messages are queued, or a batch was just written (its pushes' reads are what the recorder holds, and the sends
    // its acks release are about to arrive): the recorder waits for the next batch rather than committing alone.
    audit?.deferTo(() => this.commits.queued > 0 || performance.now() - this.lastWritten < ACTIVE_MS);
  }

  append(req: AppendRequest): Promise<AppendResult> {
    return this.commits.submit(req);
  }
}

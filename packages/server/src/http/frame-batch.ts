/**
 * WebSocket frames written in one pass of the event loop leave together: the first frame for a connection corks its
 * TCP socket, and the socket is uncorked once the work queued now is done (process.nextTick runs after the promise
 * continuations already queued, such as the acks of one committed batch or the pushes it releases). One write system
 * call for many frames instead of one each; frames keep their order and nothing waits for a timer.
 */

/** What is needed of a net.Socket. */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

export class FrameBatch {
  private readonly corked = new Set<Corkable>();

  /** Call before writing a frame to `socket` (its frames of this pass are then flushed together). */
  hold(socket: Corkable | undefined): void {
    if (!socket || this.corked.has(socket)) return;
    socket.cork();
    this.corked.add(socket);
    if (this.corked.size === 1) process.nextTick(() => this.flush());
  }

  /** Writes out everything held (also called by the scheduled tick). */
  flush(): void {
    const all = [...this.corked];
    this.corked.clear();
    for (const s of all) s.uncork();
  }
}

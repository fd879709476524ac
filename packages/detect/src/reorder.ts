/**
 * Streaming replay of files that are only roughly in time order (several server processes appending, clock skew):
 * a bounded min-heap holds events until the newest time seen is `toleranceMs` past them, then releases them in time
 * order (ties keep input order). An event older than one already released cannot be placed: `push` reports it, so
 * the caller can say "sort the file first" with the line number instead of silently misordering.
 */
import type { DetectEvent } from "./event.js";

interface Item {
  e: DetectEvent;
  seq: number;
}

export type ReorderResult = { ok: true; ready: DetectEvent[] } | { ok: false; reason: string };

export class ReorderBuffer {
  private heap: Item[] = [];
  private seq = 0;
  private maxSeen = -Infinity;
  private released = -Infinity;

  constructor(
    readonly toleranceMs = 5 * 60_000,
    readonly maxBuffered = 1_000_000,
  ) {}

  push(e: DetectEvent): ReorderResult {
    if (e.time < this.released)
      return {
        ok: false,
        reason:
          `event ${e.id} at ${e.timeText} is earlier than events already processed by more than the reorder ` +
          `tolerance (${this.toleranceMs / 1000} s); sort the input by time first`,
      };
    this.insert({ e, seq: this.seq++ });
    if (e.time > this.maxSeen) this.maxSeen = e.time;
    const ready: DetectEvent[] = [];
    while (this.heap.length > 0) {
      const top = this.heap[0]!;
      if (top.e.time > this.maxSeen - this.toleranceMs && this.heap.length <= this.maxBuffered) break;
      ready.push(this.pop().e);
      this.released = top.e.time;
    }
    return { ok: true, ready };
  }

  /** Everything still buffered, in time order. */
  drain(): DetectEvent[] {
    const out: DetectEvent[] = [];
    while (this.heap.length > 0) out.push(this.pop().e);
    if (out.length > 0) this.released = out[out.length - 1]!.time;
    return out;
  }

  get size(): number {
    return this.heap.length;
  }

  private less(a: Item, b: Item): boolean {
    return a.e.time < b.e.time || (a.e.time === b.e.time && a.seq < b.seq);
  }

  private insert(x: Item): void {
    const h = this.heap;
    h.push(x);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): Item {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

/**
 * Key-transparency push (issue 18): when the directory log's served checkpoint grows (a user, device, unit or
 * membership change — made through any node or by `valise admin` in another process — has been signed, and with
 * witnesses cosigned), one `{"type":"directory","size":N}` event goes through the fan-out to every socket on every
 * node, so clients read the log at once (the web app's directory notices and new-device alerts) instead of on their
 * next timer. Runs where the checkpoint signer runs (the leader in a cluster). The frame is only a hint: the signed
 * log is what clients verify, and their timer still reads it if a frame is lost.
 */
import type { Fanout } from "./fanout.js";

export function watchDirectoryCheckpoints(o: {
  /** The size of the checkpoint clients are served now (cosigned with witnesses), or null before the first. */
  servedSize: () => Promise<number | null>;
  fanout: Pick<Fanout, "publish">;
  intervalMs?: number;
  warn: (msg: string, data: Record<string, unknown>) => void;
}): { stop(): Promise<void> } {
  let last: number | null | undefined; // undefined until the first read (the baseline: nothing published)
  let busy: Promise<void> | null = null;
  let failing = false;
  const tick = () => {
    if (busy) return;
    busy = o
      .servedSize()
      .then((size) => {
        failing = false;
        const first = last === undefined;
        const grown = size !== null && (last == null || size > last);
        if (grown && !first) o.fanout.publish([{ type: "directory", size }]);
        if (grown || first) last = size;
      })
      .catch((e: unknown) => {
        // The database is down or busy: the next tick tries again (one warning per outage).
        if (!failing) o.warn("directory checkpoint watch failed", { err: e instanceof Error ? e.message : String(e) });
        failing = true;
      })
      .finally(() => (busy = null));
  };
  const timer = setInterval(tick, o.intervalMs ?? 250);
  timer.unref();
  tick();
  return {
    async stop() {
      clearInterval(timer);
      await busy;
    },
  };
}

/**
 * Witnessed publication (DESIGN.md §3 "Key transparency"): each new signed checkpoint of a log is submitted to every
 * configured witness with a consistency proof from the size that witness last cosigned (learned from its 409 answer
 * when unknown or stale), the cosignatures are collected, and the checkpoint is published — stored with the
 * cosignature lines appended — only once it carries at least `quorum` of them. Until then the previous published
 * checkpoint stays the one served.
 *
 * Runs on its own timer, apart from appends and from checkpoint signing: a slow or dead witness delays only
 * publication. Every witness call has a timeout; a checkpoint short of quorum is retried every `retryMs`.
 *
 * Freshness (issue 13): clients call a checkpoint stale once its witness quorum's newest cosignature timestamps are
 * older than their bound (default 10 min). So even when the log has not grown, the published checkpoint is submitted
 * again every `refreshMs` (default 60 s; tlog-witness: same size, same root, empty proof) and republished with the
 * fresh cosignatures in place of the old ones. A witness that is down only lets the checkpoint age; it is never
 * replaced by anything the witnesses did not cosign.
 */
import type { Kysely } from "kysely";
import { verifyCheckpointQuorum, type NoteVerifier } from "@valise/core";
import type { Database } from "../storage/schema.js";
import { submitToWitness, type WitnessEndpoint } from "./submit.js";

export interface PublishedCheckpoint {
  size: number;
  /** The log-signed checkpoint with the witnesses' cosignature lines appended. */
  note: string;
  cosignatures: number;
  createdAt: number;
}

/** The published (quorum-cosigned) checkpoints of a log, in `log_cosigned_checkpoints`. */
export class CosignedCheckpoints {
  constructor(
    private readonly db: Kysely<Database>,
    readonly log: string,
  ) {}

  async latest(): Promise<PublishedCheckpoint | null> {
    const r = await this.db
      .selectFrom("log_cosigned_checkpoints")
      .select(["size", "note", "cosignatures", "created_at"])
      .where("log", "=", this.log)
      .orderBy("size", "desc")
      .limit(1)
      .executeTakeFirst();
    return r
      ? { size: Number(r.size), note: r.note, cosignatures: Number(r.cosignatures), createdAt: Number(r.created_at) }
      : null;
  }

  /** Store a published checkpoint; at a size already stored (a re-cosigned one), its newer cosignatures replace the old. */
  async put(p: PublishedCheckpoint): Promise<void> {
    await this.db
      .insertInto("log_cosigned_checkpoints")
      .values({ log: this.log, size: p.size, note: p.note, cosignatures: p.cosignatures, created_at: p.createdAt })
      .onConflict((oc) =>
        oc
          .columns(["log", "size"])
          .doUpdateSet({ note: p.note, cosignatures: p.cosignatures, created_at: p.createdAt }),
      )
      .execute();
  }
}

export interface WitnessPublisherOptions {
  store: CosignedCheckpoints;
  /** The log's latest signed checkpoint. */
  latest: () => Promise<{ size: number; note: string } | null>;
  /** RFC 9162 consistency proof between two sizes of the log (0 < from ≤ to). */
  consistencyProof: (from: number, to: number) => Promise<Uint8Array[]>;
  logVerifier: NoteVerifier;
  /** The checkpoints' origin line if not the log key's name (the audit log is signed by the directory key). */
  origin?: string;
  witnesses: readonly WitnessEndpoint[];
  quorum: number;
  now: () => number;
  timeoutMs?: number;
  intervalMs?: number;
  retryMs?: number;
  /** Ask the witnesses to cosign the published checkpoint again after this long without growth (default 60 s). */
  refreshMs?: number;
  fetch?: typeof fetch;
  /** Log-key hand-overs (issue 19), oldest first: given to each witness before its first submission. */
  handovers?: () => Promise<string[]>;
  warn: (msg: string, data: Record<string, unknown>) => void;
  info?: (msg: string, data: Record<string, unknown>) => void;
}

export interface WitnessPublisher {
  /** Try to publish the latest checkpoint now (what the timer does); resolves with the published size, if any. */
  publishLatest(): Promise<number | undefined>;
  /** Have the witnesses cosign the published checkpoint again (what the timer does every `refreshMs`). */
  recosign(): Promise<number | undefined>;
  stop(): Promise<void>;
}

export async function startWitnessPublisher(o: WitnessPublisherOptions): Promise<WitnessPublisher> {
  const timeoutMs = o.timeoutMs ?? 5000;
  const retryMs = o.retryMs ?? 2000;
  const refreshMs = o.refreshMs ?? 60_000;
  const verifiers = o.witnesses.map((w) => w.verifier);
  const origin = { origin: o.origin ?? o.logVerifier.name };
  const aborter = new AbortController();
  // The size each witness last cosigned, as far as we know (a 409 corrects it).
  const cosignedSize = new Map<WitnessEndpoint, number>();
  let publishedSize = -1;
  /** When the published checkpoint was last cosigned (published or re-cosigned), by the server's clock. */
  let publishedAt = 0;
  let tried = { size: -1, at: 0 };

  const published = await o.store.latest();
  if (published) {
    publishedSize = published.size;
    publishedAt = published.createdAt;
    const q = verifyCheckpointQuorum(published.note, o.logVerifier, verifiers, 0, origin);
    if (q.ok)
      for (const c of q.cosigners) {
        const w = o.witnesses.find((x) => x.verifier.name === c.name && x.verifier.keyId === c.keyId);
        if (w) cosignedSize.set(w, published.size);
      }
  }

  /** Witnesses that have the hand-overs (POST /key-handover answered 200 for each). */
  const handedOver = new Set<WitnessEndpoint>();
  async function giveHandovers(w: WitnessEndpoint): Promise<void> {
    if (handedOver.has(w) || !o.handovers) return;
    const notes = await o.handovers();
    for (const note of notes) {
      try {
        const res = await (o.fetch ?? fetch)(`${w.url}/key-handover`, {
          method: "POST",
          headers: { "content-type": "text/plain; charset=utf-8" },
          body: note,
          signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), aborter.signal]),
          redirect: "error",
        });
        const text = (await res.text()).slice(0, 300).trim();
        if (!res.ok) {
          o.warn("witness refused a log-key hand-over", { witness: w.url, status: res.status, reason: text });
          return;
        }
      } catch (e) {
        o.warn("witness did not take a log-key hand-over", {
          witness: w.url,
          err: e instanceof Error ? e.message : String(e),
        });
        return;
      }
    }
    handedOver.add(w);
  }

  async function cosignWith(w: WitnessEndpoint, size: number, note: string): Promise<string[]> {
    await giveHandovers(w);
    let old = cosignedSize.get(w) ?? 0;
    for (let attempt = 0; attempt < 3 && !aborter.signal.aborted; attempt++) {
      if (old > size) {
        o.warn("witness has cosigned a larger tree than this checkpoint", { witness: w.url, witnessSize: old, size });
        return [];
      }
      const proof = old === 0 || old === size ? [] : await o.consistencyProof(old, size);
      const r = await submitToWitness(w, old, proof, note, {
        timeoutMs,
        signal: aborter.signal,
        ...(o.fetch ? { fetch: o.fetch } : {}),
      });
      if (r.kind === "cosigned") {
        cosignedSize.set(w, size);
        return r.lines;
      }
      if (r.kind === "failed") {
        o.warn("witness refused or failed", { witness: w.url, size, old, reason: r.reason });
        return [];
      }
      // 409: the witness's cosigned size differs from what we sent; retry from it.
      cosignedSize.set(w, r.size);
      old = r.size;
    }
    return [];
  }

  async function publishLatest(again = false): Promise<number | undefined> {
    const cp = await o.latest();
    if (!cp || (again ? cp.size !== publishedSize : cp.size <= publishedSize)) return undefined;
    tried = { size: cp.size, at: o.now() };
    const lines = (await Promise.all(o.witnesses.map((w) => cosignWith(w, cp.size, cp.note)))).flat();
    const note = cp.note + lines.join("");
    const q = verifyCheckpointQuorum(note, o.logVerifier, verifiers, o.quorum, origin);
    if (!q.ok) {
      o.warn("checkpoint short of witness quorum; not published", { size: cp.size, reason: q.reason });
      return undefined;
    }
    // A slower request may finish after a newer checkpoint was published: never store over a larger one.
    if (cp.size < publishedSize) return undefined;
    await o.store.put({ size: cp.size, note, cosignatures: q.cosigners.length, createdAt: o.now() });
    publishedSize = Math.max(publishedSize, cp.size);
    publishedAt = o.now();
    o.info?.(again ? "re-cosigned witnessed checkpoint" : "published witnessed checkpoint", {
      size: cp.size,
      cosignatures: q.cosigners.length,
    });
    return cp.size;
  }

  let running: Promise<unknown> = Promise.resolve();
  let busy = false;
  const tick = () => {
    if (busy || aborter.signal.aborted) return;
    busy = true;
    running = (async () => {
      const cp = await o.latest();
      if (!cp) return;
      if (cp.size === publishedSize) {
        // Not grown: only keep the published checkpoint's cosignatures fresh.
        // A failed attempt (a witness down) is retried after `refreshMs` too, not every `retryMs`: the published
        // checkpoint only ages meanwhile, and an idle log does not fill the server's log with warnings.
        if (o.now() - publishedAt < refreshMs) return;
        if (cp.size === tried.size && o.now() - tried.at < refreshMs) return;
        await publishLatest(true);
        return;
      }
      if (cp.size < publishedSize) return;
      if (cp.size === tried.size && o.now() - tried.at < retryMs) return;
      await publishLatest();
    })()
      .catch((e: unknown) => o.warn("witness publication failed", { err: e instanceof Error ? e.message : String(e) }))
      .finally(() => {
        busy = false;
      });
  };
  const timer = setInterval(tick, o.intervalMs ?? 250);
  timer.unref();
  tick();
  return {
    publishLatest: () => publishLatest(),
    recosign: () => publishLatest(true),
    async stop() {
      clearInterval(timer);
      aborter.abort();
      await running;
    },
  };
}

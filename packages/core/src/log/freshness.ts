/**
 * How fresh a witnessed checkpoint is, from its cosignature timestamps (c2sp.org/tlog-cosignature: a v1 cosignature
 * states that "as of the specified time" the checkpoint is the largest consistent tree the witness has observed).
 *
 * The log itself signs no time, so a checkpoint's age is proved only by witnesses. The time a checkpoint is proved
 * current at is the latest moment a whole quorum vouched for it: the `quorum`-th newest cosignature timestamp among
 * the pinned witnesses' (not the newest one alone, so fewer than `quorum` colluding witnesses cannot make an old
 * checkpoint look fresh). A timestamp more than `maxSkewSeconds` in the future proves nothing and is left out
 * (tlog-cosignature: verifiers MAY reject future timestamps). With no quorum pinned nothing proves freshness:
 * `proven` is false and the checkpoint is not called stale (there is no witness clock to call it so).
 */

/** Default bound on a checkpoint's age: witnesses must have cosigned it within the last 10 minutes. */
export const DEFAULT_MAX_CHECKPOINT_AGE_SECONDS = 600;
/** Cosignature timestamps up to this far ahead of the local clock still count (clock skew). */
export const DEFAULT_MAX_COSIGNATURE_SKEW_SECONDS = 60;

export interface CheckpointFreshness {
  /** A pinned witness quorum vouched for the time below (false: quorum 0, nothing to prove freshness with). */
  proven: boolean;
  /** POSIX seconds: the latest time at which `quorum` witnesses had all cosigned this checkpoint; null if none. */
  cosignedAt: number | null;
  /** Seconds from `cosignedAt` to now (≥ 0), null if there is no `cosignedAt`. */
  age: number | null;
  /** The bound, in seconds. */
  maxAge: number;
  /** Older than the bound (or no quorum of usable timestamps although a quorum is pinned). */
  stale: boolean;
}

/**
 * The freshness of a checkpoint whose cosigners (verified, one per pinned witness, as `verifyCheckpointQuorum`
 * returns them) carry `timestamp` in POSIX seconds. `nowMs` is the local clock in milliseconds.
 */
export function checkpointFreshness(
  cosigners: readonly { readonly timestamp: number }[],
  quorum: number,
  nowMs: number,
  maxAgeSeconds: number = DEFAULT_MAX_CHECKPOINT_AGE_SECONDS,
  maxSkewSeconds: number = DEFAULT_MAX_COSIGNATURE_SKEW_SECONDS,
): CheckpointFreshness {
  const now = Math.floor(nowMs / 1000);
  if (!Number.isSafeInteger(quorum) || quorum <= 0)
    return { proven: false, cosignedAt: null, age: null, maxAge: maxAgeSeconds, stale: false };
  const times = cosigners
    .map((c) => c.timestamp)
    .filter((t) => Number.isSafeInteger(t) && t >= 0 && t <= now + maxSkewSeconds)
    .sort((a, b) => b - a);
  return freshnessAt(times[quorum - 1] ?? null, quorum, nowMs, maxAgeSeconds);
}

/**
 * The freshness of a checkpoint known to have been vouched for by a quorum at `cosignedAt` (POSIX seconds; null:
 * never), e.g. one accepted earlier, as time passes.
 */
export function freshnessAt(
  cosignedAt: number | null,
  quorum: number,
  nowMs: number,
  maxAgeSeconds: number = DEFAULT_MAX_CHECKPOINT_AGE_SECONDS,
): CheckpointFreshness {
  if (!Number.isSafeInteger(quorum) || quorum <= 0)
    return { proven: false, cosignedAt: null, age: null, maxAge: maxAgeSeconds, stale: false };
  if (cosignedAt === null) return { proven: true, cosignedAt: null, age: null, maxAge: maxAgeSeconds, stale: true };
  const age = Math.max(0, Math.floor(nowMs / 1000) - cosignedAt);
  return { proven: true, cosignedAt, age, maxAge: maxAgeSeconds, stale: age > maxAgeSeconds };
}

/** A sentence for a stale checkpoint, e.g. "…last cosigned by a witness quorum 42 min ago (bound 10 min)…". */
export function describeStaleness(what: string, f: CheckpointFreshness): string {
  const span = (s: number) =>
    s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
  const when =
    f.age === null
      ? "carries no usable witness cosignature timestamps"
      : `was last cosigned by a witness quorum ${span(f.age)} ago (${new Date(f.cosignedAt! * 1000).toISOString()})`;
  return (
    `the ${what} checkpoint the server shows is stale: it ${when}, beyond the ${span(f.maxAge)} bound. The server ` +
    "may be withholding newer entries, or the witnesses cannot reach it"
  );
}

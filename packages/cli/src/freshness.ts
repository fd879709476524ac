/**
 * The freshness bound the CLI gives the SDK (issue 13): a log checkpoint is stale once its witness quorum's newest
 * cosignatures are older than this. `--max-age SECONDS` where a command has it, else VALISE_CHECKPOINT_MAX_AGE, else
 * the SDK default (600 s).
 */
import { DEFAULT_MAX_CHECKPOINT_AGE_SECONDS, type CheckpointFreshness } from "@valise/core";
import { UsageError } from "./args.js";

export const MAX_AGE_ENV = "VALISE_CHECKPOINT_MAX_AGE";

/** The bound in milliseconds, or undefined for the SDK default. Throws UsageError on a malformed value. */
export function maxCheckpointAgeMs(flag?: string): number | undefined {
  const v = flag ?? process.env[MAX_AGE_ENV];
  if (v === undefined || v === "") return undefined;
  if (!/^[0-9]{1,9}$/.test(v) || Number(v) < 1)
    throw new UsageError(
      `${flag !== undefined ? "--max-age" : MAX_AGE_ENV} must be a positive number of seconds ` +
        `(default ${DEFAULT_MAX_CHECKPOINT_AGE_SECONDS})`,
    );
  return Number(v) * 1000;
}

/** The JSON fields that report freshness (kept beside a command's existing fields). */
export function freshnessJson(f: CheckpointFreshness): {
  stale: boolean;
  age: number | null;
  maxAge: number;
  cosignedAt: string | null;
  freshness: "fresh" | "stale" | "unproven";
} {
  return {
    stale: f.stale,
    age: f.age,
    maxAge: f.maxAge,
    cosignedAt: f.cosignedAt === null ? null : new Date(f.cosignedAt * 1000).toISOString(),
    freshness: !f.proven ? "unproven" : f.stale ? "stale" : "fresh",
  };
}

/**
 * A client's memory of a log: the last checkpoint it accepted, kept in the profile (so it survives the process, as
 * Go's checksum-database client keeps `<db>/latest`), and the rule every newly served checkpoint must follow
 * against it (RFC 9162 §2.1.4 consistency):
 * - a smaller size is a rollback (the server hides entries this device has already seen): refused;
 * - the same size with another root is a fork (two histories): refused;
 * - a larger size needs a valid consistency proof from the accepted one, else it is a fork: refused.
 * Unlike Go's client, which tolerates an older tree from a lagging mirror, Valise has one server and no mirrors:
 * an older checkpoint than one already accepted is refused outright.
 *
 * Used by the directory log (transparency.ts) and the audit log (audit.ts). Browser-safe: no node: imports.
 */
import { ValiseError, equalBytes, fromBase64, verifyConsistency, type Checkpoint } from "@valise/core";

/** The last checkpoint a device accepted for one log. */
export interface AcceptedCheckpoint {
  /** The signed note as served (with its cosignatures). */
  note: string;
  size: number;
  /** base64 root hash. */
  rootHash: string;
  /** POSIX seconds: when a witness quorum last vouched for it (see core checkpointFreshness); null if unproven. */
  cosignedAt?: number | null;
  /** When this device accepted it (ms since the epoch). */
  acceptedAt?: number;
}

/** Why a checkpoint was refused against the accepted one. */
export type CheckpointRefusal = "rollback" | "fork";

/**
 * Check that `cp` extends `prev` (see the module comment); throws ValiseError("log_not_verified") whose message
 * starts with `<what> checkpoint refused: rollback —` or `…: fork —`, with `details.refusal` and both sizes.
 * `proof(from, to)` is asked only when the size grew.
 */
export async function requireExtends(
  what: string,
  prev: Pick<AcceptedCheckpoint, "size" | "rootHash"> | null | undefined,
  cp: Pick<Checkpoint, "size" | "rootHash">,
  proof: (from: number, to: number) => Promise<Uint8Array[]>,
): Promise<void> {
  if (!prev) return;
  const refuse = (refusal: CheckpointRefusal, why: string) =>
    new ValiseError("log_not_verified", `${what} checkpoint refused: ${refusal} — ${why}`, {
      refusal,
      size: cp.size,
      acceptedSize: prev.size,
    });
  const prevRoot = fromBase64(prev.rootHash);
  if (cp.size < prev.size)
    throw refuse("rollback", `the server showed size ${cp.size}, this device already accepted size ${prev.size}`);
  if (cp.size === prev.size) {
    if (!equalBytes(cp.rootHash, prevRoot))
      throw refuse(
        "fork",
        `a different root at size ${cp.size} than the one this device accepted (the server is showing two histories)`,
      );
    return;
  }
  if (prev.size === 0) return;
  if (!verifyConsistency(prev.size, cp.size, await proof(prev.size, cp.size), prevRoot, cp.rootHash))
    throw refuse("fork", `size ${cp.size} does not extend the accepted size ${prev.size} (consistency proof fails)`);
}

/** The refusal kind of an error thrown by `requireExtends`, if it is one. */
export function checkpointRefusal(e: unknown): CheckpointRefusal | undefined {
  if (!(e instanceof ValiseError) || e.code !== "log_not_verified") return undefined;
  const r = e.details?.refusal;
  return r === "rollback" || r === "fork" ? r : undefined;
}

/**
 * The witness's decision (c2sp.org/tlog-witness §add-checkpoint), pure: given the request, the log keys it trusts
 * and the latest checkpoint it cosigned for the origin, either the checkpoint extends that one — same tree or a
 * verified RFC 9162 consistency proof — or the HTTP status and reason to refuse with. Rollbacks (a smaller or stale
 * size) get 409 or 400, forks (same size with another root, or a proof that does not verify) 422, a checkpoint not
 * signed by a trusted key 403. Never throws.
 */
import {
  emptyRoot,
  equalBytes,
  openNote,
  parseCheckpoint,
  signNote,
  verifyConsistency,
  type Checkpoint,
  type NoteSignature,
  type NoteSigner,
  type NoteVerifier,
} from "@valise/core";
import type { AddCheckpointRequest } from "./request.js";

/** What a witness remembers per log: the latest checkpoint it cosigned. */
export interface CosignedState {
  readonly size: number;
  readonly rootHash: Uint8Array;
}

export type AddCheckpointVerdict =
  | {
      ok: true;
      checkpoint: Checkpoint;
      /** The checkpoint note text (signed by the log). */
      text: string;
      /** The verified signatures by trusted log keys. */
      logSignatures: NoteSignature[];
    }
  | {
      ok: false;
      status: 400 | 403 | 404 | 409 | 422;
      reason: string;
      /** For 409: the cosigned size. */
      size?: number;
      /** Set once the log's signature has verified: the refusal concerns a checkpoint the log really signed. */
      origin?: string;
    };

function checkpointText(note: string): string | undefined {
  const split = note.lastIndexOf("\n\n");
  return split < 0 ? undefined : note.slice(0, split + 1);
}

/**
 * Decide on an add-checkpoint request. `logs` maps each known origin to its trusted log keys; `latest(origin)` is
 * the latest checkpoint cosigned for it (undefined if none: size 0).
 */
export function verifyAddCheckpoint(
  req: AddCheckpointRequest,
  logs: ReadonlyMap<string, readonly NoteVerifier[]>,
  latest: (origin: string) => CosignedState | undefined,
): AddCheckpointVerdict {
  const text = checkpointText(req.note);
  if (text === undefined) return { ok: false, status: 400, reason: "malformed checkpoint note" };
  let unverified: Checkpoint;
  try {
    unverified = parseCheckpoint(text);
  } catch (e) {
    return { ok: false, status: 400, reason: e instanceof Error ? e.message : "malformed checkpoint" };
  }
  // "If the checkpoint origin is unknown, the witness MUST respond with a 404 Not Found".
  const keys = logs.get(unverified.origin);
  if (!keys || keys.length === 0)
    return { ok: false, status: 404, reason: `unknown log origin ${JSON.stringify(unverified.origin)}` };
  // "MUST verify the checkpoint signature against the public key(s) it trusts for the checkpoint origin, and it
  // MUST ignore signatures from unknown keys"; 403 if none verifies or a trusted key's signature fails.
  const opened = openNote(req.note, keys);
  if (!opened.ok) return { ok: false, status: opened.reason === "malformed note" ? 400 : 403, reason: opened.reason };
  const checkpoint = parseCheckpoint(opened.text); // the same text as above
  const origin = checkpoint.origin;
  const { oldSize, proof } = req;
  // "The old size MUST be equal to or lower than the checkpoint size. Otherwise … 400 Bad Request."
  if (oldSize > checkpoint.size)
    return {
      ok: false,
      status: 400,
      reason: `old size ${oldSize} is above the checkpoint size ${checkpoint.size}`,
      origin,
    };
  // "MUST check that the old size matches the size of the latest checkpoint it cosigned … (or zero …)", else 409
  // with that size. A log rolled back behind what this witness cosigned always ends here or above.
  const prev = latest(origin);
  const prevSize = prev?.size ?? 0;
  if (oldSize !== prevSize)
    return { ok: false, status: 409, reason: `old size ${oldSize} is not the cosigned size`, size: prevSize, origin };
  // "A checkpoint of size zero MUST have the root hash of the empty tree", else 422.
  if (checkpoint.size === 0 && !equalBytes(checkpoint.rootHash, emptyRoot()))
    return { ok: false, status: 422, reason: "a checkpoint of size 0 must have the empty tree's root", origin };
  if (oldSize === 0) {
    // "If the old size is zero, the consistency proof MUST be empty", else 422.
    if (proof.length !== 0) return { ok: false, status: 422, reason: "a proof from size 0 must be empty", origin };
  } else if (!verifyConsistency(oldSize, checkpoint.size, proof, prev!.rootHash, checkpoint.rootHash)) {
    // RFC 6962 §2.1.2 proof from the cosigned tree; for equal sizes, identical roots (verifyConsistency checks
    // both). Either failure is a fork: 422.
    return {
      ok: false,
      status: 422,
      reason:
        oldSize === checkpoint.size
          ? `fork: a different root for size ${oldSize}`
          : `consistency proof from ${oldSize} to ${checkpoint.size} does not verify`,
      origin,
    };
  }
  return { ok: true, checkpoint, text: opened.text, logSignatures: opened.sigs };
}

/**
 * Cosign an accepted checkpoint: the 200 response (the witness's cosignature line) and the note to remember and
 * serve to monitors (the log's verified signatures followed by the cosignature).
 */
export function cosignAccepted(
  verdict: Extract<AddCheckpointVerdict, { ok: true }>,
  signer: NoteSigner,
): { response: string; note: string } {
  const note = signNote(verdict.text, [signer], verdict.logSignatures);
  const line = note.slice(note.lastIndexOf("\u2014 "));
  return { response: line, note };
}

/**
 * C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint@v1.0.0): the note text `origin\nsize\nbase64(root)\n[ext\n…]`.
 * `parseCheckpoint` is strict and throws ValiseError("bad_encoding"); callers over network data get a result from
 * `verifyCheckpointQuorum` (cosignature.ts), which catches it.
 */
import { fromBase64, toBase64 } from "../bytes.js";
import { ValiseError } from "../errors.js";
import { HASH_SIZE, isTreeIndex } from "./merkle.js";

export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  /** RFC 6962 root hash of the tree at `size` (32 bytes). */
  readonly rootHash: Uint8Array;
  /** Opaque extension lines, without their newlines (NOT RECOMMENDED by the spec). */
  readonly extensions: readonly string[];
}

// tlog-checkpoint §Note text 2: ASCII decimal, no leading zeroes unless the size is 0.
const SIZE_RE = /^(0|[1-9][0-9]{0,15})$/;
// signed-note §Format: no ASCII control characters; inside a line, no newline either.
const LINE_BAD = /[\x00-\x1f]/;

function bad(why: string): ValiseError {
  return new ValiseError("bad_encoding", `malformed checkpoint: ${why}`);
}

export function parseCheckpoint(text: string): Checkpoint {
  if (typeof text !== "string" || !text.endsWith("\n")) throw bad("text must end in a newline");
  const lines = text.slice(0, -1).split("\n");
  // tlog-checkpoint §Note text: at least three non-empty lines.
  if (lines.length < 3) throw bad("expected origin, size and root hash lines");
  const [origin, sizeLine, rootLine, ...extensions] = lines as [string, string, string, ...string[]];
  // §Note text 1: the origin MUST be non-empty (its URL shape is only a SHOULD, so not checked).
  if (origin.length === 0) throw bad("empty origin");
  if (!SIZE_RE.test(sizeLine)) throw bad("tree size must be decimal without leading zeroes");
  const size = Number(sizeLine);
  if (!isTreeIndex(size)) throw bad("tree size above 2^53 - 1");
  // §Note text 3: base64 (RFC 4648 §4) of the RFC 6962 root hash.
  let rootHash: Uint8Array;
  try {
    rootHash = fromBase64(rootLine);
  } catch {
    throw bad("root hash is not base64");
  }
  if (rootHash.length !== HASH_SIZE) throw bad(`root hash must be ${HASH_SIZE} bytes`);
  // §Note text 4: extension lines, if any, MUST be non-empty.
  if (extensions.some((e) => e.length === 0)) throw bad("empty extension line");
  if (lines.some((l) => LINE_BAD.test(l))) throw bad("control character");
  return Object.freeze({ origin, size, rootHash, extensions: Object.freeze(extensions) });
}

export function formatCheckpoint(c: Checkpoint): string {
  if (c.origin.length === 0 || LINE_BAD.test(c.origin)) throw new ValiseError("bad_request", "invalid origin");
  if (!isTreeIndex(c.size)) throw new ValiseError("bad_request", `invalid tree size ${String(c.size)}`);
  if (c.rootHash.length !== HASH_SIZE) throw new ValiseError("bad_request", `root hash must be ${HASH_SIZE} bytes`);
  for (const e of c.extensions)
    if (e.length === 0 || LINE_BAD.test(e)) throw new ValiseError("bad_request", "invalid extension line");
  return [c.origin, String(c.size), toBase64(c.rootHash), ...c.extensions].join("\n") + "\n";
}

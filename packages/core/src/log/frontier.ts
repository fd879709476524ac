/**
 * The frontier (compact range [0, size)) of an append-only RFC 9162 tree: the roots of the perfect subtrees given by
 * the binary digits of `size`, largest first. Appending is O(log n); the root is their right fold (RFC 9162 §2.1.1).
 * State in, state out: `frontierAppend` returns a new frontier plus every perfect-subtree node it completed, which
 * is what a server stores to answer `HashReader.getNodeHash` later.
 */
import { ValiseError } from "../errors.js";
import { emptyRoot, HASH_SIZE, isTreeIndex, nodeHash } from "./merkle.js";
import { rangeNodes, type HashReader, type NodeId } from "./merkle-prove.js";

export interface Frontier {
  readonly size: number;
  /** Perfect-subtree roots, largest (leftmost) first; one per set bit of `size`. */
  readonly hashes: readonly Uint8Array[];
}

export interface NodeHash extends NodeId {
  readonly hash: Uint8Array;
}

export const EMPTY_FRONTIER: Frontier = Object.freeze({ size: 0, hashes: Object.freeze([]) });

/** Append one leaf hash (SHA-256(0x00 || data)). */
export function frontierAppend(f: Frontier, leafHash: Uint8Array): { frontier: Frontier; completed: NodeHash[] } {
  if (leafHash.length !== HASH_SIZE) throw new ValiseError("bad_request", `expected ${HASH_SIZE}-byte leaf hash`);
  if (!isTreeIndex(f.size + 1)) throw new ValiseError("too_large", "tree size would exceed 2^53 - 1");
  const hashes = f.hashes.slice();
  const completed: NodeHash[] = [{ level: 0, index: f.size, hash: leafHash }];
  let h = leafHash;
  let level = 0;
  let bits = f.size; // bit `level` of the old size set = a left sibling of that height is waiting
  while (bits % 2 === 1) {
    h = nodeHash(hashes.pop()!, h);
    bits = (bits - 1) / 2;
    level++;
    completed.push({ level, index: Math.floor(f.size / 2 ** level), hash: h });
  }
  hashes.push(h);
  return { frontier: Object.freeze({ size: f.size + 1, hashes: Object.freeze(hashes) }), completed };
}

/** MTH(D[size]) — RFC 9162 §2.1.1. */
export function frontierRoot(f: Frontier): Uint8Array {
  if (f.hashes.length === 0) return emptyRoot();
  let h = f.hashes[f.hashes.length - 1]!;
  for (let i = f.hashes.length - 2; i >= 0; i--) h = nodeHash(f.hashes[i]!, h);
  return h;
}

/** Rebuild the frontier of the first `size` leaves from stored hashes (e.g. at server start). */
export function frontierFromReader(reader: HashReader, size: number): Frontier {
  if (!isTreeIndex(size)) throw new ValiseError("bad_request", `invalid tree size ${String(size)}`);
  const hashes = rangeNodes(0, size).map((n) => reader.getNodeHash(n.level, n.index));
  return Object.freeze({ size, hashes: Object.freeze(hashes) });
}

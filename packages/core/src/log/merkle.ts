/**
 * RFC 9162 §2.1 Merkle Tree hashing and proof verification (SHA-256; identical to RFC 6962 §2.1).
 *
 * Sizes and indices are JS numbers, valid up to 2^53 − 1. Indices, sizes, proofs and roots that arrive over the
 * network are attacker-controlled: every verifier range-checks them and returns `false`, never throws.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { equalBytes } from "../bytes.js";

/** Size of every hash in an RFC 9162 SHA-256 tree. */
export const HASH_SIZE = 32;

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

/** SHA-256 of the concatenation of its arguments. */
export type Sha256Of = (...parts: Uint8Array[]) => Uint8Array;

const nobleSha256: Sha256Of = (...parts) => {
  if (parts.length === 1) return sha256(parts[0]!);
  const h = sha256.create();
  for (const p of parts) h.update(p);
  return h.digest();
};
let sha256Of: Sha256Of = nobleSha256;

/**
 * Use another SHA-256 implementation for the tree hashes (the server passes node:crypto's: several times faster than
 * the JavaScript one on its append path). It must compute SHA-256: it is checked against the built-in one on test
 * vectors first, and refused (RangeError, nothing changed) if it disagrees.
 */
export function setMerkleSha256(fn: Sha256Of): void {
  const probes = [[], [Uint8Array.of(0)], [LEAF_PREFIX, Uint8Array.of(1, 2, 3)], [new Uint8Array(200).fill(7)]];
  for (const parts of probes)
    if (!equalBytes(fn(...parts), nobleSha256(...parts))) throw new RangeError("not a SHA-256 implementation");
  sha256Of = fn;
}

/** MTH({}) = SHA-256() — RFC 9162 §2.1.1. */
export function emptyRoot(): Uint8Array {
  return sha256Of(new Uint8Array(0));
}

/** MTH({d(0)}) = SHA-256(0x00 || d(0)) — RFC 9162 §2.1.1. */
export function leafHash(data: Uint8Array): Uint8Array {
  return sha256Of(LEAF_PREFIX, data);
}

// One scratch buffer for the 32+32-byte case: node hashing in a proof walk allocates only the digest.
const scratch = new Uint8Array(1 + 2 * HASH_SIZE);
scratch[0] = 0x01;

/** SHA-256(0x01 || left || right) — RFC 9162 §2.1.1. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length === HASH_SIZE && right.length === HASH_SIZE) {
    scratch.set(left, 1);
    scratch.set(right, 1 + HASH_SIZE);
    return sha256Of(scratch);
  }
  return sha256Of(NODE_PREFIX, left, right);
}

/** A size or index we can do exact arithmetic on. */
export function isTreeIndex(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

/** Largest power of two strictly less than n (n ≥ 2): the split point k of RFC 9162 §2.1.1. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** Smallest power of two ≥ n; bitCeil(0) = bitCeil(1) = 1. */
export function bitCeil(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** MTH(D[n]) over leaf hashes (not leaf data) — RFC 9162 §2.1.1. O(n); use a `Frontier` for a growing log. */
export function rootFromLeafHashes(leafHashes: readonly Uint8Array[]): Uint8Array {
  if (leafHashes.length === 0) return emptyRoot();
  return mth(leafHashes, 0, leafHashes.length);
}
function mth(leaves: readonly Uint8Array[], a: number, b: number): Uint8Array {
  if (b - a === 1) return leaves[a]!;
  const k = splitPoint(b - a);
  return nodeHash(mth(leaves, a, a + k), mth(leaves, a + k, b));
}

// Not a type guard: `Array.isArray` would narrow a readonly array to any[].
function isList(x: unknown): boolean {
  return Array.isArray(x);
}

function allHashes(proof: readonly Uint8Array[]): boolean {
  for (const p of proof) if (!(p instanceof Uint8Array) || p.length !== HASH_SIZE) return false;
  return true;
}

/**
 * The root an inclusion proof leads to, or undefined if the proof cannot be for (index, size) — RFC 9162 §2.1.3.2.
 * `leafHash` is the already-hashed leaf, SHA-256(0x00 || data).
 */
export function rootFromInclusionProof(
  leafHash: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
): Uint8Array | undefined {
  if (!isTreeIndex(index) || !isTreeIndex(size)) return undefined;
  // RFC 9162 §2.1.3.2 step 1: leaf_index must be < tree_size (this also rejects size 0).
  if (index >= size) return undefined;
  if (!(leafHash instanceof Uint8Array) || leafHash.length !== HASH_SIZE) return undefined;
  if (!isList(proof) || proof.length > 64 || !allHashes(proof)) return undefined;
  // §2.1.3.2 step 2. Division instead of `>>`: the numbers go past 32 bits.
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) return undefined; // step 3a
    if (fn % 2 === 1 || fn === sn) {
      // step 3b
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    // step 3c
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // step 4: sn must be 0 (the proof had exactly the right length).
  return sn === 0 ? r : undefined;
}

/** Verify that `leafHash` is leaf `index` of the tree of `size` leaves with root `root` — RFC 9162 §2.1.3.2. */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  const r = rootFromInclusionProof(leafHash, index, size, proof);
  return r !== undefined && root instanceof Uint8Array && equalBytes(r, root);
}

/**
 * Verify that the tree of `size2` leaves with root `root2` extends the tree of `size1` leaves with root `root1`
 * — RFC 9162 §2.1.4.2. As in transparency-dev/merkle (whose vectors we pass): a proof from size 0 always fails,
 * and for size1 = size2 the proof must be empty and the roots equal.
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): boolean {
  if (!isTreeIndex(size1) || !isTreeIndex(size2)) return false;
  if (!(root1 instanceof Uint8Array) || !(root2 instanceof Uint8Array) || !isList(proof)) return false;
  if (size1 === 0 || size2 < size1) return false; // §2.1.4.2: requires 0 < first ≤ second
  if (size1 === size2) return proof.length === 0 && equalBytes(root1, root2);
  // §2.1.4.2 step 1: an empty consistency_path fails.
  if (proof.length === 0 || proof.length > 128 || !allHashes(proof)) return false;
  // §2.1.4.2 step 2: if first is an exact power of 2, prepend first_hash.
  const pow2 = bitCeil(size1) === size1;
  const start = pow2 ? 0 : 1;
  const first = pow2 ? root1 : proof[0]!;
  if (pow2 && root1.length !== HASH_SIZE) return false;
  // step 3
  let fn = size1 - 1;
  let sn = size2 - 1;
  // step 4
  while (fn % 2 === 1) {
    fn = (fn - 1) / 2;
    sn = Math.floor(sn / 2);
  }
  // step 5
  let fr = first;
  let sr = first;
  // step 6
  for (let i = start; i < proof.length; i++) {
    const c = proof[i]!;
    if (sn === 0) return false; // 6a
    if (fn % 2 === 1 || fn === sn) {
      // 6b
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    // 6c
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // step 7
  return sn === 0 && equalBytes(fr, root1) && equalBytes(sr, root2);
}

/**
 * A subtree [start, end) is valid when start ≤ end and start is 0, equal to end, or a multiple of bit_ceil(end −
 * start) — draft-ietf-plants-merkle-tree-certs §4.1 ("Subtrees"), as used by C2SP tlog-cosignature.
 */
export function isValidSubtree(start: number, end: number): boolean {
  if (!isTreeIndex(start) || !isTreeIndex(end) || start > end) return false;
  return start === 0 || start === end || start % bitCeil(end - start) === 0;
}

/** Inclusion of leaf `index` in the subtree [start, end) with root `root` (draft-ietf-plants-merkle-tree-certs §4.3). */
export function verifySubtreeInclusion(
  leafHash: Uint8Array,
  index: number,
  start: number,
  end: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isValidSubtree(start, end) || !isTreeIndex(index) || index < start || index >= end) return false;
  return verifyInclusion(leafHash, index - start, end - start, proof, root);
}

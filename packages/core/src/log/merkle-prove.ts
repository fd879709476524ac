/**
 * RFC 9162 §2.1.3.1 / §2.1.4.1 proof generation, over stored node hashes.
 *
 * A proof element is the hash of one node of the RFC 9162 tree. Every such node covers [a, b) with a aligned, so it
 * is the right fold of the perfect subtrees given by the binary digits of b − a. A server stores perfect-subtree
 * hashes (a `Frontier` append reports each one as it completes) and answers `HashReader.getNodeHash`; nothing is
 * rehashed but the few partial nodes on the right border. For async storage, take a `ProofPlan`, fetch its node ids,
 * then `assembleProof`.
 */
import { ValiseError } from "../errors.js";
import { emptyRoot, isTreeIndex, nodeHash, splitPoint } from "./merkle.js";

/** The perfect subtree of height `level` covering leaves [index·2^level, (index+1)·2^level); level 0 = leaves. */
export interface NodeId {
  readonly level: number;
  readonly index: number;
}

/** Capability to read stored hashes of perfect subtrees. Only asked for subtrees entirely inside the tree. */
export interface HashReader {
  getNodeHash(level: number, index: number): Uint8Array;
}

/** Each element lists the perfect subtrees (left to right) whose right fold is one proof hash. */
export type ProofPlan = readonly (readonly NodeId[])[];

function checkIndex(name: string, n: number): void {
  if (!isTreeIndex(n))
    throw new ValiseError("bad_request", `${name} must be a safe non-negative integer, got ${String(n)}`);
}

/** The perfect subtrees that make up node [a, b) of an RFC 9162 tree, left to right. */
export function rangeNodes(a: number, b: number): NodeId[] {
  const out: NodeId[] = [];
  while (a < b) {
    let size = 1;
    let level = 0;
    while (size * 2 <= b - a) {
      size *= 2;
      level++;
    }
    out.push({ level, index: a / size });
    a += size;
  }
  return out;
}

/** The nodes of PATH(m, D[n]) — RFC 9162 §2.1.3.1 — leaf side first. */
export function inclusionProofPlan(index: number, size: number): ProofPlan {
  checkIndex("index", index);
  checkIndex("size", size);
  if (index >= size) throw new ValiseError("bad_request", `index ${index} is not below tree size ${size}`);
  const out: NodeId[][] = [];
  let a = 0;
  let b = size;
  // Walk root → leaf, then reverse: the proof lists siblings leaf side first.
  while (b - a > 1) {
    const k = splitPoint(b - a);
    if (index < a + k) {
      out.push(rangeNodes(a + k, b));
      b = a + k;
    } else {
      out.push(rangeNodes(a, a + k));
      a = a + k;
    }
  }
  return out.reverse();
}

/** The nodes of PROOF(m, D[n]) = SUBPROOF(m, D[n], true) — RFC 9162 §2.1.4.1 — for 0 < m ≤ n; empty if m = n. */
export function consistencyProofPlan(size1: number, size2: number): ProofPlan {
  checkIndex("size1", size1);
  checkIndex("size2", size2);
  if (size1 === 0 || size1 > size2)
    throw new ValiseError("bad_request", `consistency proof needs 0 < size1 ≤ size2, got ${size1}, ${size2}`);
  const out: NodeId[][] = [];
  let m = size1;
  let a = 0;
  let b = size2;
  let complete = true; // the b flag of SUBPROOF
  for (;;) {
    if (m === b - a) {
      if (!complete) out.push(rangeNodes(a, b));
      break;
    }
    const k = splitPoint(b - a);
    if (m <= k) {
      out.push(rangeNodes(a + k, b));
      b = a + k;
    } else {
      out.push(rangeNodes(a, a + k));
      m -= k;
      a = a + k;
      complete = false;
    }
  }
  return out.reverse();
}

/** Turn a plan into proof hashes, folding partial nodes (RFC 9162 §2.1.1) from stored perfect-subtree hashes. */
export function assembleProof(plan: ProofPlan, get: (id: NodeId) => Uint8Array): Uint8Array[] {
  return plan.map((nodes) => foldNodes(nodes.map(get)));
}

function foldNodes(hashes: readonly Uint8Array[]): Uint8Array {
  if (hashes.length === 0) return emptyRoot();
  let h = hashes[hashes.length - 1]!;
  for (let i = hashes.length - 2; i >= 0; i--) h = nodeHash(hashes[i]!, h);
  return h;
}

/** Inclusion proof for leaf `index` in the tree of `size` leaves — RFC 9162 §2.1.3.1. */
export function inclusionProof(reader: HashReader, index: number, size: number): Uint8Array[] {
  return assembleProof(inclusionProofPlan(index, size), (n) => reader.getNodeHash(n.level, n.index));
}

/** Consistency proof from size1 to size2 — RFC 9162 §2.1.4.1. */
export function consistencyProof(reader: HashReader, size1: number, size2: number): Uint8Array[] {
  return assembleProof(consistencyProofPlan(size1, size2), (n) => reader.getNodeHash(n.level, n.index));
}

/** MTH of the first `size` leaves from stored hashes — RFC 9162 §2.1.1. */
export function rootFromReader(reader: HashReader, size: number): Uint8Array {
  checkIndex("size", size);
  return foldNodes(rangeNodes(0, size).map((n) => reader.getNodeHash(n.level, n.index)));
}

/** A `HashReader` over an in-memory list of leaf hashes (computes node hashes on demand; for tests and small trees). */
export function leafHashReader(leafHashes: readonly Uint8Array[]): HashReader {
  const memo = new Map<string, Uint8Array>();
  const get = (level: number, index: number): Uint8Array => {
    if (level === 0) {
      const h = leafHashes[index];
      if (h === undefined) throw new ValiseError("bad_request", `no leaf ${index}`);
      return h;
    }
    const key = `${level}/${index}`;
    let h = memo.get(key);
    if (h === undefined) {
      h = nodeHash(get(level - 1, 2 * index), get(level - 1, 2 * index + 1));
      memo.set(key, h);
    }
    return h;
  };
  return { getNodeHash: get };
}

/**
 * A `HashReader` over a tree whose first `prunedSize` leaves are known only by their frontier (the perfect-subtree
 * roots of [0, prunedSize), largest first: what a pruned log keeps) followed by the leaf hashes of [prunedSize, …).
 * Answers every node a proof or root about leaves at or after `prunedSize` needs; a node strictly inside a pruned
 * subtree throws (it is gone).
 */
export function prunedHashReader(
  prunedSize: number,
  frontier: readonly Uint8Array[],
  leafHashes: readonly Uint8Array[],
): HashReader {
  const kept = new Map<string, Uint8Array>();
  const ids = rangeNodes(0, prunedSize);
  if (ids.length !== frontier.length)
    throw new ValiseError("bad_request", `a frontier of ${prunedSize} leaves has ${ids.length} hashes`);
  ids.forEach((n, i) => kept.set(`${n.level}/${n.index}`, frontier[i]!));
  const memo = new Map<string, Uint8Array>();
  const get = (level: number, index: number): Uint8Array => {
    const key = `${level}/${index}`;
    const k = kept.get(key) ?? memo.get(key);
    if (k) return k;
    const first = index * 2 ** level;
    const end = first + 2 ** level;
    if (end <= prunedSize) throw new ValiseError("bad_request", `node ${key} lies in the pruned part of the log`);
    let h: Uint8Array | undefined;
    if (level === 0) {
      h = leafHashes[first - prunedSize];
      if (h === undefined) throw new ValiseError("bad_request", `no leaf ${first}`);
    } else h = nodeHash(get(level - 1, 2 * index), get(level - 1, 2 * index + 1));
    memo.set(key, h);
    return h;
  };
  return { getNodeHash: get };
}

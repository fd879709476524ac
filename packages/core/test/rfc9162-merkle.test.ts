/**
 * RFC 9162 §2.1 (= RFC 6962 §2.1) Merkle trees: transparency-dev/merkle vectors (vectors/merkle) plus
 * property tests over random trees.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createHash } from "node:crypto";
import {
  assembleProof,
  consistencyProof,
  consistencyProofPlan,
  EMPTY_FRONTIER,
  emptyRoot,
  frontierAppend,
  frontierFromReader,
  frontierRoot,
  fromBase64,
  fromHex,
  inclusionProof,
  inclusionProofPlan,
  isValidSubtree,
  leafHash,
  leafHashReader,
  nodeHash,
  rootFromInclusionProof,
  rootFromLeafHashes,
  rootFromReader,
  toHex,
  verifyConsistency,
  verifyInclusion,
  verifySubtreeInclusion,
  type Frontier,
  type NodeHash,
} from "../src/index.js";
import { listJson, readVectorText } from "./vectors.js";

// The vector files are Go encoding/json output with uint64 fields, some above 2^53: quote the digits before
// parsing (per the vectors README), then hand the API a number. Anything ≥ 2^53 becomes an unsafe integer,
// which every verifier rejects.
const INT_FIELDS = /("(?:leafIdx|treeSize|size1|size2|start|end|size)":\s*)(\d+)/g;
interface RawVector {
  [k: string]: unknown;
  desc: string;
  wantErr: boolean;
  proof: string[] | null;
}
function loadVector(...parts: string[]): RawVector {
  return JSON.parse(readVectorText(...parts).replace(INT_FIELDS, '$1"$2"')) as RawVector;
}
const num = (v: unknown): number => Number(v);
const b64 = (v: unknown): Uint8Array => fromBase64(v as string);
const proofOf = (v: RawVector): Uint8Array[] => (v.proof ?? []).map((p) => fromBase64(p));

interface ReferenceTree {
  leafInputs: string[];
  leafHashes: string[];
  nodeHashes: { levels: string[][] };
  rootHashes: { bySize: string[] };
  hasherVectors: { fn: string; leaf?: string; left?: string; right?: string; want: string }[];
}
const ref = JSON.parse(readVectorText("merkle", "reference-tree.json")) as ReferenceTree;
const refLeaves = ref.leafHashes.map(fromHex);

void test("reference-tree.json: hasher vectors", () => {
  assert.equal(ref.hasherVectors.length, 4);
  for (const v of ref.hasherVectors) {
    const got =
      v.fn === "emptyRoot"
        ? emptyRoot()
        : v.fn === "hashLeaf"
          ? leafHash(fromHex(v.leaf!))
          : nodeHash(fromHex(v.left!), fromHex(v.right!));
    assert.equal(toHex(got), v.want, v.fn);
  }
});

void test("reference-tree.json: leaf hashes, node hashes and roots for sizes 0..8", () => {
  assert.deepEqual(
    ref.leafInputs.map((l) => toHex(leafHash(fromHex(l)))),
    ref.leafHashes,
  );
  const reader = leafHashReader(refLeaves);
  ref.nodeHashes.levels.forEach((level, l) =>
    level.forEach((h, i) => assert.equal(toHex(reader.getNodeHash(l, i)), h, `node ${l}/${i}`)),
  );
  let f: Frontier = EMPTY_FRONTIER;
  for (let n = 0; n <= 8; n++) {
    const want = ref.rootHashes.bySize[n]!;
    assert.equal(toHex(rootFromLeafHashes(refLeaves.slice(0, n))), want, `MTH size ${n}`);
    assert.equal(toHex(rootFromReader(reader, n)), want, `reader root size ${n}`);
    assert.equal(toHex(frontierRoot(f)), want, `frontier root size ${n}`);
    assert.equal(toHex(frontierRoot(frontierFromReader(reader, n))), want);
    if (n < 8) f = frontierAppend(f, refLeaves[n]!).frontier;
  }
});

void test("merkle/inclusion: every vector (98)", () => {
  const files = listJson("merkle", "inclusion");
  assert.equal(files.length, 98);
  for (const f of files) {
    const v = loadVector("merkle", "inclusion", f);
    const ok = verifyInclusion(b64(v.leafHash), num(v.leafIdx), num(v.treeSize), proofOf(v), b64(v.root));
    assert.equal(ok, !v.wantErr, `${f}: ${v.desc}`);
  }
});

void test("merkle/consistency: every vector (98)", () => {
  const files = listJson("merkle", "consistency");
  assert.equal(files.length, 98);
  for (const f of files) {
    const v = loadVector("merkle", "consistency", f);
    const ok = verifyConsistency(num(v.size1), num(v.size2), proofOf(v), b64(v.root1), b64(v.root2));
    assert.equal(ok, !v.wantErr, `${f}: ${v.desc}`);
  }
});

void test("merkle/subtreeinclusion: every vector (204)", () => {
  const files = listJson("merkle", "subtreeinclusion");
  assert.equal(files.length, 204);
  for (const f of files) {
    const v = loadVector("merkle", "subtreeinclusion", f);
    const ok = verifySubtreeInclusion(
      b64(v.leafHash),
      num(v.leafIdx),
      num(v.start),
      num(v.end),
      proofOf(v),
      b64(v.root),
    );
    assert.equal(ok, !v.wantErr, `${f}: ${v.desc}`);
  }
});

void test("generated proofs equal the happy-path vectors byte for byte", () => {
  const reader = leafHashReader(refLeaves);
  for (const f of listJson("merkle", "inclusion").filter((f) => /^\d\/happy-path/.test(f))) {
    const v = loadVector("merkle", "inclusion", f);
    const proof = inclusionProof(reader, num(v.leafIdx), num(v.treeSize));
    assert.deepEqual(proof.map(toHex), proofOf(v).map(toHex), f);
  }
  for (const f of listJson("merkle", "consistency").filter((f) => /^\d\/happy-path/.test(f))) {
    const v = loadVector("merkle", "consistency", f);
    const proof = consistencyProof(reader, num(v.size1), num(v.size2));
    assert.deepEqual(proof.map(toHex), proofOf(v).map(toHex), f);
  }
});

// subtree-rolling-hashes.json: one SHA-256 over text lines, for D = 130 leaves d[i] = byte i.
void test("subtree-rolling-hashes.json: subtree hashes and subtree inclusion proofs", () => {
  const doc = JSON.parse(readVectorText("merkle", "subtree-rolling-hashes.json")) as {
    vectors: { name: string; sha256: string }[];
  };
  const want = new Map(doc.vectors.map((v) => [v.name, v.sha256]));
  const leaves = Array.from({ length: 130 }, (_, i) => leafHash(Uint8Array.of(i)));
  const subtreeHash = createHash("sha256");
  const inclusion = createHash("sha256");
  for (let end = 0; end <= 130; end++) {
    for (let start = 0; start <= end; start++) {
      if (!isValidSubtree(start, end)) continue;
      const sub = leaves.slice(start, end);
      subtreeHash.update(`[${start}, ${end}) ${toHex(rootFromLeafHashes(sub))}\n`);
      const reader = leafHashReader(sub);
      for (let index = start; index < end; index++) {
        const proof = inclusionProof(reader, index - start, end - start);
        inclusion.update(`${index} [${start}, ${end})${proof.map((p) => " " + toHex(p)).join("")}\n`);
      }
    }
  }
  assert.equal(subtreeHash.digest("hex"), want.get("subtree hash"));
  assert.equal(inclusion.digest("hex"), want.get("subtree inclusion proof"));
});

void test("verifiers never throw on hostile numbers and shapes", () => {
  const h = refLeaves[0]!;
  const bad = [-1, 1.5, NaN, Infinity, 2 ** 53, 2 ** 64, Number.MAX_VALUE];
  for (const n of bad) {
    assert.equal(verifyInclusion(h, n, 8, [], h), false);
    assert.equal(verifyInclusion(h, 0, n, [], h), false);
    assert.equal(verifyConsistency(n, 8, [h], h, h), false);
    assert.equal(verifyConsistency(1, n, [h], h, h), false);
  }
  assert.equal(verifyInclusion(h, 0, 2, [new Uint8Array(31)], h), false);
  assert.equal(rootFromInclusionProof(new Uint8Array(31), 0, 1, []), undefined);
  assert.throws(() => inclusionProofPlan(3, 3));
  assert.throws(() => consistencyProofPlan(0, 3));
  assert.throws(() => consistencyProofPlan(4, 3));
});

// ---- property tests: random trees ----

// Distinct leaves (a random salt plus the position): with repeated leaves some tampering is legitimately
// undetectable (two equal siblings swap places), which is not what these properties are about.
const leavesArb = (max: number) =>
  fc
    .tuple(fc.integer({ min: 1, max }), fc.uint8Array({ minLength: 1, maxLength: 16 }))
    .map(([n, salt]) => Array.from({ length: n }, (_, i) => leafHash(Uint8Array.from([...salt, i >> 8, i & 255]))));

function buildFrontier(leaves: Uint8Array[]): { f: Frontier; stored: Map<string, Uint8Array> } {
  let f: Frontier = EMPTY_FRONTIER;
  const stored = new Map<string, Uint8Array>();
  for (const l of leaves) {
    const r = frontierAppend(f, l);
    f = r.frontier;
    r.completed.forEach((n: NodeHash) => stored.set(`${n.level}/${n.index}`, n.hash));
  }
  return { f, stored };
}

void test("property: frontier root = MTH, and its completed nodes serve proofs", () => {
  fc.assert(
    fc.property(leavesArb(70), (leaves) => {
      const { f, stored } = buildFrontier(leaves);
      const root = rootFromLeafHashes(leaves);
      assert.deepEqual(frontierRoot(f), root);
      const reader = { getNodeHash: (l: number, i: number) => stored.get(`${l}/${i}`)! };
      assert.deepEqual(rootFromReader(reader, leaves.length), root);
      const plan = inclusionProofPlan(leaves.length - 1, leaves.length);
      const viaPlan = assembleProof(plan, (n) => stored.get(`${n.level}/${n.index}`)!);
      assert.deepEqual(viaPlan, inclusionProof(leafHashReader(leaves), leaves.length - 1, leaves.length));
    }),
  );
});

function flipBit(b: Uint8Array, bit: number): Uint8Array {
  const c = b.slice();
  c[(bit >> 3) % c.length]! ^= 1 << (bit & 7);
  return c;
}

// Roots of every prefix of `all`, via the frontier.
function prefixRoots(all: Uint8Array[]): Uint8Array[] {
  let f: Frontier = EMPTY_FRONTIER;
  const out = [frontierRoot(f)];
  for (const l of all) {
    f = frontierAppend(f, l).frontier;
    out.push(frontierRoot(f));
  }
  return out;
}

// A proof for size n is checked against the genuine root of another size m (the log really has m leaves): an
// RFC 9162 proof does not bind the size on its own (leaf 0's proof in a 3-leaf tree also "verifies" for size 4
// against the 3-leaf root), so the meaningful property is that it fails against the real other tree.
void test("property: every inclusion proof verifies; tampering with anything fails", () => {
  fc.assert(
    fc.property(leavesArb(48), fc.nat(), fc.nat(), (all, pick, bit) => {
      const n = Math.max(1, all.length - 8);
      const leaves = all.slice(0, n);
      const reader = leafHashReader(leaves);
      const roots = prefixRoots(all);
      const root = roots[n]!;
      for (let i = 0; i < n; i++) {
        const proof = inclusionProof(reader, i, n);
        assert.ok(verifyInclusion(leaves[i]!, i, n, proof, root), `leaf ${i} of ${n}`);
      }
      const i = pick % n;
      const proof = inclusionProof(reader, i, n);
      const leaf = leaves[i]!;
      // Any bit of any proof element, the leaf or the root.
      proof.forEach((_, k) => {
        const p2 = proof.slice();
        p2[k] = flipBit(p2[k]!, bit);
        assert.ok(!verifyInclusion(leaf, i, n, p2, root));
      });
      assert.ok(!verifyInclusion(flipBit(leaf, bit), i, n, proof, root));
      assert.ok(!verifyInclusion(leaf, i, n, proof, flipBit(root, bit)));
      // Another index in the same tree, another (genuine) tree size, a truncated or extended proof.
      for (const j of [i - 1, i + 1, i ^ 1, i ^ 2, n])
        if (j !== i) assert.ok(!verifyInclusion(leaf, j, n, proof, root), `index ${j} instead of ${i}`);
      for (const m of [n - 1, n + 1, n + 2, n + 7, Math.floor(n / 2), 0])
        if (m !== n && m >= 0 && m <= all.length)
          assert.ok(!verifyInclusion(leaf, i, m, proof, roots[m]!), `size ${m} instead of ${n}`);
      if (proof.length > 0) assert.ok(!verifyInclusion(leaf, i, n, proof.slice(1), root));
      if (proof.length > 0) assert.ok(!verifyInclusion(leaf, i, n, proof.slice(0, -1), root));
      assert.ok(!verifyInclusion(leaf, i, n, [...proof, root], root));
      assert.ok(!verifyInclusion(leaf, i, n, [root, ...proof], root));
    }),
    { numRuns: 60 },
  );
});

void test("property: every consistency proof verifies; tampering with anything fails", () => {
  fc.assert(
    fc.property(leavesArb(48), fc.nat(), fc.nat(), (all, pick, bit) => {
      const n = Math.max(1, all.length - 8);
      const reader = leafHashReader(all.slice(0, n));
      const roots = prefixRoots(all);
      for (let m = 1; m <= n; m++) {
        const proof = consistencyProof(reader, m, n);
        assert.ok(verifyConsistency(m, n, proof, roots[m]!, roots[n]!), `${m} -> ${n}`);
      }
      const m = 1 + (pick % n);
      const proof = consistencyProof(reader, m, n);
      proof.forEach((_, k) => {
        const p2 = proof.slice();
        p2[k] = flipBit(p2[k]!, bit);
        assert.ok(!verifyConsistency(m, n, p2, roots[m]!, roots[n]!));
      });
      assert.ok(!verifyConsistency(m, n, proof, flipBit(roots[m]!, bit), roots[n]!));
      assert.ok(!verifyConsistency(m, n, proof, roots[m]!, flipBit(roots[n]!, bit)));
      for (const m2 of [m - 1, m + 1, m ^ 2, m ^ 1])
        if (m2 !== m && m2 >= 0 && m2 <= n)
          assert.ok(!verifyConsistency(m2, n, proof, roots[m2]!, roots[n]!), `size1 ${m2} instead of ${m}`);
      for (const n2 of [n + 1, n + 2, n + 7, n - 1, Math.floor(n / 2)])
        if (n2 !== n && n2 >= m && n2 <= all.length)
          assert.ok(!verifyConsistency(m, n2, proof, roots[m]!, roots[n2]!), `size2 ${n2} instead of ${n}`);
      if (proof.length > 0) assert.ok(!verifyConsistency(m, n, proof.slice(0, -1), roots[m]!, roots[n]!));
      if (proof.length > 0) assert.ok(!verifyConsistency(m, n, proof.slice(1), roots[m]!, roots[n]!));
      assert.ok(!verifyConsistency(m, n, [...proof, roots[n]!], roots[m]!, roots[n]!));
      assert.ok(!verifyConsistency(m, n, [roots[m]!, ...proof], roots[m]!, roots[n]!));
    }),
    { numRuns: 60 },
  );
});

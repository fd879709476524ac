/**
 * Server side: what a commit does to a group's membership, derived from what the server can verify — never from the
 * committer's word (issue 13 finding 6). Commits travel as MLS PublicMessage (RFC 9420 §6.2), so the delivery
 * service reads their proposals and sender; it learns nothing it did not know (who is a member).
 *
 * Input: the commit, the GroupInfo (with ratchet tree) the server stored for the current epoch (null only at epoch 0,
 * before any commit), and the GroupInfo the committer publishes for the next epoch. Verified here:
 * - the commit is a PublicMessage commit for the current epoch of this group, with proposals by value only
 *   (Add, Remove; ExternalInit and the joiner's own Remove in an external commit) — anything else is refused;
 * - the sender: a member's leaf is looked up in the stored tree and the FramedContent signature (§6.1) is verified
 *   with its key over the stored GroupContext; an external joiner's signature is verified with the key of the leaf in
 *   its UpdatePath (the server cannot check the membership tag, a MAC under the epoch's secret);
 * - added devices are the credentials of the Add proposals' key packages, removed devices those of the stored tree's
 *   leaves the Remove proposals name (a device counts as removed only if no leaf of it is left);
 * - the next GroupInfo: same group, epoch + 1, its ratchet tree hashes to its GroupContext's tree_hash, it is signed
 *   by the committer's leaf, its confirmation tag is the commit's, its confirmed transcript hash (§8.2) is computed
 *   from the stored GroupInfo and this very commit, and its tree is the stored one with exactly these changes: every
 *   leaf not removed keeps its index and credential, removed leaves are gone, the added ones are new.
 * At epoch 0 there is no stored GroupInfo: the only member is the creator at leaf 0 (the caller checks that the
 * sender is the conversation's creator device), the commit's signature and the transcript cannot be checked, and no
 * Remove is possible.
 * Never throws: any problem is `{ ok: false, reason }`.
 */
import { equalBytes, toHex } from "@valise/core";
import type { DeviceId, UserHandle } from "@valise/core";
import { decodeMlsMessage } from "ts-mls";
import type { CryptoProvider, GroupInfo, LeafNode, RatchetTree } from "ts-mls";
import {
  verifyFramedContentSignature,
  ratchetTreeFromExtension,
  verifyGroupInfoSignature,
  treeHashRoot,
  createConfirmedHash,
  createInterimHash,
} from "./ts-mls-internals.js";
import { DEFAULT_CIPHERSUITE, suiteImpl } from "./ciphersuite.js";
import { decodeExact } from "./codec.js";
import { leafCredential } from "./credential.js";

export interface CommitDevice {
  user: UserHandle;
  device: DeviceId;
  signaturePublicKey: Uint8Array;
}

export type CommitInspection =
  | {
      ok: true;
      epoch: bigint;
      /** `member`: an existing member committed from `leafIndex`; `external`: a joiner's external commit. */
      sender: CommitDevice & { kind: "member" | "external"; leafIndex: number };
      /** Devices that have a leaf after the commit and had none before, with the key in their new leaf. */
      added: CommitDevice[];
      /** Devices that had a leaf before the commit and have none after. */
      removed: DeviceId[];
    }
  | { ok: false; reason: string };

function parseGroupInfo(bytes: Uint8Array): GroupInfo | null {
  const msg = decodeExact(decodeMlsMessage, bytes);
  if (msg === null || msg.version !== "mls10" || msg.wireformat !== "mls_group_info") return null;
  if (msg.groupInfo.groupContext.cipherSuite !== DEFAULT_CIPHERSUITE) return null;
  return msg.groupInfo;
}

function treeOf(gi: GroupInfo): RatchetTree | null {
  try {
    return ratchetTreeFromExtension(gi) ?? null;
  } catch {
    return null;
  }
}

function leaves(tree: RatchetTree): Map<number, LeafNode> {
  const out = new Map<number, LeafNode>();
  for (let i = 0; i < tree.length; i += 2) {
    const n = tree[i];
    if (n?.nodeType === "leaf") out.set(i / 2, n.leaf);
  }
  return out;
}

export async function inspectCommit(
  commitBytes: Uint8Array,
  currentGroupInfo: Uint8Array | null,
  nextGroupInfo: Uint8Array,
  provider?: CryptoProvider,
): Promise<CommitInspection> {
  try {
    return await inspect(commitBytes, currentGroupInfo, nextGroupInfo, provider);
  } catch (e) {
    return { ok: false, reason: `malformed commit or group info (${e instanceof Error ? e.message : String(e)})` };
  }
}

async function inspect(
  commitBytes: Uint8Array,
  currentGroupInfo: Uint8Array | null,
  nextGroupInfo: Uint8Array,
  provider?: CryptoProvider,
): Promise<CommitInspection> {
  const fail = (reason: string): CommitInspection => ({ ok: false, reason });
  const msg = decodeExact(decodeMlsMessage, commitBytes);
  if (msg === null || msg.version !== "mls10") return fail("not an MLS message");
  if (msg.wireformat !== "mls_public_message") return fail("a commit must be sent as an MLS PublicMessage");
  const pm = msg.publicMessage;
  const content = pm.content;
  if (content.contentType !== "commit" || pm.auth.contentType !== "commit") return fail("not a commit");
  const auth = pm.auth;
  const cs = await suiteImpl(provider);

  const current = currentGroupInfo === null ? null : parseGroupInfo(currentGroupInfo);
  if (currentGroupInfo !== null && current === null) return fail("stored group info is unreadable");
  const before = current === null ? null : treeOf(current);
  if (current !== null && before === null) return fail("stored group info carries no ratchet tree");
  if (current === null && content.epoch !== 0n) return fail("no group info for this epoch");
  if (current !== null) {
    if (!equalBytes(current.groupContext.groupId, content.groupId)) return fail("commit is for another group");
    if (current.groupContext.epoch !== content.epoch) return fail("commit is not for the current epoch");
  }
  const oldLeaves = before === null ? new Map<number, LeafNode>() : leaves(before);

  // The proposals, by value only.
  const addLeaves: LeafNode[] = [];
  const removeIdx: number[] = [];
  let externalInit = 0;
  for (const p of content.commit.proposals) {
    if (p.proposalOrRefType !== "proposal") return fail("proposals by reference are not accepted");
    const pr = p.proposal;
    if (pr.proposalType === "add") addLeaves.push(pr.add.keyPackage.leafNode);
    else if (pr.proposalType === "remove") removeIdx.push(pr.remove.removed);
    else if (pr.proposalType === "external_init") externalInit++;
    else return fail(`proposal type ${String(pr.proposalType)} is not accepted`);
  }
  if (new Set(removeIdx).size !== removeIdx.length) return fail("a leaf is removed twice");

  // The sender, and its signature over the stored GroupContext.
  let sender: (CommitDevice & { kind: "member" | "external"; leafIndex: number }) | null = null;
  const sigCheck = async (key: Uint8Array) =>
    current === null ||
    (await verifyFramedContentSignature(key, "mls_public_message", content, auth, current.groupContext, cs.signature));
  const next = parseGroupInfo(nextGroupInfo);
  if (next === null) return fail("next group info is not an MLS GroupInfo of our ciphersuite");
  if (content.sender.senderType === "member") {
    if (externalInit > 0) return fail("ExternalInit in a member's commit");
    const leafIndex = content.sender.leafIndex;
    const leaf = before === null ? null : (oldLeaves.get(leafIndex) ?? null);
    if (before === null) {
      // Epoch 0: the creator alone, at leaf 0; its leaf is known only from the next tree.
      if (leafIndex !== 0) return fail("at epoch 0 only the creator (leaf 0) commits");
      const nl = treeOf(next);
      const l0 = nl === null ? undefined : leaves(nl).get(0);
      const c = l0 === undefined ? null : leafCredential(l0);
      if (c === null) return fail("next tree has no creator leaf");
      sender = { ...c, kind: "member", leafIndex };
    } else {
      const c = leaf === null ? null : leafCredential(leaf);
      if (c === null) return fail("commit sender is not a member leaf");
      sender = { ...c, kind: "member", leafIndex };
    }
    if (removeIdx.includes(leafIndex)) return fail("a member cannot commit its own removal");
    if (!(await sigCheck(sender.signaturePublicKey))) return fail("commit signature does not verify");
  } else if (content.sender.senderType === "new_member_commit") {
    // External commit (§12.4.3.2): one ExternalInit, a path whose leaf is the joiner's, no Add; it may remove only
    // the joiner's own old leaf (resync).
    if (current === null) return fail("no external commit before the first commit");
    if (externalInit !== 1 || addLeaves.length > 0) return fail("malformed external commit");
    const path = content.commit.path;
    if (path === undefined) return fail("external commit without an update path");
    const c = leafCredential(path.leafNode);
    if (c === null) return fail("external joiner is not a device credential");
    if (!(await sigCheck(c.signaturePublicKey))) return fail("commit signature does not verify");
    for (const i of removeIdx) {
      const old = oldLeaves.get(i);
      const oc = old === undefined ? null : leafCredential(old);
      if (oc === null || oc.device !== c.device || !equalBytes(oc.signaturePublicKey, c.signaturePublicKey))
        return fail("an external commit may remove only the joiner's own old leaf");
    }
    sender = { ...c, kind: "external", leafIndex: -1 };
  } else return fail(`commit sender type ${content.sender.senderType} is not accepted`);

  for (const i of removeIdx) if (!oldLeaves.has(i)) return fail(`removed leaf ${i} is not a member`);

  // The next GroupInfo: bound to this commit and to the stored tree.
  const after = treeOf(next);
  if (after === null) return fail("next group info carries no ratchet tree");
  if (!equalBytes(next.groupContext.groupId, content.groupId)) return fail("next group info is for another group");
  if (next.groupContext.epoch !== content.epoch + 1n) return fail("next group info is not for the next epoch");
  if (!equalBytes(await treeHashRoot(after, cs.hash), next.groupContext.treeHash))
    return fail("next group info's tree does not match its tree hash");
  if (!equalBytes(next.confirmationTag, auth.confirmationTag))
    return fail("next group info's confirmation tag is not the commit's");
  if (current !== null) {
    const interim = await createInterimHash(
      current.groupContext.confirmedTranscriptHash,
      current.confirmationTag,
      cs.hash,
    );
    const confirmed = await createConfirmedHash(
      interim,
      { wireformat: "mls_public_message", content, signature: auth.signature },
      cs.hash,
    );
    if (!equalBytes(confirmed, next.groupContext.confirmedTranscriptHash))
      return fail("next group info's transcript hash does not include this commit");
  }
  const newLeaves = leaves(after);
  const signerLeaf = newLeaves.get(next.signer);
  const signerCred = signerLeaf === undefined ? null : leafCredential(signerLeaf);
  if (
    signerCred === null ||
    signerCred.device !== sender.device ||
    !equalBytes(signerCred.signaturePublicKey, sender.signaturePublicKey)
  )
    return fail("next group info is not signed by the committer's leaf");
  if (!(await verifyGroupInfoSignature(next, sender.signaturePublicKey, cs.signature)))
    return fail("next group info's signature does not verify");
  if (sender.kind === "member" && next.signer !== sender.leafIndex) return fail("the committer moved to another leaf");

  // The tree after = the tree before with exactly these changes (epoch 0: the creator alone before).
  const oldDevices = new Map<number, { device: DeviceId; key: Uint8Array }>();
  if (before === null) oldDevices.set(0, { device: sender.device, key: sender.signaturePublicKey });
  for (const [i, l] of oldLeaves) {
    const c = leafCredential(l);
    if (c === null) return fail(`stored tree has a foreign leaf at ${i}`);
    oldDevices.set(i, { device: c.device, key: c.signaturePublicKey });
  }
  const kept = new Set([...oldDevices.keys()].filter((i) => !removeIdx.includes(i)));
  for (const i of kept) {
    const nl = newLeaves.get(i);
    const c = nl === undefined ? null : leafCredential(nl);
    const o = oldDevices.get(i)!;
    if (c === null || c.device !== o.device || !equalBytes(c.signaturePublicKey, o.key))
      return fail(`next tree changed the member at leaf ${i}`);
  }
  const expectedNew = addLeaves.map((l) => leafCredential(l));
  if (expectedNew.some((c) => c === null)) return fail("an added key package is not a device credential");
  if (sender.kind === "external") expectedNew.push(sender);
  const fresh = [...newLeaves.entries()].filter(([i]) => !kept.has(i));
  if (fresh.length !== expectedNew.length) return fail("next tree does not hold exactly the added leaves");
  const freshCreds: CommitDevice[] = [];
  for (const [i, l] of fresh) {
    const c = leafCredential(l);
    if (c === null) return fail(`next tree has a foreign leaf at ${i}`);
    freshCreds.push(c);
  }
  const key = (c: { device: string; signaturePublicKey: Uint8Array }) => `${c.device}/${toHex(c.signaturePublicKey)}`;
  const a = freshCreds.map(key).sort();
  const b = expectedNew.map((c) => key(c!)).sort();
  if (a.some((x, i) => x !== b[i])) return fail("next tree's new leaves are not the added ones");

  const beforeSet = new Set([...oldDevices.values()].map((d) => d.device));
  const afterSet = new Set([...newLeaves.values()].map((l) => leafCredential(l)!.device));
  const added: CommitDevice[] = [];
  const seen = new Set<string>();
  for (const c of freshCreds)
    if (!beforeSet.has(c.device) && !seen.has(c.device)) {
      seen.add(c.device);
      added.push(c);
    }
  const removed = [...beforeSet].filter((d) => !afterSet.has(d));
  return { ok: true, epoch: content.epoch, sender, added, removed };
}

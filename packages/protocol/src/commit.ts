/**
 * Creating groups and commits (RFC 9420 §12.4). Every device we add passes the door before anything is encrypted to
 * it, and the current members pass it before we encrypt path secrets to them.
 *
 * Commits go out as PublicMessage (§6.2): the server reads their proposals and sender and derives membership changes
 * from what it can verify (inspect-commit.ts), never from the committer's claim (issue 13 finding 6). It learns only
 * what it knows anyway — who is a member; the UpdatePath carries public keys and HPKE ciphertexts only. External
 * commits are PublicMessage anyway (§12.4.3.2).
 */
import { ValiseError } from "@valise/core";
import type { DeviceId } from "@valise/core";
import {
  createCommit,
  createGroup as mlsCreateGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  defaultCapabilities,
  encodeMlsMessage,
  generateKeyPackageWithKey,
} from "ts-mls";
import type { CiphersuiteImpl, ClientState, CreateCommitResult, Proposal } from "ts-mls";
import { suiteImpl } from "./ciphersuite.js";
import type { GroupContext } from "./context.js";
import { encodeCredentialIdentity, leafCredential } from "./credential.js";
import { guarded } from "./errors.js";
import { clientConfig, clientState, groupLeaves, groupState, wrapGroup } from "./group.js";
import type { Group } from "./group.js";
import { parseKeyPackageMessage } from "./keyPackages.js";
import { DoorCheck } from "./verifier.js";

export interface CommitOutput {
  group: Group;
  commit: Uint8Array;
  welcome?: Uint8Array;
  groupInfo: Uint8Array;
  added: DeviceId[];
  removed: DeviceId[];
}

/** A fresh leaf for ourselves (a key package that is never uploaded). */
export async function ownKeyPackage(ctx: GroupContext, cs: CiphersuiteImpl) {
  const credential = {
    credentialType: "basic" as const,
    identity: encodeCredentialIdentity(ctx.keys.user, ctx.keys.device),
  };
  const now = BigInt(Math.floor(Date.now() / 1000));
  return generateKeyPackageWithKey(
    credential,
    defaultCapabilities(),
    { notBefore: now - 3600n, notAfter: now + 60n * 86400n },
    [],
    { signKey: ctx.keys.signaturePrivateKey, publicKey: ctx.keys.signaturePublicKey },
    cs,
  );
}

export async function createGroup(ctx: GroupContext, groupId: Uint8Array): Promise<Group> {
  if (groupId.length === 0 || groupId.length > 255)
    throw new ValiseError("bad_request", "group id must be 1..255 bytes");
  const door = new DoorCheck(ctx.verifier);
  return guarded(door, "createGroup", async () => {
    const cs = await suiteImpl(ctx.crypto);
    const own = await ownKeyPackage(ctx, cs);
    const state = await mlsCreateGroup(groupId, own.publicPackage, own.privatePackage, [], cs, clientConfig(door));
    return wrapGroup(state);
  });
}

/** GroupInfo with external_pub and the ratchet tree (§12.4.3), for external rejoin, as an encoded MLSMessage. */
export async function groupInfoMessage(state: ClientState, cs: CiphersuiteImpl): Promise<Uint8Array> {
  const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(state, [], cs);
  return encodeMlsMessage({ version: "mls10", wireformat: "mls_group_info", groupInfo });
}

async function commit(
  ctx: GroupContext,
  g: Group,
  door: DoorCheck,
  proposals: Proposal[],
  added: DeviceId[],
  removed: DeviceId[],
): Promise<CommitOutput> {
  const cs = await suiteImpl(ctx.crypto);
  const state = clientState(g, door);
  // We encrypt path secrets to every member that stays: each must pass the door (cached per tree). Members this
  // commit removes get nothing from it, so they are not asked about (a revoked device would fail).
  const leaving = new Set<number>();
  for (const p of proposals) if (p.proposalType === "remove") leaving.add(p.remove.removed);
  await door.requireTree(state.ratchetTree, "commit to group", leaving);
  const r: CreateCommitResult = await createCommit(
    { state, cipherSuite: cs },
    // The Welcome carries the ratchet tree (§12.4.3.3) so joiners need nothing from the server but the Welcome.
    { extraProposals: proposals, ratchetTreeExtension: true, wireAsPublicMessage: true },
  );
  // The new tree holds only members that passed (old members plus the added ones we just checked).
  door.markTree(r.newState.ratchetTree);
  const out: CommitOutput = {
    group: wrapGroup(r.newState),
    commit: encodeMlsMessage(r.commit),
    groupInfo: await groupInfoMessage(r.newState, cs),
    added,
    removed,
  };
  if (r.welcome !== undefined)
    out.welcome = encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: r.welcome });
  return out;
}

export async function addDevices(ctx: GroupContext, g: Group, keyPackages: Uint8Array[]): Promise<CommitOutput> {
  if (keyPackages.length === 0) throw new ValiseError("bad_request", "addDevices: no key packages");
  const door = new DoorCheck(ctx.verifier);
  const parsed = keyPackages.map((b, i) => {
    const kp = parseKeyPackageMessage(b);
    if (kp === null) throw new ValiseError("protocol_error", `addDevices: key package ${i} is not a valid key package`);
    return kp;
  });
  // The door FIRST, before any MLS processing or encryption to the new device.
  const creds = await Promise.all(parsed.map((kp) => door.require(leafCredential(kp.leafNode), "addDevices")));
  const proposals: Proposal[] = parsed.map((keyPackage) => ({ proposalType: "add", add: { keyPackage } }));
  return guarded(door, "addDevices", () =>
    commit(
      ctx,
      g,
      door,
      proposals,
      creds.map((c) => c.device),
      [],
    ),
  );
}

export async function removeDevices(ctx: GroupContext, g: Group, devices: DeviceId[]): Promise<CommitOutput> {
  if (devices.length === 0) throw new ValiseError("bad_request", "removeDevices: no devices");
  const door = new DoorCheck(ctx.verifier);
  const state = groupState(g);
  const self = state.privatePath.leafIndex;
  const proposals: Proposal[] = [];
  const removed: DeviceId[] = [];
  for (const device of new Set(devices)) {
    const leaves = groupLeaves(state).filter(([, leaf]) => leafCredential(leaf)?.device === device);
    if (leaves.length === 0) throw new ValiseError("not_found", `removeDevices: ${device} is not in the group`);
    for (const [leafIndex] of leaves) {
      // RFC 9420 §12.1.3: a member cannot commit its own removal; leaving is a proposal for someone else to commit.
      if (leafIndex === self) throw new ValiseError("bad_request", "removeDevices: cannot remove our own device");
      proposals.push({ proposalType: "remove", remove: { removed: leafIndex } });
    }
    removed.push(device);
  }
  return guarded(door, "removeDevices", () => commit(ctx, g, door, proposals, [], removed));
}

/** An empty commit with a fresh UpdatePath (RFC 9420 §12.4: path required when there are no proposals): PCS. */
export async function updateKeys(ctx: GroupContext, g: Group): Promise<CommitOutput> {
  const door = new DoorCheck(ctx.verifier);
  return guarded(door, "updateKeys", () => commit(ctx, g, door, [], [], []));
}

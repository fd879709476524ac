/**
 * Group state as an opaque, immutable value: every operation takes a Group and returns a new one (state in, state
 * out). The value wraps ts-mls's GroupState; the ClientConfig (which carries the verifier) is attached per call.
 */
import { ValiseError } from "@valise/core";
import { decodeGroupState, encodeGroupState } from "ts-mls";
import type { ClientConfig, ClientState, GroupState, LeafNode } from "ts-mls";
import { defaultKeyPackageEqualityConfig, defaultKeyRetentionConfig, defaultPaddingConfig } from "ts-mls";
import { decodeExact, packFields, unpackFields } from "./codec.js";
import { leafCredential } from "./credential.js";
import type { DeviceCredential } from "./credential.js";
import { DEFAULT_CIPHERSUITE } from "./ciphersuite.js";
import type { DoorCheck } from "./verifier.js";

export interface Group {
  readonly groupId: Uint8Array;
  readonly epoch: bigint;
}

class GroupValue implements Group {
  constructor(readonly state: GroupState) {
    Object.freeze(this);
  }
  get groupId(): Uint8Array {
    return this.state.groupContext.groupId.slice();
  }
  get epoch(): bigint {
    return this.state.groupContext.epoch;
  }
}

export function wrapGroup(state: GroupState | ClientState): Group {
  // Drop the per-call ClientConfig so no verifier outlives the call that supplied it.
  const { groupContext, keySchedule, secretTree, ratchetTree, privatePath, signaturePrivateKey } = state;
  const { unappliedProposals, confirmationTag, historicalReceiverData, groupActiveState } = state;
  return new GroupValue({
    groupContext,
    keySchedule,
    secretTree,
    ratchetTree,
    privatePath,
    signaturePrivateKey,
    unappliedProposals,
    confirmationTag,
    historicalReceiverData,
    groupActiveState,
  });
}

export function groupState(g: Group): GroupState {
  if (!(g instanceof GroupValue)) throw new ValiseError("protocol_error", "not a Group value");
  return g.state;
}

/** Out-of-order tolerance for application messages (RFC 9420 §9.2 leaves the policy to the application). */
export const KEY_RETENTION = { ...defaultKeyRetentionConfig, maximumForwardRatchetSteps: 1000 };

export function clientConfig(door: DoorCheck): ClientConfig {
  return {
    keyRetentionConfig: KEY_RETENTION,
    // Key packages live 60 days; accept up to 90. The committer checks the lifetime of a key package it adds
    // (RFC 9420 §7.2). Receivers do not: a member's leaf keeps its key-package lifetime until it updates, so checking
    // it when validating a whole tree (§12.4.3.1) would lock joiners out of long-lived groups.
    lifetimeConfig: { maximumTotalLifetime: 90n * 86400n, validateLifetimeOnReceive: false },
    keyPackageEqualityConfig: defaultKeyPackageEqualityConfig,
    // Pad short PrivateMessage contents to 256 bytes (RFC 9420 §6.3.1 padding).
    paddingConfig: defaultPaddingConfig,
    authService: door,
  };
}

export function clientState(g: Group, door: DoorCheck): ClientState {
  return { ...groupState(g), clientConfig: clientConfig(door) };
}

/** For the local store. The encoding holds the group's secrets and the device's signature key: store it encrypted. */
export function encodeGroup(g: Group): Uint8Array {
  return packFields("vgs1", [encodeGroupState(groupState(g))]);
}

export function decodeGroup(b: Uint8Array): Group {
  const [body] = unpackFields("vgs1", 1, b, "group state") as [Uint8Array];
  const state = decodeExact(decodeGroupState, body);
  if (state === null || state.groupContext.cipherSuite !== DEFAULT_CIPHERSUITE)
    throw new ValiseError("protocol_error", "group state: malformed encoding");
  return new GroupValue(state);
}

/** Current leaves with their credentials, in leaf order. Leaves that are not Valise credentials are skipped. */
export function groupMembers(g: Group): DeviceCredential[] {
  return groupLeaves(groupState(g)).flatMap(([, leaf]) => {
    const c = leafCredential(leaf);
    return c === null ? [] : [c];
  });
}

/** [leafIndex, leaf] of every non-blank leaf. */
export function groupLeaves(state: Pick<GroupState, "ratchetTree">): [number, LeafNode][] {
  const out: [number, LeafNode][] = [];
  const tree = state.ratchetTree;
  for (let i = 0; i < tree.length; i += 2) {
    const n = tree[i];
    if (n?.nodeType === "leaf") out.push([i / 2, n.leaf]);
  }
  return out;
}

export function leafAt(state: Pick<GroupState, "ratchetTree">, leafIndex: number): LeafNode | undefined {
  const n = state.ratchetTree[leafIndex * 2];
  return n?.nodeType === "leaf" ? n.leaf : undefined;
}

export function ownLeafIndex(g: Group): number {
  return groupState(g).privatePath.leafIndex;
}

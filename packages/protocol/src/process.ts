/**
 * Processing incoming group messages. Handshake messages pass the door: the sender of a commit and every credential
 * that a commit or proposal brings into the tree (adds, updates, an external joiner) must be accepted by the
 * verifier, or the message is refused with ValiseError("device_not_verified") and the caller keeps its old state.
 */
import { ValiseError, equalBytes } from "@valise/core";
import type { DeviceId } from "@valise/core";
import { decodeMlsMessage, emptyPskIndex, processMessage as mlsProcessMessage } from "ts-mls";
import type { ClientState, ProposalWithSender } from "ts-mls";
import { decryptApplication } from "./application.js";
import { suiteImpl } from "./ciphersuite.js";
import { decodeExact } from "./codec.js";
import type { GroupContext } from "./context.js";
import { leafCredential } from "./credential.js";
import type { DeviceCredential } from "./credential.js";
import { guarded } from "./errors.js";
import { clientState, groupLeaves, leafAt, wrapGroup } from "./group.js";
import type { Group } from "./group.js";
import { DoorCheck } from "./verifier.js";

export type Incoming =
  | { kind: "application"; group: Group; sender: DeviceCredential; plaintext: Uint8Array; aad: Uint8Array }
  | {
      kind: "commit";
      group: Group;
      sender: DeviceCredential | null;
      added: DeviceId[];
      removed: DeviceId[];
      removedSelf: boolean;
    }
  | { kind: "proposal"; group: Group };

export async function processMessage(ctx: GroupContext, g: Group, message: Uint8Array): Promise<Incoming> {
  const door = new DoorCheck(ctx.verifier);
  const msg = decodeExact(decodeMlsMessage, message);
  if (msg === null || msg.version !== "mls10") throw new ValiseError("protocol_error", "not a well-formed MLS message");
  if (msg.wireformat !== "mls_private_message" && msg.wireformat !== "mls_public_message")
    throw new ValiseError("protocol_error", `processMessage: unexpected ${msg.wireformat}`);
  const state = clientState(g, door);
  const groupId =
    msg.wireformat === "mls_private_message" ? msg.privateMessage.groupId : msg.publicMessage.content.groupId;
  // RFC 9420 §6: a message for another group is not ours to process.
  if (!equalBytes(groupId, state.groupContext.groupId))
    throw new ValiseError("protocol_error", "processMessage: message is for another group");
  return guarded(door, "processMessage", async () => {
    const cs = await suiteImpl(ctx.crypto);
    if (msg.wireformat === "mls_private_message" && msg.privateMessage.contentType === "application") {
      const r = await decryptApplication(state, msg.privateMessage, cs);
      return { kind: "application", group: wrapGroup(r.state), sender: r.sender, plaintext: r.plaintext, aad: r.aad };
    }
    // RFC 9420 §6.2: application data is never sent as PublicMessage.
    if (msg.wireformat === "mls_public_message" && msg.publicMessage.content.contentType === "application")
      throw new ValiseError("protocol_error", "application data in a PublicMessage");

    const captured: { commit?: SeenCommit; proposal?: ProposalWithSender } = {};
    const r = await mlsProcessMessage(
      msg,
      state,
      emptyPskIndex,
      (incoming) => {
        if (incoming.kind === "commit") captured.commit = incoming;
        else captured.proposal = incoming.proposal;
        return "accept";
      },
      cs,
    );
    if (r.kind === "applicationMessage") throw new ValiseError("protocol_error", "unexpected application message");
    const next = r.newState;
    const seen = captured.commit;
    if (captured.proposal !== undefined) {
      const p = captured.proposal.proposal;
      // An Add proposal (from a member or the server as external sender) must name a verified device.
      if (p.proposalType === "add") await door.require(leafCredential(p.add.keyPackage.leafNode), "add proposal");
      if (p.proposalType === "update") await door.require(leafCredential(p.update.leafNode), "update proposal");
      return { kind: "proposal", group: wrapGroup(next) };
    }
    if (seen === undefined) throw new ValiseError("protocol_error", "processMessage: no commit or proposal seen");
    return { kind: "commit", ...(await checkCommit(door, state, next, seen)), group: wrapGroup(next) };
  });
}

interface SeenCommit {
  senderLeafIndex: number | undefined;
  proposals: ProposalWithSender[];
}

/** Leaves of `after` that are not the very same leaf as in `before`: added, updated, replaced or re-joined. */
function changedLeaves(
  before: ClientState,
  after: ClientState,
): { leafIndex: number; cred: DeviceCredential | null }[] {
  return groupLeaves(after)
    .filter(([i, leaf]) => leafAt(before, i) !== leaf)
    .map(([leafIndex, leaf]) => ({ leafIndex, cred: leafCredential(leaf) }));
}

async function checkCommit(
  door: DoorCheck,
  before: ClientState,
  after: ClientState,
  seen: SeenCommit,
): Promise<{ sender: DeviceCredential | null; added: DeviceId[]; removed: DeviceId[]; removedSelf: boolean }> {
  const removedSelf = after.groupActiveState.kind === "removedFromGroup";
  // Every credential that is new in the tree (added, updated, or an external joiner) must pass the door.
  const changed = changedLeaves(before, after);
  await door.requireAll(
    changed.map((c) => c.cred),
    "commit",
  );
  // The committer must pass too: a member by its (old) leaf, an external joiner (§12.4.3.2) by its new leaf.
  let sender: DeviceCredential | null;
  if (seen.senderLeafIndex !== undefined) {
    const leaf = leafAt(before, seen.senderLeafIndex);
    sender = await door.require(leaf === undefined ? null : leafCredential(leaf), "commit sender");
  } else {
    // An external commit carries no Add proposals (§12.2), so the one changed leaf is the joiner's.
    const joiner = changed.length === 1 ? changed[0] : undefined;
    if (joiner === undefined) throw new ValiseError("protocol_error", "external commit without exactly one new leaf");
    sender = await door.require(joiner.cred, "external commit sender");
  }
  if (door.isTreeVerified(before.ratchetTree) && !removedSelf) door.markTree(after.ratchetTree);

  const added: DeviceId[] = [];
  const removed: DeviceId[] = [];
  for (const { proposal } of seen.proposals) {
    if (proposal.proposalType === "add") {
      const c = leafCredential(proposal.add.keyPackage.leafNode);
      if (c !== null) added.push(c.device);
    } else if (proposal.proposalType === "remove") {
      const leaf = leafAt(before, proposal.remove.removed);
      const c = leaf === undefined ? null : leafCredential(leaf);
      if (c !== null) removed.push(c.device);
    }
  }
  if (seen.senderLeafIndex === undefined && sender !== null && !added.includes(sender.device))
    added.push(sender.device);
  return { sender, added, removed, removedSelf };
}

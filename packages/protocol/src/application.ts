/**
 * Application messages (RFC 9420 §6.3): always PrivateMessage, with the caller's `aad` as authenticated_data, which
 * is bound into the content AEAD (PrivateContentAAD, §6.3.1) and into the signed FramedContent (§6.1).
 */
import { ValiseError } from "@valise/core";
import { createApplicationMessage, encodeMlsMessage } from "ts-mls";
import type { CiphersuiteImpl, ClientState, PrivateMessage } from "ts-mls";
import { unprotectPrivateMessage, addToMap } from "./ts-mls-internals.js";
import { suiteImpl } from "./ciphersuite.js";
import type { GroupContext } from "./context.js";
import { leafCredential } from "./credential.js";
import type { DeviceCredential } from "./credential.js";
import { guarded } from "./errors.js";
import { clientState, leafAt, wrapGroup } from "./group.js";
import type { Group } from "./group.js";
import { DoorCheck } from "./verifier.js";

export async function encryptMessage(
  ctx: GroupContext,
  g: Group,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Promise<{ group: Group; message: Uint8Array }> {
  const door = new DoorCheck(ctx.verifier);
  return guarded(door, "encryptMessage", async () => {
    const cs = await suiteImpl(ctx.crypto);
    const state = clientState(g, door);
    // Sending to a group = encrypting to every member: each must have passed the door (cached per epoch's tree).
    await door.requireTree(state.ratchetTree, "encryptMessage");
    const r = await createApplicationMessage(state, plaintext, cs, aad);
    return {
      group: wrapGroup(r.newState),
      message: encodeMlsMessage({
        version: "mls10",
        wireformat: "mls_private_message",
        privateMessage: r.privateMessage,
      }),
    };
  });
}

export interface ApplicationResult {
  state: ClientState;
  sender: DeviceCredential;
  plaintext: Uint8Array;
  aad: Uint8Array;
}

/**
 * Decrypt an application PrivateMessage of the current or a retained past epoch (as ts-mls's processPrivateMessage
 * does, but also returning the sender, whose signature over the content has been verified, §6.1).
 * Replays fail: the generation's key is deleted once used (§9.2).
 */
export async function decryptApplication(
  state: ClientState,
  pm: PrivateMessage,
  cs: CiphersuiteImpl,
): Promise<ApplicationResult> {
  const epoch = state.groupContext.epoch;
  if (pm.epoch > epoch)
    throw new ValiseError("protocol_error", `message for future epoch ${pm.epoch} (we are at ${epoch})`);
  if (pm.epoch === epoch) {
    const r = await unprotectPrivateMessage(
      state.keySchedule.senderDataSecret,
      pm,
      state.secretTree,
      state.ratchetTree,
      state.groupContext,
      state.clientConfig.keyRetentionConfig,
      cs,
    );
    return finish({ ...state, secretTree: r.tree }, r.content, state.ratchetTree, pm);
  }
  const old = state.historicalReceiverData.get(pm.epoch);
  if (old === undefined) throw new ValiseError("protocol_error", `message for epoch ${pm.epoch} is too old`);
  const r = await unprotectPrivateMessage(
    old.senderDataSecret,
    pm,
    old.secretTree,
    old.ratchetTree,
    old.groupContext,
    state.clientConfig.keyRetentionConfig,
    cs,
  );
  const historicalReceiverData = addToMap(state.historicalReceiverData, pm.epoch, { ...old, secretTree: r.tree });
  return finish({ ...state, historicalReceiverData }, r.content, old.ratchetTree, pm);
}

function finish(
  state: ClientState,
  content: Awaited<ReturnType<typeof unprotectPrivateMessage>>["content"],
  tree: ClientState["ratchetTree"],
  pm: PrivateMessage,
): ApplicationResult {
  const c = content.content;
  if (c.contentType !== "application" || c.sender.senderType !== "member")
    throw new ValiseError("protocol_error", "expected an application message from a member");
  const leaf = leafAt({ ratchetTree: tree }, c.sender.leafIndex);
  const sender = leaf === undefined ? null : leafCredential(leaf);
  if (sender === null) throw new ValiseError("protocol_error", "application message from an unknown sender");
  return { state, sender, plaintext: c.applicationData, aad: pm.authenticatedData };
}

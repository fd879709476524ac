/**
 * Joining a group: from a Welcome (RFC 9420 §12.4.3.1) or, for a device that lost its state, by external commit
 * with resync (§12.4.3.2). Either way every member of the tree passes the door before we accept the group or encrypt
 * anything to it.
 */
import { ValiseError, equalBytes, toHex } from "@valise/core";
import { decodeMlsMessage, emptyPskIndex, encodeMlsMessage, joinGroup, joinGroupExternal } from "ts-mls";
import type { KeyPackage, PrivateKeyPackage, Welcome } from "ts-mls";
import { ratchetTreeFromExtension, makeKeyPackageRef } from "./ts-mls-internals.js";
import { DEFAULT_CIPHERSUITE, suiteImpl } from "./ciphersuite.js";
import { decodeExact } from "./codec.js";
import { groupInfoMessage, ownKeyPackage } from "./commit.js";
import type { GroupContext } from "./context.js";
import { guarded } from "./errors.js";
import { clientConfig, groupLeaves, wrapGroup } from "./group.js";
import type { Group } from "./group.js";
import { decodeKeyPackageBundle } from "./keyPackages.js";
import type { KeyPackageBundle } from "./keyPackages.js";
import { DoorCheck } from "./verifier.js";

function parseWelcome(bytes: Uint8Array): Welcome {
  const msg = decodeExact(decodeMlsMessage, bytes);
  if (msg === null || msg.version !== "mls10" || msg.wireformat !== "mls_welcome")
    throw new ValiseError("protocol_error", "not an MLS Welcome");
  if (msg.welcome.cipherSuite !== DEFAULT_CIPHERSUITE)
    throw new ValiseError("protocol_error", "Welcome: wrong ciphersuite");
  return msg.welcome;
}

export async function joinFromWelcome(
  ctx: GroupContext,
  welcome: Uint8Array,
  ourKeyPackages: KeyPackageBundle[],
): Promise<{ group: Group; usedRef: string }> {
  const door = new DoorCheck(ctx.verifier, { tolerateRevoked: true });
  const w = parseWelcome(welcome);
  return guarded(door, "joinFromWelcome", async () => {
    const cs = await suiteImpl(ctx.crypto);
    // RFC 9420 §12.4.3.1: find the EncryptedGroupSecrets whose new_member is the ref of one of our key packages.
    let mine: { ref: string; kp: KeyPackage; priv: PrivateKeyPackage } | undefined;
    for (const b of ourKeyPackages) {
      const { publicPackage, privatePackage } = decodeKeyPackageBundle(b, ctx.keys);
      const ref = await makeKeyPackageRef(publicPackage, cs.hash);
      if (w.secrets.some((s) => equalBytes(s.newMember, ref))) {
        mine = { ref: toHex(ref), kp: publicPackage, priv: privatePackage };
        break;
      }
    }
    if (mine === undefined)
      throw new ValiseError("not_found", "joinFromWelcome: none of our key packages is addressed");
    if (!equalBytes(mine.kp.leafNode.signaturePublicKey, ctx.keys.signaturePublicKey))
      throw new ValiseError("protocol_error", "joinFromWelcome: key package is not this device's");
    // ts-mls validates the tree (§12.4.3.1) and asks the door for every leaf through the AuthenticationService.
    const state = await joinGroup(w, mine.kp, mine.priv, emptyPskIndex, cs, undefined, undefined, clientConfig(door));
    // And the explicit door: every member (cached from the calls above, so the verifier is asked once each).
    await door.requireTree(state.ratchetTree, "joinFromWelcome");
    return { group: wrapGroup(state), usedRef: mine.ref };
  });
}

export async function externalRejoin(
  ctx: GroupContext,
  groupInfo: Uint8Array,
): Promise<{ group: Group; commit: Uint8Array; groupInfo: Uint8Array }> {
  const door = new DoorCheck(ctx.verifier);
  const msg = decodeExact(decodeMlsMessage, groupInfo);
  if (msg === null || msg.version !== "mls10" || msg.wireformat !== "mls_group_info")
    throw new ValiseError("protocol_error", "not an MLS GroupInfo");
  const gi = msg.groupInfo;
  if (gi.groupContext.cipherSuite !== DEFAULT_CIPHERSUITE)
    throw new ValiseError("protocol_error", "GroupInfo: wrong ciphersuite");
  return guarded(door, "externalRejoin", async () => {
    const cs = await suiteImpl(ctx.crypto);
    const tree = ratchetTreeFromExtension(gi);
    if (tree === undefined) throw new ValiseError("protocol_error", "GroupInfo carries no ratchet tree");
    // We are about to encrypt to every member: all must pass the door first. (ts-mls then checks the tree hash
    // against the signed GroupContext, §12.4.3.1, and the GroupInfo signature, §12.4.3.)
    await door.requireTree(tree, "externalRejoin");
    // Resync (§12.4.3.2): remove our old leaf, found by our signature key, if it is still there.
    const resync = groupLeaves({ ratchetTree: tree }).some(([, leaf]) =>
      equalBytes(leaf.signaturePublicKey, ctx.keys.signaturePublicKey),
    );
    const own = await ownKeyPackage(ctx, cs);
    const r = await joinGroupExternal(
      gi,
      own.publicPackage,
      own.privatePackage,
      resync,
      cs,
      undefined,
      clientConfig(door),
    );
    door.markTree(r.newState.ratchetTree);
    return {
      group: wrapGroup(r.newState),
      commit: encodeMlsMessage({ version: "mls10", wireformat: "mls_public_message", publicMessage: r.publicMessage }),
      groupInfo: await groupInfoMessage(r.newState, cs),
    };
  });
}

/**
 * The one place that imports ts-mls internals (module paths beyond its public entry point, which its 2.0 release
 * closes). Everything else in protocol imports them from here, so a ts-mls upgrade changes this file only.
 */
export { makeGenericHpke } from "ts-mls/crypto/implementation/hpke.js";
export { unprotectPrivateMessage } from "ts-mls/messageProtection.js";
export { addToMap } from "ts-mls/util/addToMap.js";
export { verifyFramedContentSignature } from "ts-mls/framedContent.js";
export { ratchetTreeFromExtension, verifyGroupInfoSignature } from "ts-mls/groupInfo.js";
export { treeHashRoot } from "ts-mls/treeHash.js";
export { createConfirmedHash, createInterimHash } from "ts-mls/transcriptHash.js";
export { decodeKeyPackage, encodeKeyPackage, makeKeyPackageRef, verifyKeyPackage } from "ts-mls/keyPackage.js";
export { verifyLeafNodeSignatureKeyPackage } from "ts-mls/leafNode.js";

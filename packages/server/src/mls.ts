/** The production ServerMls: @valise/protocol's bounded parsers, and Ed25519 login signatures with Node's crypto. */
import { createPublicKey, verify as nodeVerify } from "node:crypto";
import { inspectCommit, inspectKeyPackage, inspectMlsMessage } from "@valise/protocol";
import type { ServerMls } from "./http/capabilities.js";

const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

export const protocolServerMls: ServerMls = {
  inspectMlsMessage: (bytes) => inspectMlsMessage(bytes),
  inspectKeyPackage: (bytes) => inspectKeyPackage(bytes),
  inspectCommit: (commit, current, next) => inspectCommit(commit, current, next),
  async verifySignature(publicKey, message, signature) {
    try {
      if (publicKey.length !== 32 || signature.length !== 64) return false;
      const key = createPublicKey({
        key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]),
        format: "der",
        type: "spki",
      });
      return nodeVerify(null, message, key, signature);
    } catch {
      return false;
    }
  },
};

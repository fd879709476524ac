/**
 * What the server needs from the MLS layer, as a small interface (the real one wraps @valise/protocol; tests may
 * substitute). All of these parse attacker-supplied bytes: bounded, and they return null instead of throwing.
 */
export interface MlsHeader {
  wireformat: "public" | "private" | "welcome" | "group_info" | "key_package";
  groupId?: Uint8Array;
  epoch?: bigint;
  contentType?: "application" | "proposal" | "commit";
}
export interface KeyPackageInfo {
  user: string;
  device: string;
  signaturePublicKey: Uint8Array;
  ref: string;
}
export interface ServerMls {
  inspectMlsMessage(bytes: Uint8Array): MlsHeader | null;
  inspectKeyPackage(bytes: Uint8Array): Promise<KeyPackageInfo | null>;
  verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
}

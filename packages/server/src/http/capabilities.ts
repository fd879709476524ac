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
/** A device as a commit names it: its credential and, from real MLS, the signature key in its leaf. */
export interface CommitDeviceInfo {
  user: string;
  device: string;
  /** Always set by the production inspector; null only from test stand-ins that carry no keys. */
  signaturePublicKey: Uint8Array | null;
}
/** What a commit does, derived by the server from what it can verify (see @valise/protocol inspectCommit). */
export type CommitInfo =
  | {
      ok: true;
      sender: CommitDeviceInfo & { kind: "member" | "external" };
      added: CommitDeviceInfo[];
      removed: string[];
    }
  | { ok: false; reason: string };
export interface ServerMls {
  /**
   * The membership change of a commit, verified against the GroupInfo stored for the current epoch (null before the
   * first commit) and the next GroupInfo the committer publishes. Never throws.
   */
  inspectCommit(
    commit: Uint8Array,
    currentGroupInfo: Uint8Array | null,
    nextGroupInfo: Uint8Array,
  ): Promise<CommitInfo>;
  inspectMlsMessage(bytes: Uint8Array): MlsHeader | null;
  inspectKeyPackage(bytes: Uint8Array): Promise<KeyPackageInfo | null>;
  verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
}

/**
 * Device credentials: (user, device, signature key). The first two travel in an MLS basic credential's identity
 * (RFC 9420 §5.3) in one canonical form, "valise/1\n<handle>\n<deviceId>"; the key is the leaf's signature key.
 * Identity bytes are attacker-controlled (they come from key packages and trees): decoding is strict and
 * returns null rather than throwing.
 */
import { fromUtf8, isDeviceId, isUserHandle, utf8 } from "@valise/core";
import type { DeviceId, UserHandle } from "@valise/core";
import type { Credential, LeafNode } from "ts-mls";

export interface DeviceCredential {
  user: UserHandle;
  device: DeviceId;
  signaturePublicKey: Uint8Array;
}

const PREFIX = "valise/1";
/** "valise/1" + 2 separators + a 64-char handle + a 66-char device id. */
export const MAX_IDENTITY_BYTES = 8 + 2 + 64 + 66;

export function encodeCredentialIdentity(user: UserHandle, device: DeviceId): Uint8Array {
  return utf8(`${PREFIX}\n${user}\n${device}`);
}

export function decodeCredentialIdentity(identity: Uint8Array): { user: UserHandle; device: DeviceId } | null {
  if (!(identity instanceof Uint8Array) || identity.length === 0 || identity.length > MAX_IDENTITY_BYTES) return null;
  let text: string;
  try {
    text = fromUtf8(identity);
  } catch {
    return null;
  }
  const parts = text.split("\n");
  if (parts.length !== 3 || parts[0] !== PREFIX) return null;
  const [, user, device] = parts;
  if (!isUserHandle(user) || !isDeviceId(device)) return null;
  return { user, device };
}

/** The DeviceCredential of an MLS credential + signature key, or null if it is not one of ours. */
export function deviceCredentialOf(credential: Credential, signaturePublicKey: Uint8Array): DeviceCredential | null {
  if (credential.credentialType !== "basic") return null;
  const id = decodeCredentialIdentity(credential.identity);
  if (id === null || signaturePublicKey.length !== 32) return null;
  return { user: id.user, device: id.device, signaturePublicKey };
}

export function leafCredential(leaf: LeafNode): DeviceCredential | null {
  return deviceCredentialOf(leaf.credential, leaf.signaturePublicKey);
}

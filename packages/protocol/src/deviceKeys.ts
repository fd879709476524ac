/**
 * A device's long-term Ed25519 signature key pair (RFC 8032), 32-byte raw keys. It signs the device's MLS leaves,
 * key packages and handshake messages, and answers the server API's login challenge.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import type { DeviceId, UserHandle } from "@valise/core";

export interface DeviceKeys {
  user: UserHandle;
  device: DeviceId;
  signaturePublicKey: Uint8Array;
  signaturePrivateKey: Uint8Array;
}

export async function generateDeviceKeys(user: UserHandle, device: DeviceId): Promise<DeviceKeys> {
  const signaturePrivateKey = ed25519.utils.randomSecretKey();
  return { user, device, signaturePublicKey: ed25519.getPublicKey(signaturePrivateKey), signaturePrivateKey };
}

export async function signChallenge(privateKey: Uint8Array, challenge: Uint8Array): Promise<Uint8Array> {
  return ed25519.sign(challenge, privateKey);
}

/** Verification over attacker data: false on any problem, never throws. */
export async function verifyChallenge(publicKey: Uint8Array, challenge: Uint8Array, sig: Uint8Array): Promise<boolean> {
  try {
    if (publicKey.length !== 32 || sig.length !== 64) return false;
    return ed25519.verify(sig, challenge, publicKey, { zip215: false }); // strict RFC 8032 §5.1.7
  } catch {
    return false;
  }
}

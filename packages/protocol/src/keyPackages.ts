/**
 * One-time key packages (RFC 9420 §10). `publicBytes` is an MLSMessage (mls_key_package) for upload to the
 * directory; `privateBytes` a local encoding of the key package with its init and leaf HPKE private keys (the
 * signature key is the device's long-term key and is not copied here).
 */
import { ValiseError, equalBytes, toHex } from "@valise/core";
import type { DeviceId, UserHandle } from "@valise/core";
import { decodeMlsMessage, defaultCapabilities, encodeMlsMessage, generateKeyPackageWithKey } from "ts-mls";
import type { CryptoProvider, KeyPackage, Lifetime, PrivateKeyPackage } from "ts-mls";
import {
  decodeKeyPackage,
  encodeKeyPackage,
  makeKeyPackageRef,
  verifyKeyPackage,
  verifyLeafNodeSignatureKeyPackage,
} from "./ts-mls-internals.js";
import { DEFAULT_CIPHERSUITE, suiteImpl } from "./ciphersuite.js";
import { decodeExact, packFields, unpackFields } from "./codec.js";
import { decodeCredentialIdentity, encodeCredentialIdentity } from "./credential.js";
import type { DeviceKeys } from "./deviceKeys.js";

export interface KeyPackageBundle {
  ref: string;
  publicBytes: Uint8Array;
  privateBytes: Uint8Array;
}

/** Key packages live 60 days (backdated an hour for clock skew); our lifetime config accepts up to 90. */
export const KEY_PACKAGE_LIFETIME_SECONDS = 60n * 86400n;

function lifetimeFrom(nowMs: number): Lifetime {
  const now = BigInt(Math.floor(nowMs / 1000));
  return { notBefore: now - 3600n, notAfter: now + KEY_PACKAGE_LIFETIME_SECONDS };
}

export async function generateKeyPackages(
  keys: DeviceKeys,
  count: number,
  provider?: CryptoProvider,
  nowMs: number = Date.now(),
): Promise<KeyPackageBundle[]> {
  const cs = await suiteImpl(provider);
  const credential = { credentialType: "basic" as const, identity: encodeCredentialIdentity(keys.user, keys.device) };
  const out: KeyPackageBundle[] = [];
  for (let i = 0; i < count; i++) {
    const { publicPackage, privatePackage } = await generateKeyPackageWithKey(
      credential,
      defaultCapabilities(),
      lifetimeFrom(nowMs),
      [],
      { signKey: keys.signaturePrivateKey, publicKey: keys.signaturePublicKey },
      cs,
    );
    out.push({
      ref: toHex(await makeKeyPackageRef(publicPackage, cs.hash)),
      publicBytes: encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: publicPackage }),
      privateBytes: packFields("vkp1", [
        encodeKeyPackage(publicPackage),
        privatePackage.initPrivateKey,
        privatePackage.hpkePrivateKey,
      ]),
    });
  }
  return out;
}

/** Decode our local private encoding; throws ValiseError("protocol_error") on garbage. */
export function decodeKeyPackageBundle(
  b: KeyPackageBundle,
  keys: DeviceKeys,
): { publicPackage: KeyPackage; privatePackage: PrivateKeyPackage } {
  const [kp, initPrivateKey, hpkePrivateKey] = unpackFields("vkp1", 3, b.privateBytes, "key package private") as [
    Uint8Array,
    Uint8Array,
    Uint8Array,
  ];
  const publicPackage = decodeExact(decodeKeyPackage, kp);
  if (publicPackage === null) throw new ValiseError("protocol_error", "key package private: malformed key package");
  return {
    publicPackage,
    privatePackage: { initPrivateKey, hpkePrivateKey, signaturePrivateKey: keys.signaturePrivateKey },
  };
}

/** Parse an MLSMessage that must carry a key package of our ciphersuite; null otherwise. Attacker bytes. */
export function parseKeyPackageMessage(bytes: Uint8Array): KeyPackage | null {
  const msg = decodeExact(decodeMlsMessage, bytes);
  if (msg === null || msg.version !== "mls10" || msg.wireformat !== "mls_key_package") return null;
  if (msg.keyPackage.cipherSuite !== DEFAULT_CIPHERSUITE || msg.keyPackage.version !== "mls10") return null;
  return msg.keyPackage;
}

/**
 * Server side: is this an acceptable upload? Checks the framing, ciphersuite, credential form, the KeyPackage
 * signature (RFC 9420 §10.1) and that init and leaf keys differ. Returns null on any problem; never throws.
 */
export async function inspectKeyPackage(
  bytes: Uint8Array,
  provider?: CryptoProvider,
): Promise<{ user: UserHandle; device: DeviceId; signaturePublicKey: Uint8Array; ref: string } | null> {
  try {
    const kp = parseKeyPackageMessage(bytes);
    if (kp === null) return null;
    const leaf = kp.leafNode;
    if (leaf.leafNodeSource !== "key_package" || leaf.credential.credentialType !== "basic") return null;
    const id = decodeCredentialIdentity(leaf.credential.identity);
    if (id === null || leaf.signaturePublicKey.length !== 32) return null;
    const cs = await suiteImpl(provider);
    // RFC 9420 §10.1: the KeyPackage signature and the leaf node's own signature (§7.2) must verify, and the init
    // key must differ from the leaf's encryption key.
    if (!(await verifyKeyPackage(kp, cs.signature))) return null;
    if (!(await verifyLeafNodeSignatureKeyPackage(leaf, cs.signature))) return null;
    if (equalBytes(kp.initKey, leaf.hpkePublicKey)) return null;
    return { ...id, signaturePublicKey: leaf.signaturePublicKey, ref: toHex(await makeKeyPackageRef(kp, cs.hash)) };
  } catch {
    return null;
  }
}

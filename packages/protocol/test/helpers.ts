/** Test fixtures: devices, and a directory verifier that knows which devices are enrolled. */
import { fail, OK, parseDeviceId, parseUserHandle, revokedVerdict, toHex } from "@valise/core";
import type { Verdict } from "@valise/core";
import type { CryptoProvider } from "ts-mls";
import { generateDeviceKeys, generateKeyPackages } from "../src/index.js";
import type { DeviceCredential, DeviceKeys, DeviceVerifier, GroupContext, KeyPackageBundle } from "../src/index.js";

/** A directory: enrolled (user, device, key) triples. Counts calls so tests can see the door was used. */
export class Directory implements DeviceVerifier {
  private readonly enrolled = new Set<string>();
  calls = 0;
  enroll(k: DeviceKeys): void {
    this.enrolled.add(`${k.user}/${k.device}/${toHex(k.signaturePublicKey)}`);
  }
  revoke(k: DeviceKeys): void {
    this.enrolled.delete(`${k.user}/${k.device}/${toHex(k.signaturePublicKey)}`);
  }
  private readonly revokedKeys = new Set<string>();
  /** The device stays known, as revoked (the log keeps its entry and adds a revocation). */
  markRevoked(k: DeviceKeys): void {
    this.revokedKeys.add(`${k.user}/${k.device}/${toHex(k.signaturePublicKey)}`);
  }
  async verifyDevice(c: DeviceCredential): Promise<Verdict> {
    this.calls++;
    if (this.revokedKeys.has(`${c.user}/${c.device}/${toHex(c.signaturePublicKey)}`))
      return revokedVerdict(`device ${c.device} was revoked`);
    return this.enrolled.has(`${c.user}/${c.device}/${toHex(c.signaturePublicKey)}`) ? OK : fail("not in directory");
  }
}

export interface Device {
  keys: DeviceKeys;
  ctx: GroupContext;
  kps: KeyPackageBundle[];
}

let n = 0;
export async function device(
  user: string,
  dir: Directory,
  opts: { enroll?: boolean; crypto?: CryptoProvider; kps?: number } = {},
): Promise<Device> {
  const keys = await generateDeviceKeys(
    parseUserHandle(user),
    parseDeviceId(`d-${user.replace(/[^a-z0-9]/g, "")}${String(++n).padStart(8, "0")}`),
  );
  if (opts.enroll !== false) dir.enroll(keys);
  const ctx: GroupContext = { keys, verifier: dir };
  if (opts.crypto !== undefined) ctx.crypto = opts.crypto;
  return { keys, ctx, kps: await generateKeyPackages(keys, opts.kps ?? 1, opts.crypto) };
}

export const te = new TextEncoder();
export const td = new TextDecoder();

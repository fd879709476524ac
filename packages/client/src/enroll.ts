/**
 * Enrollment: redeeming a one-time code makes the device's keys and key packages and registers the device. With trust
 * anchors (the enrollment bundle's, or the server's pinned on first use), the server's checkpoint must verify with them
 * before the code is spent.
 */
import {
  ValiseError,
  parseCosignatureVerifierKey,
  parseNoteVerifierKey,
  parseUserHandle,
  randomId,
  toBase64,
  verifyCheckpointQuorum,
  type UserHandle,
} from "@valise/core";
import { generateDeviceKeys, generateKeyPackages, type DeviceKeys } from "@valise/protocol";
import { HttpTransport } from "./transport.js";
import type { KeyStore, ProfileState } from "./profile.js";
import { parseTrustAnchors, type TrustAnchors } from "./transparency.js";
import { INITIAL_KEY_PACKAGES } from "./sync.js";

/** What `ValiseClient.enroll` takes besides the ClientOptions. */
export interface EnrollOptions {
  serverUrl: string;
  code: string;
  deviceName?: string;
  trust?: TrustAnchors;
  /**
   * Without `trust`: pin the server's directory log key and witnesses on first use (default), so the device
   * still checks every device against the log and watches its account from now on; `false` trusts the server's
   * directory answers (no key transparency).
   */
  pinOnFirstUse?: boolean;
}

/**
 * Redeems the code and saves the new profile to `store` (refused if the store already holds one). Returns the profile
 * and the key packages' public bytes, to upload once logged in.
 */
export async function enrollDevice(
  opts: EnrollOptions & { store: KeyStore; fetch?: typeof fetch },
): Promise<{ state: ProfileState; keyPackages: Uint8Array[] }> {
  if (await opts.store.load())
    throw new ValiseError("conflict", "this profile is already enrolled; use another profile directory");
  const transport = new HttpTransport(opts.serverUrl, opts.fetch);
  let trust = opts.trust ? parseTrustAnchors(opts.trust) : undefined;
  if (!trust && opts.pinOnFirstUse !== false) {
    const served = await transport.logTrust().catch((e: unknown) => {
      if (e instanceof ValiseError && e.code === "not_found") return null; // a server without a log key
      throw e;
    });
    if (served) trust = { ...parseTrustAnchors(served), firstUse: true };
  }
  if (trust) await checkServerLog(transport, trust);
  const deviceId = randomId("d");
  // The code names the user on the server side; we learn the handle from the answer, then make key packages
  // (which carry the handle in their credential) and upload them once logged in.
  const provisional = await generateDeviceKeys("pending" as UserHandle, deviceId);
  const name = opts.deviceName ?? "device";
  const res = await transport.enroll(
    opts.code,
    { id: deviceId, name, signaturePublicKey: provisional.signaturePublicKey },
    [],
  );
  const keys: DeviceKeys = { ...provisional, user: parseUserHandle(res.user.handle) };
  const kps = await generateKeyPackages(keys, INITIAL_KEY_PACKAGES);
  const state: ProfileState = {
    version: 1,
    serverUrl: opts.serverUrl,
    handle: res.user.handle,
    deviceId,
    deviceName: name,
    signaturePublicKey: toBase64(keys.signaturePublicKey),
    signaturePrivateKey: toBase64(keys.signaturePrivateKey),
    keyPackages: kps.map((k) => ({
      ref: k.ref,
      publicBytes: toBase64(k.publicBytes),
      privateBytes: toBase64(k.privateBytes),
    })),
    inboxCursor: 0,
    conversations: {},
    pending: [],
    session: null,
    ...(trust ? { trust } : {}),
  };
  await opts.store.save(state);
  return { state, keyPackages: kps.map((k) => k.publicBytes) };
}

/** Before spending an enrollment code: the server's checkpoint (if any yet) must verify with the bundle's keys. */
async function checkServerLog(transport: HttpTransport, trust: TrustAnchors): Promise<void> {
  let note: string;
  try {
    note = await transport.logCheckpoint();
  } catch (e) {
    if (e instanceof ValiseError && e.code === "not_found") return; // no checkpoint yet: checked at first use
    throw e;
  }
  const q = verifyCheckpointQuorum(
    note,
    parseNoteVerifierKey(trust.logKey),
    trust.witnesses.map(parseCosignatureVerifierKey),
    trust.quorum,
  );
  if (!q.ok)
    throw new ValiseError(
      "log_not_verified",
      `the server's directory log checkpoint does not verify with the enrollment bundle: ${q.reason}`,
    );
}

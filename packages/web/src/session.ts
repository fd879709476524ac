/**
 * The browser device: its profile in IndexedDB (IndexedDbKeyStore), enrollment with the one-time code (or the whole
 * enrollment bundle) plus a passkey, and passkey login (device key + passkey over one server challenge).
 */
import { startAuthentication, startRegistration } from "@simplewebauthn/browser";
import type { AuthenticationResponseJSON, PublicKeyCredentialCreationOptionsJSON } from "@simplewebauthn/browser";
import { isValiseError } from "@valise/core";
import { ValiseClient, parseTrustAnchors, type ClientOptions, type TrustAnchors } from "@valise/client";
import { IndexedDbKeyStore, openValiseDb, wipeValiseDb } from "@valise/client/browser/idb-store";
import { deviceHistory } from "./search.js";

let store: IndexedDbKeyStore | null = null;
async function keyStore(): Promise<IndexedDbKeyStore> {
  return (store ??= new IndexedDbKeyStore(await openValiseDb()));
}

/**
 * The device's message history (the SDK's HistoryStore, search.tsx `deviceHistory`: one instance per page, sealed in
 * IndexedDB as "device-history:HANDLE"), given to the SDK: sync and send record into it, an approval sends it to the
 * approved device, and a history sent by another device of this user lands in it. The screens' message list
 * (history.ts) takes from it what it lacks.
 */
const sdkHistory: NonNullable<ClientOptions["history"]> = async () => {
  const state = await (await keyStore()).load();
  if (!state) throw new Error("no enrolled profile in this browser");
  return deviceHistory(state.handle);
};

/**
 * Passkey login for this device: the device key signs the challenge, the passkey asserts over the same one. Through
 * the SDK (the transport's auth area checks both answers against the wire contract); the WebAuthn options are the
 * server's, handed to the browser's authenticator, which checks them itself.
 */
function passkeyAuthenticator(c: ValiseClient): NonNullable<ValiseClient["authenticate"]> {
  return async (device, signLogin) => {
    const { challenge, options } = await c.transport.passkeyOptions(device);
    const credential: AuthenticationResponseJSON = await startAuthentication({
      optionsJSON: options as unknown as Parameters<typeof startAuthentication>[0]["optionsJSON"],
    });
    const signature = await signLogin(challenge);
    return c.transport.passkeySession({ device, challenge, signature, credential });
  };
}

/**
 * One tab owns the sealed profile (Web Locks): two tabs that each loaded the same MLS state would encrypt under the
 * same ratchet generation, and the later save would overwrite the earlier. Resolves once this tab holds the lock
 * (kept until the tab closes); `onWaiting` runs first if another tab has it. Without Web Locks, resolves at once.
 */
export function ownProfile(onWaiting: () => void): Promise<void> {
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  if (!locks) return Promise.resolve();
  const hold = (acquired: () => void) => {
    acquired();
    return new Promise<never>(() => {}); // held for the life of the tab
  };
  return new Promise<void>((acquired) => {
    void locks.request("valise-profile", { ifAvailable: true }, (lock) => {
      if (lock) return hold(acquired);
      onWaiting();
      void locks.request("valise-profile", () => hold(acquired));
      return Promise.resolve();
    });
  });
}

/** The profile already enrolled in this browser, if any (not logged in yet). */
export async function openExisting(): Promise<ValiseClient | null> {
  const s = await keyStore();
  if (!(await s.load())) return null;
  const c = await ValiseClient.open({ store: s, history: sdkHistory, receipts: true });
  c.authenticate = passkeyAuthenticator(c);
  return c;
}

/** Logs in with the passkey (asks the authenticator), then catches up. */
export async function login(c: ValiseClient): Promise<void> {
  await c.login(true);
  await c.save();
}

/** The code alone, or the bundle JSON an administrator printed (code + log and witness keys to pin). */
export function parseEnrollment(input: string): { code: string; trust?: TrustAnchors } {
  const t = input.trim();
  if (t.startsWith("{")) {
    const o = JSON.parse(t) as { enrollmentCode?: unknown };
    if (typeof o.enrollmentCode !== "string") throw new Error("the bundle has no enrollmentCode");
    return { code: o.enrollmentCode, trust: parseTrustAnchors(o) };
  }
  return { code: t };
}

/**
 * Set before the device is enrolled, cleared once its passkey is registered: while it is set, this browser holds a
 * device without a passkey, and the app shows only "Finish setting up" (never the screens), across reloads.
 */
const PENDING = "valise.passkeyPending";
export function passkeyPending(): boolean {
  return localStorage.getItem(PENDING) !== null;
}

/** Enrolls this browser as a device with the one-time code; the passkey comes next (`finishPasskey`). */
export async function enrollDevice(input: string, deviceName: string): Promise<ValiseClient> {
  const { code, trust } = parseEnrollment(input);
  localStorage.setItem(PENDING, "1");
  try {
    return await ValiseClient.enroll({
      store: await keyStore(),
      serverUrl: location.origin,
      code,
      deviceName,
      history: sdkHistory,
      receipts: true,
      ...(trust ? { trust } : {}),
    });
  } catch (e) {
    // Nothing enrolled (the profile is saved only once the server accepted the code): no setup left to finish.
    if (!(await (await keyStore()).load())) localStorage.removeItem(PENDING);
    throw e;
  }
}

/**
 * Registers the passkey of a device that has none yet (right after enrollment, or a retry after a cancelled or
 * failed browser prompt, possibly after a reload). Until then the device logs in with its device key alone, which
 * the server allows only for a device without a passkey, and only to get here. The server takes a passkey within
 * 15 minutes of the enrollment; later, the browser must be enrolled again with a new code.
 */
export async function finishPasskey(c: ValiseClient): Promise<void> {
  c.authenticate = null;
  await c.login(); // with the device key (no passkey yet), unless already logged in
  try {
    await registerPasskey(c);
  } catch (e) {
    if (isValiseError(e) && e.code === "unauthenticated") {
      await c.login(true); // the enrollment's session expired: a fresh one with the device key, then once more
      await registerPasskey(c);
    } else if (!(isValiseError(e) && e.code === "conflict")) throw e; // conflict: it was registered already
  }
  localStorage.removeItem(PENDING);
  c.authenticate = passkeyAuthenticator(c);
  await c.save();
}

export async function registerPasskey(c: ValiseClient): Promise<void> {
  const { challenge, options } = await c.transport.passkeyRegisterOptions();
  const credential = await startRegistration({
    optionsJSON: options as unknown as PublicKeyCredentialCreationOptionsJSON,
  });
  await c.transport.passkeyRegister(challenge, credential);
}

/** Forgets this browser's device (keys and history). */
export async function forget(): Promise<void> {
  await (await keyStore()).clear();
  localStorage.removeItem(PENDING);
}

/** Sign out and erase: every sealed record of this browser (profile keys, history, drafts) and its wrapping keys. */
export async function wipeBrowser(): Promise<void> {
  await wipeValiseDb(await openValiseDb());
  store = null;
  localStorage.removeItem(PENDING);
}

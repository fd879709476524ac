/**
 * The browser device: its profile in IndexedDB (IndexedDbKeyStore), enrollment with the one-time code (or the whole
 * enrollment bundle) plus a passkey, and passkey login (device key + passkey over one server challenge).
 */
import { startAuthentication, startRegistration } from "@simplewebauthn/browser";
import type { AuthenticationResponseJSON, PublicKeyCredentialCreationOptionsJSON } from "@simplewebauthn/browser";
import { ValiseClient, parseTrustAnchors, type TrustAnchors } from "@valise/client";
import { IndexedDbKeyStore, openValiseDb } from "@valise/client/browser/idb-store";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function postJson<T>(path: string, body: unknown, token?: string | null): Promise<T> {
  const r = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body ?? {}),
  });
  const j = (await r.json().catch(() => ({}))) as { code?: string; message?: string };
  if (!r.ok) throw new ApiError(r.status, j.code ?? "error", j.message ?? `HTTP ${r.status}`);
  return j as T;
}

export async function getJson<T>(path: string, token: string | null): Promise<T> {
  const r = await fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const j = (await r.json().catch(() => ({}))) as { code?: string; message?: string };
  if (!r.ok) throw new ApiError(r.status, j.code ?? "error", j.message ?? `HTTP ${r.status}`);
  return j as T;
}

let store: IndexedDbKeyStore | null = null;
async function keyStore(): Promise<IndexedDbKeyStore> {
  return (store ??= new IndexedDbKeyStore(await openValiseDb()));
}

/** Passkey login for this device: the device key signs the challenge, the passkey asserts over the same one. */
function passkeyAuthenticator(): NonNullable<ValiseClient["authenticate"]> {
  return async (device, signLogin) => {
    const { challenge, options } = await postJson<{
      challenge: string;
      options: Parameters<typeof startAuthentication>[0]["optionsJSON"];
    }>("/v1/auth/passkey/options", { device });
    const credential: AuthenticationResponseJSON = await startAuthentication({ optionsJSON: options });
    const signature = await signLogin(challenge);
    return postJson<{ token: string; expiresAt: number }>("/v1/auth/passkey/session", {
      device,
      challenge,
      signature,
      credential,
    });
  };
}

/** The profile already enrolled in this browser, if any (not logged in yet). */
export async function openExisting(): Promise<ValiseClient | null> {
  const s = await keyStore();
  if (!(await s.load())) return null;
  const c = await ValiseClient.open({ store: s });
  c.authenticate = passkeyAuthenticator();
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

/** Enrolls this browser as a device with the one-time code, then registers its passkey. */
export async function enroll(input: string, deviceName: string): Promise<ValiseClient> {
  const { code, trust } = parseEnrollment(input);
  const c = await ValiseClient.enroll({
    store: await keyStore(),
    serverUrl: location.origin,
    code,
    deviceName,
    ...(trust ? { trust } : {}),
  });
  await registerPasskey(c);
  c.authenticate = passkeyAuthenticator();
  return c;
}

export async function registerPasskey(c: ValiseClient): Promise<void> {
  const token = c.transport.token;
  const { challenge, options } = await postJson<{
    challenge: string;
    options: PublicKeyCredentialCreationOptionsJSON;
  }>("/v1/auth/passkey/register/options", {}, token);
  const credential = await startRegistration({ optionsJSON: options });
  await postJson("/v1/auth/passkey/register", { challenge, credential }, token);
}

/** Forgets this browser's device (keys and history). */
export async function forget(): Promise<void> {
  await (await keyStore()).clear();
}

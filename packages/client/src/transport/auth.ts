/** Transport area: enrollment, login (device key or passkey), the session, the user's own devices. */
import { toBase64 } from "@valise/core";
import type { RequestCore } from "./core.js";
import type { ServerUser } from "./types.js";

const dev = (id: string) => encodeURIComponent(id);

export class AuthApi {
  constructor(protected readonly http: RequestCore) {}

  enroll(
    code: string,
    device: { id: string; name: string; signaturePublicKey: Uint8Array },
    keyPackages: Uint8Array[],
  ): Promise<{ user: { handle: string; units: string[]; clearance: string; role: string }; device: { id: string } }> {
    return this.http.request("POST /v1/enroll", "/v1/enroll", {
      body: {
        code,
        device: { id: device.id, name: device.name, signaturePublicKey: toBase64(device.signaturePublicKey) },
        keyPackages: keyPackages.map(toBase64),
      },
      anonymous: true,
    });
  }
  challenge(device: string): Promise<{ challenge: string; expiresAt: number }> {
    return this.http.request("POST /v1/auth/challenge", "/v1/auth/challenge", {
      body: { device },
      anonymous: true,
    });
  }
  session(device: string, challenge: string, signature: Uint8Array): Promise<{ token: string; expiresAt: number }> {
    return this.http.request("POST /v1/auth/session", "/v1/auth/session", {
      body: { device, challenge, signature: toBase64(signature) },
      anonymous: true,
    });
  }
  /** Passkey login, step 1 (no session yet): the challenge and the WebAuthn request options for `device`. */
  passkeyOptions(device: string): Promise<{ challenge: string; options: Record<string, unknown> }> {
    return this.http.request("POST /v1/auth/passkey/options", "/v1/auth/passkey/options", {
      body: { device },
      anonymous: true,
    });
  }
  /** Passkey login, step 2: the device's signature over the challenge and the passkey's assertion. */
  passkeySession(b: {
    device: string;
    challenge: string;
    signature: string;
    credential: unknown;
  }): Promise<{ token: string; expiresAt: number }> {
    return this.http.request("POST /v1/auth/passkey/session", "/v1/auth/passkey/session", {
      body: b,
      anonymous: true,
    });
  }
  /** A device's first passkey (with its session): the challenge and the WebAuthn creation options. */
  passkeyRegisterOptions(): Promise<{ challenge: string; options: Record<string, unknown> }> {
    return this.http.request("POST /v1/auth/passkey/register/options", "/v1/auth/passkey/register/options", {
      body: {},
    });
  }
  /** Registers the passkey the browser created over `challenge`. */
  passkeyRegister(challenge: string, credential: unknown): Promise<{ credentialId: string }> {
    return this.http.request("POST /v1/auth/passkey/register", "/v1/auth/passkey/register", {
      body: { challenge, credential },
    });
  }
  /** Ends this session on the server (sign out): the token is refused from then on. */
  logout(): Promise<undefined> {
    return this.http.request("POST /v1/auth/logout", "/v1/auth/logout", { body: {} });
  }
  me(): Promise<ServerUser & { device: string }> {
    return this.http.request("GET /v1/me", "/v1/me");
  }
  /** The user acknowledges their own device (audited as directory.device.ack; detection then trusts it). */
  ackOwnDevice(id: string): Promise<{ device: string; acknowledged: boolean; from: string }> {
    return this.http.request("POST /v1/devices/:id/ack", `/v1/devices/${dev(id)}/ack`, { body: {} });
  }
  /** The user revokes one of their own other devices (lost or stolen): a `device.revoke` in the directory log. */
  revokeOwnDevice(id: string): Promise<{ device: string; revoked: boolean }> {
    return this.http.request("POST /v1/devices/:id/revoke", `/v1/devices/${dev(id)}/revoke`, { body: {} });
  }
}

/**
 * The device's session with the server: Ed25519 challenge login (or the caller's `authenticate`, a passkey in the
 * browser), the token kept in the profile's session slice until it expires, one re-login on an expired session, and
 * sign-out. Every other part of the client reaches the server through `authed`.
 */
import { ValiseError, toBase64, utf8 } from "@valise/core";
import { signChallenge } from "@valise/protocol";
import type { HttpTransport } from "./transport.js";
import type { ProfileRepository } from "./profile-repo.js";

/** How a device logs in when not with its device key alone (see ValiseClient.authenticate). */
export type Authenticate = (
  device: string,
  signLogin: (challenge: string) => Promise<string>,
) => Promise<{ token: string; expiresAt: number }>;

/** Runs `fn` logged in (see Session.authed). */
export type Authed = <T>(fn: () => Promise<T>) => Promise<T>;

export class Session {
  authenticate: Authenticate | null = null;

  constructor(
    private readonly transport: HttpTransport,
    /** The session slice, and the device id (identity) it logs in as. */
    private readonly profile: Pick<ProfileRepository, "session" | "identity">,
    private readonly signingKey: Uint8Array,
    private readonly hooks: {
      /** Saves the profile (with what must go with it: reports in flight, the verifier's state). */
      save: () => Promise<void>;
      /** An operation failed (not for an expired session): keep what must survive the failure (an alert raised). */
      onFailure: () => Promise<void>;
    },
  ) {
    const s = profile.session;
    if (s && s.expiresAt > Date.now() + 30_000) transport.token = s.token;
  }

  private get deviceId(): string {
    return this.profile.identity.deviceId;
  }

  /** Ed25519 challenge login; the session token is kept in the profile until it expires. */
  async login(force = false): Promise<void> {
    if (!force && this.transport.token) return;
    let s: { token: string; expiresAt: number };
    if (this.authenticate) {
      s = await this.authenticate(this.deviceId, async (c) =>
        toBase64(await signChallenge(this.signingKey, utf8(`valise-login:${c}`))),
      );
    } else {
      const { challenge } = await this.transport.challenge(this.deviceId);
      const sig = await signChallenge(this.signingKey, utf8(`valise-login:${challenge}`));
      s = await this.transport.session(this.deviceId, challenge, sig);
    }
    this.transport.token = s.token;
    this.profile.session = s;
  }

  /** Runs `fn` logged in; on an expired session, logs in again once. */
  readonly authed: Authed = async <T>(fn: () => Promise<T>): Promise<T> => {
    await this.login();
    try {
      return await fn();
    } catch (e) {
      if (e instanceof ValiseError && e.code === "unauthenticated") {
        await this.login(true);
        return fn();
      }
      await this.hooks.onFailure();
      throw e;
    }
  };

  /**
   * Signs out: the session ends on the server (POST /v1/auth/logout, audited; the token is refused from then on),
   * then here. Always signs out here; `serverEnded` is false when the server could not be told (unreachable): the
   * session then ends by itself when it expires.
   */
  /** `expiresAt`: when the session the server could not be told about ends by itself (null when it was ended). */
  async signOut(): Promise<{ serverEnded: boolean; expiresAt: number | null }> {
    const expiresAt = this.profile.session?.expiresAt ?? null;
    let serverEnded = true;
    if (this.transport.token)
      try {
        await this.transport.logout();
      } catch (e) {
        // Already ended (expired, revoked): nothing left to end. Anything else: the server was not told.
        serverEnded = e instanceof ValiseError && e.code === "unauthenticated";
      }
    this.transport.token = null;
    this.profile.session = null;
    await this.hooks.save();
    return { serverEnded, expiresAt: serverEnded ? null : expiresAt };
  }
}

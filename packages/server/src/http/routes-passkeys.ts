/**
 * Passkeys for the web client (WebAuthn, @simplewebauthn/server). A browser device enrolls with the one-time code and
 * its device key as any device does (POST /v1/enroll), then — with the session that enrollment gave it, within
 * PASSKEY_ENROLL_WINDOW_MS of its enrollment — registers one passkey, bound to that device. From then on the device
 * logs in only with both factors over one server challenge: its Ed25519 device key signs `valise-login:<challenge>`
 * and the passkey asserts (user verification required) over the same challenge. The device-key-only login
 * (POST /v1/auth/session) is refused for a device that has a passkey (`passkey_required`).
 */
import type { FastifyInstance } from "fastify";
import type { Static } from "typebox";
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type AuthenticatorTransport,
  type RegistrationResponseJSON,
} from "@simplewebauthn/server";
import { ValiseError, isDeviceId, utf8 } from "@valise/core";
import {
  PasskeyOptionsBody as OptionsBody,
  PasskeyRegisterBody as RegisterBody,
  PasskeySessionBody as SessionBody,
} from "@valise/core/wire";
import { type ServerContext, b64, rateLimit, requireSession } from "./context.js";
import { audit, clientOf, notAudited } from "../audit/http.js";
import { newAuditId } from "../storage/audit-log.js";

/** How long after its enrollment a device may register its passkey. */
export const PASSKEY_ENROLL_WINDOW_MS = 15 * 60 * 1000;

export interface WebAuthnOptions {
  /** The relying party id: the host name users open (a domain; browsers refuse IP addresses). */
  rpId: string;
  /** Origins the browser may report (scheme://host[:port]). */
  origins: string[];
  rpName?: string;
}

/** A WebAuthn response as @simplewebauthn/browser returns it; checked in depth by the verifier. */

/** Registration challenges live in the same one-time table as login challenges, under their own key. */
const registerKey = (device: string) => `webauthn-register:${device}`;
const expected = (challenge: string) => Buffer.from(challenge, "utf8").toString("base64url");

interface PasskeyRow {
  credential_id: string;
  device_id: string;
  handle: string;
  public_key: Uint8Array;
  counter: number | string | bigint;
  transports: string;
}

export function passkeyRoutes(app: FastifyInstance, ctx: ServerContext, opts: WebAuthnOptions): void {
  const { directory } = ctx.store;
  const db = ctx.store.handle.db;
  const rpName = opts.rpName ?? "Valise";
  const passkeysOf = (device: string): Promise<PasskeyRow[]> =>
    db.selectFrom("passkeys").selectAll().where("device_id", "=", device).execute();
  const transports = (r: PasskeyRow) => JSON.parse(r.transports) as AuthenticatorTransport[];

  const postAuthPasskeyRegisterOptionsAudit = notAudited(
    "issues a registration challenge for the caller's own device; stores nothing lasting",
  );
  app.post("/v1/auth/passkey/register/options", postAuthPasskeyRegisterOptionsAudit, async (req) => {
    const s = requireSession(req);
    const dev = await directory.getDevice(s.deviceId);
    if (!dev || dev.revokedAt !== null) throw new ValiseError("unauthenticated", "device revoked");
    if ((await passkeysOf(dev.id)).length > 0) throw new ValiseError("conflict", "this device already has its passkey");
    if (ctx.now() - dev.createdAt > PASSKEY_ENROLL_WINDOW_MS)
      throw new ValiseError("forbidden", "a passkey is registered at enrollment only; ask for a new enrollment code");
    const { challenge } = await directory.createChallenge(registerKey(dev.id));
    const options = await generateRegistrationOptions({
      rpName,
      rpID: opts.rpId,
      userName: s.handle,
      userDisplayName: `${s.handle} (${dev.name})`,
      challenge: new Uint8Array(utf8(challenge)),
      attestationType: "none",
      // Discoverable: the login options name no credential (see /v1/auth/passkey/options).
      authenticatorSelection: { residentKey: "required", userVerification: "required" },
      supportedAlgorithmIDs: [-7, -8, -257],
    });
    return { challenge, options };
  });

  app.post<{ Body: Static<typeof RegisterBody> }>(
    "/v1/auth/passkey/register",
    {
      ...notAudited(
        "audited by the handler: device.enrolment with object passkey (the device's enrolment method, issue 16)",
      ),
      schema: { body: RegisterBody },
    },
    async (req, reply) => {
      const s = requireSession(req);
      const fresh = await directory.consumeChallenge(req.body.challenge, registerKey(s.deviceId));
      if (!fresh) throw new ValiseError("unauthenticated", "registration challenge expired or already used");
      let info;
      try {
        const v = await verifyRegistrationResponse({
          response: req.body.credential as unknown as RegistrationResponseJSON,
          expectedChallenge: expected(req.body.challenge),
          expectedOrigin: opts.origins,
          expectedRPID: opts.rpId,
          requireUserVerification: true,
        });
        info = v.verified ? v.registrationInfo : undefined;
      } catch (e) {
        throw new ValiseError("bad_request", `passkey registration refused: ${e instanceof Error ? e.message : "?"}`);
      }
      if (!info) throw new ValiseError("bad_request", "passkey registration refused");
      const now = ctx.now();
      // One passkey per device: the unique device check and the insert are one statement's worth of race, so the
      // conflict on a second insert is caught by re-reading.
      if ((await passkeysOf(s.deviceId)).length > 0)
        throw new ValiseError("conflict", "this device already has its passkey");
      await db
        .insertInto("passkeys")
        .values({
          credential_id: info.credential.id,
          device_id: s.deviceId,
          handle: s.handle,
          public_key: info.credential.publicKey,
          counter: info.credential.counter,
          transports: JSON.stringify(info.credential.transports ?? []),
          created_at: now,
          last_used_at: null,
        })
        .execute();
      const unit = (await directory.getUser(s.handle))?.units[0] ?? null;
      await ctx.store.audit.appendEvents([
        {
          id: newAuditId(),
          time: new Date(now).toISOString(),
          actor: s.handle,
          device: s.deviceId,
          source: req.ip,
          client: clientOf(req.headers),
          action: "device.enrolment",
          object: "passkey",
          target_device: s.deviceId,
          label: null,
          unit,
          bytes: 0,
          canary: false,
          outcome: "ok",
        },
      ]);
      req.log.info({ handle: s.handle, device: s.deviceId }, "passkey registered");
      return reply.status(201).send({ credentialId: info.credential.id });
    },
  );

  app.post<{ Body: Static<typeof OptionsBody> }>(
    "/v1/auth/passkey/options",
    {
      ...notAudited("issues a login challenge before any session; reads no stored data"),
      schema: { body: OptionsBody },
    },
    async (req, reply) => {
      await rateLimit(ctx, req, reply);
      // The same answer for every device, known or not, with or without a passkey: no oracle, and no credential id
      // to an unauthenticated caller. Passkeys are discoverable (resident), so the browser finds this device's.
      const { challenge } = await directory.createChallenge(req.body.device);
      const options = await generateAuthenticationOptions({
        rpID: opts.rpId,
        challenge: new Uint8Array(utf8(challenge)),
        userVerification: "required",
        allowCredentials: [],
      });
      return { challenge, options };
    },
  );

  app.post<{ Body: Static<typeof SessionBody> }>(
    "/v1/auth/passkey/session",
    { ...audit({ action: "login", presession: "login" }), schema: { body: SessionBody } },
    async (req, reply) => {
      await rateLimit(ctx, req, reply);
      const { device, challenge, signature, credential } = req.body;
      const dev = isDeviceId(device) ? await directory.getDevice(device) : null;
      const sig = b64("signature", signature);
      // Consumed whatever the outcome: no second try with the same challenge.
      const fresh = await directory.consumeChallenge(challenge, device);
      const fail = () =>
        new ValiseError(
          "unauthenticated",
          "login failed: unknown or revoked device, expired or reused challenge, bad signature or passkey",
        );
      if (!dev || dev.revokedAt !== null || !fresh) throw fail();
      if (!(await ctx.mls.verifySignature(dev.signaturePublicKey, utf8(`valise-login:${challenge}`), sig)))
        throw fail();
      const row = (await passkeysOf(dev.id)).find((r) => r.credential_id === credential.id);
      if (!row) throw fail();
      let newCounter: number;
      try {
        const v = await verifyAuthenticationResponse({
          response: credential as unknown as AuthenticationResponseJSON,
          expectedChallenge: expected(challenge),
          expectedOrigin: opts.origins,
          expectedRPID: opts.rpId,
          credential: {
            id: row.credential_id,
            publicKey: new Uint8Array(row.public_key),
            counter: Number(row.counter),
            transports: transports(row),
          },
          requireUserVerification: true,
        });
        if (!v.verified) throw fail();
        newCounter = v.authenticationInfo.newCounter;
      } catch {
        throw fail();
      }
      await db
        .updateTable("passkeys")
        .set({ counter: newCounter, last_used_at: ctx.now() })
        .where("credential_id", "=", row.credential_id)
        .execute();
      const s = await directory.createSession(dev.id, dev.handle);
      return reply.status(201).send(s);
    },
  );
}

/** For POST /v1/auth/session: a device with a passkey must log in with it. */
export async function hasPasskey(ctx: ServerContext, device: string): Promise<boolean> {
  const r = await ctx.store.handle.db
    .selectFrom("passkeys")
    .select("credential_id")
    .where("device_id", "=", device)
    .executeTakeFirst();
  return r !== undefined;
}

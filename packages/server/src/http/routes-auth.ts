/** Enrollment (one-time code → device) and device login (Ed25519 challenge → short-lived session token). */
import type { FastifyInstance } from "fastify";
import type { Static } from "typebox";
import { ValiseError, isDeviceId, utf8, parseUserHandle, type UserHandle } from "@valise/core";
import { ChallengeBody, EnrollBody, SessionBody } from "@valise/core/wire";
import { type ServerContext, b64, rateLimit, requireSession } from "./context.js";
import { PASSKEY_ENROLL_WINDOW_MS, hasPasskey } from "./routes-passkeys.js";
import { audit, auditOf, clientOf, notAudited } from "../audit/http.js";

export function authRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { directory } = ctx.store;

  app.post<{ Body: Static<typeof EnrollBody> }>(
    "/v1/enroll",
    {
      ...audit({ action: "directory.device.add", presession: "enroll" }),
      schema: { body: EnrollBody },
      bodyLimit: 2 * 1024 * 1024,
    },
    async (req, reply) => {
      await rateLimit(ctx, req, reply);
      const body = req.body;
      const sigKey = b64("device.signaturePublicKey", body.device.signaturePublicKey);
      if (sigKey.length !== 32)
        throw new ValiseError("bad_request", "device.signaturePublicKey must be a 32-byte Ed25519 key");
      // Every key package must be this device's: same device id and signature key; the user is checked against the code.
      const kps: { ref: string; data: Uint8Array; user: string }[] = [];
      for (const [i, k] of body.keyPackages.entries()) {
        const data = b64(`keyPackages[${i}]`, k);
        const info = await ctx.mls.inspectKeyPackage(data);
        if (!info) throw new ValiseError("bad_request", `keyPackages[${i}]: not a valid key package`);
        if (info.device !== body.device.id || !equal(info.signaturePublicKey, sigKey))
          throw new ValiseError("bad_request", `keyPackages[${i}]: belongs to another device or key`);
        kps.push({ ref: info.ref, data, user: info.user });
      }
      const user = await directory.redeemEnrollment(
        body.code,
        { id: body.device.id, name: body.device.name, signaturePublicKey: sigKey },
        kps,
        (handle) => {
          if (kps.some((k) => k.user !== handle))
            throw new ValiseError("bad_request", "key packages name another user than the enrollment code");
        },
        { source: req.ip, client: clientOf(req.headers) },
      );
      // A browser announces itself (Origin on a POST, Sec-Fetch-* headers): such a device must use its passkey.
      if (fromBrowser(req.headers))
        await ctx.store.handle.db
          .insertInto("browser_devices")
          .values({ device_id: body.device.id, enrolled_at: ctx.now() })
          .onConflict((oc) => oc.column("device_id").doNothing())
          .execute();
      req.log.info({ handle: user.handle, device: body.device.id }, "device enrolled");
      return reply.status(201).send({
        user: { handle: user.handle, units: user.units, clearance: user.clearance, role: user.role },
        device: { id: body.device.id, name: body.device.name },
      });
    },
  );

  app.post<{ Body: Static<typeof ChallengeBody> }>(
    "/v1/auth/challenge",
    {
      ...notAudited("issues a login challenge before any session; the login itself is audited"),
      schema: { body: ChallengeBody },
    },
    async (req, reply) => {
      await rateLimit(ctx, req, reply);
      // Same answer for unknown and known devices, so the endpoint is no device-existence oracle.
      return directory.createChallenge(req.body.device);
    },
  );

  app.post<{ Body: Static<typeof SessionBody> }>(
    "/v1/auth/session",
    { ...audit({ action: "login", presession: "login" }), schema: { body: SessionBody } },
    async (req, reply) => {
      await rateLimit(ctx, req, reply);
      const { device, challenge, signature } = req.body;
      const dev = isDeviceId(device) ? await directory.getDevice(device) : null;
      const sig = b64("signature", signature);
      // The challenge is consumed whatever the outcome: a replayed or guessed signature never gets a second try.
      const fresh = await directory.consumeChallenge(challenge, device);
      const ok =
        !!dev &&
        dev.revokedAt === null &&
        fresh &&
        (await ctx.mls.verifySignature(dev.signaturePublicKey, utf8(`valise-login:${challenge}`), sig));
      // A disabled (offboarded) user's devices are revoked too; this also refuses one whose revocation was undone.
      if (!ok || !dev || (await directory.isDisabled(dev.handle)))
        throw new ValiseError(
          "unauthenticated",
          "login failed: unknown or revoked device, expired or reused challenge, or bad signature",
        );
      // A browser device that registered a passkey logs in with it too (routes-passkeys.ts); one enrolled from a
      // browser logs in with its device key alone only to register its passkey, within the enrollment window.
      if (await hasPasskey(ctx, dev.id))
        throw new ValiseError("unauthenticated", "this device logs in with its passkey: /v1/auth/passkey/session", {
          passkeyRequired: true,
        });
      const browser = await ctx.store.handle.db
        .selectFrom("browser_devices")
        .select("enrolled_at")
        .where("device_id", "=", dev.id)
        .executeTakeFirst();
      if (browser && ctx.now() - Number(browser.enrolled_at) > PASSKEY_ENROLL_WINDOW_MS)
        throw new ValiseError("unauthenticated", "this device logs in with its passkey: /v1/auth/passkey/session", {
          passkeyRequired: true,
        });
      const s = await directory.createSession(dev.id, dev.handle);
      return reply.status(201).send(s);
    },
  );

  // Sign out: the session of this request ends on the server (its token gets 401 from now on, and a push socket opened
  // with it is closed at its next session check). Only this session: the device's other sessions stay.
  app.post("/v1/auth/logout", audit({ action: "logout", kind: "user", object: auditOf.own }), async (req, reply) => {
    requireSession(req);
    const token = (req.headers.authorization ?? "").slice("Bearer ".length);
    await directory.deleteSession(token);
    return reply.status(204).send();
  });

  app.get("/v1/me", audit({ action: "directory.read", kind: "user", object: auditOf.own }), async (req) => {
    const s = requireSession(req);
    const user = await directory.getUser(s.handle);
    if (!user) throw new ValiseError("not_found", "user no longer exists");
    return { ...(await withLogIndices(ctx, presentUser(user))), device: s.deviceId };
  });

  const getUsersHandleAudit = audit({ action: "directory.read", kind: "user", object: auditOf.param("handle") });
  app.get<{ Params: { handle: string } }>("/v1/users/:handle", getUsersHandleAudit, async (req) => {
    requireSession(req);
    let handle: UserHandle;
    try {
      handle = parseUserHandle(req.params.handle);
    } catch {
      throw new ValiseError("bad_handle", "invalid user handle");
    }
    const user = await directory.getUser(handle);
    if (!user) throw new ValiseError("not_found", `no user ${handle}`);
    return withLogIndices(ctx, presentUser(user));
  });
}

export function presentUser(user: NonNullable<Awaited<ReturnType<ServerContext["store"]["directory"]["getUser"]>>>) {
  return {
    handle: user.handle,
    units: user.units,
    // The units the user is the records archive of (issue 14), when any: also in `units`.
    ...(user.archives.length > 0 ? { archives: user.archives } : {}),
    clearance: user.clearance,
    role: user.role,
    disabled: user.disabledAt !== null,
    devices: user.devices.map((d) => ({
      id: d.id,
      name: d.name,
      signaturePublicKey: Buffer.from(d.signaturePublicKey).toString("base64"),
      createdAt: d.createdAt,
      revokedAt: d.revokedAt,
    })),
  };
}

/**
 * Key transparency: each fact in a directory answer comes with the index of the directory log entry that holds it
 * (null if the log has none: a client must then refuse the fact). Clients fetch those entries and check their
 * inclusion in a witnessed checkpoint instead of trusting this answer.
 */
export async function withLogIndices(ctx: ServerContext, u: ReturnType<typeof presentUser>) {
  const refs = await ctx.store.directory.log.refs([
    `user.add/${u.handle}`,
    `user.clearance/${u.handle}`,
    `user.role/${u.handle}`,
    `user.state/${u.handle}`,
    ...u.units.map((unit) => `member/${u.handle}/${unit}`),
    ...u.devices.flatMap((d) => [`device.add/${d.id}`, `device.revoke/${d.id}`]),
  ]);
  // Role, state and memberships not changed since the user was added are established by the `user.add` entry.
  const added = refs.get(`user.add/${u.handle}`) ?? null;
  return {
    ...u,
    logIndex: added,
    clearanceLogIndex: refs.get(`user.clearance/${u.handle}`) ?? null,
    roleLogIndex: refs.get(`user.role/${u.handle}`) ?? added,
    stateLogIndex: refs.get(`user.state/${u.handle}`) ?? added,
    memberLogIndices: Object.fromEntries(
      u.units.map((unit) => [unit, refs.get(`member/${u.handle}/${unit}`) ?? added]),
    ) as Record<string, number | null>,
    devices: u.devices.map((d) => ({
      ...d,
      logIndex: refs.get(`device.add/${d.id}`) ?? null,
      revokeLogIndex: refs.get(`device.revoke/${d.id}`) ?? null,
    })),
  };
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Browsers send Origin on a POST and Sec-Fetch-* metadata; Node's fetch and the CLI send neither. */
export function fromBrowser(headers: Record<string, string | string[] | undefined>): boolean {
  return (
    headers.origin !== undefined || headers["sec-fetch-mode"] !== undefined || headers["sec-fetch-site"] !== undefined
  );
}

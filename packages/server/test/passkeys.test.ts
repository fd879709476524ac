/**
 * Passkeys (routes-passkeys.ts) with a software WebAuthn authenticator (P-256, "none" attestation): registration at
 * enrollment, then login with device key + passkey; forged, replayed, mis-scoped or incomplete assertions are refused,
 * and a device with a passkey can no longer log in with its device key alone. SQLite and PostgreSQL (when configured).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from "node:crypto";
import { parseAuditEvent } from "@valise/core";
import { buildApp, openStore, protocolServerMls, type Store } from "../src/index.js";
import { DATABASE_KINDS, freshDb } from "./helpers/databases.js";

const RP = "localhost";
const ORIGIN = "http://localhost:8080";

// --- a minimal CBOR encoder (maps, unsigned/negative ints, byte and text strings): enough for WebAuthn ---
function head(major: number, n: number): Buffer {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 256) return Buffer.from([(major << 5) | 24, n]);
  if (n < 65536) return Buffer.from([(major << 5) | 25, n >> 8, n & 255]);
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(n, 1);
  return b;
}
type Cbor = number | string | Uint8Array | Map<Cbor, Cbor>;
function cbor(v: Cbor): Buffer {
  if (typeof v === "number") return v >= 0 ? head(0, v) : head(1, -1 - v);
  if (typeof v === "string") return Buffer.concat([head(3, Buffer.byteLength(v)), Buffer.from(v)]);
  if (v instanceof Uint8Array) return Buffer.concat([head(2, v.length), Buffer.from(v)]);
  return Buffer.concat([head(5, v.size), ...[...v].flatMap(([k, x]) => [cbor(k), cbor(x)])]);
}
const b64u = (b: Uint8Array | string) => Buffer.from(b).toString("base64url");
const sha256 = (b: Uint8Array | string): Buffer => Buffer.from(createHash("sha256").update(b).digest());

/** A software authenticator holding one P-256 credential. */
class SoftAuthenticator {
  readonly id = randomBytes(16);
  private readonly key: KeyObject;
  private readonly pub: { x: string; y: string };
  counter = 0;
  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    this.key = privateKey;
    const jwk = publicKey.export({ format: "jwk" }) as { x: string; y: string };
    this.pub = { x: jwk.x, y: jwk.y };
  }
  private authData(flags: number, withCredential: boolean, rpId = RP): Buffer {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(this.counter);
    const parts = [sha256(rpId), Buffer.from([flags]), counter];
    if (withCredential) {
      const cose = new Map<Cbor, Cbor>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, Buffer.from(this.pub.x, "base64url")],
        [-3, Buffer.from(this.pub.y, "base64url")],
      ]);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(this.id.length);
      parts.push(Buffer.alloc(16), len, this.id, cbor(cose));
    }
    return Buffer.concat(parts);
  }
  register(challenge: string, o: { origin?: string; flags?: number } = {}) {
    const clientData = JSON.stringify({ type: "webauthn.create", challenge, origin: o.origin ?? ORIGIN });
    const att = cbor(
      new Map<Cbor, Cbor>([
        ["fmt", "none"],
        ["attStmt", new Map()],
        ["authData", this.authData(o.flags ?? 0x45, true)],
      ]),
    );
    return {
      id: b64u(this.id),
      rawId: b64u(this.id),
      type: "public-key" as const,
      response: { clientDataJSON: b64u(clientData), attestationObject: b64u(att), transports: ["internal"] },
      clientExtensionResults: {},
    };
  }
  assert(
    challenge: string,
    o: { origin?: string; flags?: number; rpId?: string; type?: string; key?: KeyObject; id?: Buffer } = {},
  ) {
    this.counter++;
    const clientData = JSON.stringify({ type: o.type ?? "webauthn.get", challenge, origin: o.origin ?? ORIGIN });
    const authData = this.authData(o.flags ?? 0x05, false, o.rpId);
    const signature = sign("sha256", Buffer.concat([authData, sha256(clientData)]), o.key ?? this.key);
    const id = o.id ?? this.id;
    return {
      id: b64u(id),
      rawId: b64u(id),
      type: "public-key" as const,
      response: {
        clientDataJSON: b64u(clientData),
        authenticatorData: b64u(authData),
        signature: b64u(signature),
      },
      clientExtensionResults: {},
    };
  }
}

function deviceKey() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return { raw: new Uint8Array(publicKey.export({ format: "der", type: "spki" }).subarray(12)), privateKey };
}

for (const kind of DATABASE_KINDS) {
  test(`passkeys: register at enrollment, log in with device key + passkey, refuse forgeries (${kind})`, async () => {
    const db = await freshDb(kind);
    const store: Store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
    const { app } = await buildApp({
      store,
      mls: protocolServerMls,
      loginRatePerMinute: 10_000,
      webauthn: { rpId: RP, origins: [ORIGIN] },
      detect: false,
    });
    try {
      await store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
      await store.directory.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET", role: "user" });
      await store.directory.addUser({ handle: "bob", units: ["HQ/ASIA-1"], clearance: "SECRET", role: "user" });
      const post = (url: string, payload: object, token?: string) =>
        app.inject({
          method: "POST",
          url,
          payload,
          ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
        });
      const enroll = async (handle: string, id: string) => {
        const k = deviceKey();
        const { enrollmentCode } = await store.directory.newEnrollmentCode(handle);
        await store.directory.redeemEnrollment(
          enrollmentCode,
          { id, name: "browser", signaturePublicKey: k.raw },
          [],
          () => {},
        );
        const { challenge } = (await post("/v1/auth/challenge", { device: id })).json<{ challenge: string }>();
        const s = await post("/v1/auth/session", {
          device: id,
          challenge,
          signature: signLogin(k.privateKey, challenge),
        });
        assert.equal(s.statusCode, 201);
        return { key: k, token: s.json<{ token: string }>().token };
      };
      const signLogin = (key: KeyObject, challenge: string) =>
        sign(null, Buffer.from(`valise-login:${challenge}`), key).toString("base64");

      const alice = await enroll("alice", "d-alice000001");
      const auth = new SoftAuthenticator();

      // Registration: anonymous is refused; a wrong origin or a missing user-verification flag is refused.
      assert.equal((await post("/v1/auth/passkey/register/options", {})).statusCode, 401);
      const regOpts = async () => {
        const r = await post("/v1/auth/passkey/register/options", {}, alice.token);
        assert.equal(r.statusCode, 200, r.body);
        const j = r.json<{
          challenge: string;
          options: { challenge: string; rp: { id: string }; user: { name: string } };
        }>();
        assert.equal(j.options.rp.id, RP);
        assert.equal(j.options.user.name, "alice");
        return j;
      };
      let ro = await regOpts();
      let r = await post(
        "/v1/auth/passkey/register",
        {
          challenge: ro.challenge,
          credential: auth.register(ro.options.challenge, { origin: "https://evil.example" }),
        },
        alice.token,
      );
      assert.equal(r.statusCode, 400, r.body);
      ro = await regOpts();
      r = await post(
        "/v1/auth/passkey/register",
        { challenge: ro.challenge, credential: auth.register(ro.options.challenge, { flags: 0x41 }) },
        alice.token,
      );
      assert.equal(r.statusCode, 400, "no user verification");
      ro = await regOpts();
      r = await post(
        "/v1/auth/passkey/register",
        { challenge: ro.challenge, credential: auth.register(ro.options.challenge) },
        alice.token,
      );
      assert.equal(r.statusCode, 201, r.body);
      // Issue 16: the passkey is part of how the device was enrolled, audited as device.enrolment passkey.
      const last = parseAuditEvent((await store.audit.entries((await store.audit.size()) - 1, 1))[0]!);
      assert.ok(last.ok);
      assert.deepEqual(
        [last.event.action, last.event.actor, last.event.device, last.event.object, last.event.target_device],
        ["device.enrolment", "alice", "d-alice000001", "passkey", "d-alice000001"],
      );
      // The registration challenge is one-time, and one passkey per device.
      r = await post(
        "/v1/auth/passkey/register",
        { challenge: ro.challenge, credential: auth.register(ro.options.challenge) },
        alice.token,
      );
      assert.equal(r.statusCode, 401);
      assert.equal((await post("/v1/auth/passkey/register/options", {}, alice.token)).statusCode, 409);

      // The device key alone no longer logs this device in.
      const ch = (await post("/v1/auth/challenge", { device: "d-alice000001" })).json<{ challenge: string }>();
      r = await post("/v1/auth/session", {
        device: "d-alice000001",
        challenge: ch.challenge,
        signature: signLogin(alice.key.privateKey, ch.challenge),
      });
      assert.equal(r.statusCode, 401);
      assert.equal(r.json<{ passkeyRequired?: boolean }>().passkeyRequired, true);

      // Passkey login: device key + passkey over one challenge.
      const loginWith = async (
        mutate: (c: { challenge: string; webauthn: string }) => { signature?: string; credential?: object },
      ) => {
        const o = await post("/v1/auth/passkey/options", { device: "d-alice000001" });
        assert.equal(o.statusCode, 200);
        const j = o.json<{ challenge: string; options: { challenge: string; allowCredentials: { id: string }[] } }>();
        // Uniform for all devices (issue 13 finding 10): no credential id, nothing telling a passkey device apart
        // from one without or from an unknown one (the passkey is discoverable).
        assert.deepEqual(j.options.allowCredentials, []);
        const unknown = (await post("/v1/auth/passkey/options", { device: "d-nobody000001" })).json<typeof j>();
        const shape = (x: typeof j) => ({ ...x.options, challenge: typeof x.options.challenge });
        assert.deepEqual(shape(unknown), shape(j));
        assert.ok(!o.body.includes(b64u(auth.id)));
        const m = mutate({ challenge: j.challenge, webauthn: j.options.challenge });
        return post("/v1/auth/passkey/session", {
          device: "d-alice000001",
          challenge: j.challenge,
          signature: m.signature ?? signLogin(alice.key.privateKey, j.challenge),
          credential: m.credential ?? auth.assert(j.options.challenge),
        });
      };
      r = await loginWith(() => ({}));
      assert.equal(r.statusCode, 201, r.body);
      const token = r.json<{ token: string }>().token;
      const me = await app.inject({ method: "GET", url: "/v1/me", headers: { authorization: `Bearer ${token}` } });
      assert.equal(me.statusCode, 200);
      assert.equal(me.json<{ handle: string }>().handle, "alice");

      const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
      const forgeries: [
        string,
        (c: { challenge: string; webauthn: string }) => { signature?: string; credential?: object },
      ][] = [
        ["assertion signed by another key", (c) => ({ credential: auth.assert(c.webauthn, { key: other }) })],
        ["wrong origin", (c) => ({ credential: auth.assert(c.webauthn, { origin: "https://evil.example" }) })],
        ["wrong relying party", (c) => ({ credential: auth.assert(c.webauthn, { rpId: "evil.example" }) })],
        ["no user verification", (c) => ({ credential: auth.assert(c.webauthn, { flags: 0x01 }) })],
        [
          "a registration, not an assertion",
          (c) => ({ credential: auth.assert(c.webauthn, { type: "webauthn.create" }) }),
        ],
        ["another challenge", () => ({ credential: auth.assert(b64u("some other challenge value")) })],
        ["unknown credential", (c) => ({ credential: auth.assert(c.webauthn, { id: randomBytes(16) }) })],
        ["passkey without the device key", () => ({ signature: signLogin(deviceKey().privateKey, "x".repeat(43)) })],
        ["bad device signature", (c) => ({ signature: signLogin(deviceKey().privateKey, c.challenge) })],
      ];
      for (const [what, f] of forgeries) {
        r = await loginWith(f);
        assert.equal(r.statusCode, 401, `${what}: ${r.body}`);
        assert.equal(r.json<{ code: string }>().code, "unauthenticated");
      }

      // A replayed assertion (same challenge twice) is refused.
      const o = (await post("/v1/auth/passkey/options", { device: "d-alice000001" })).json<{
        challenge: string;
        options: { challenge: string };
      }>();
      const body = {
        device: "d-alice000001",
        challenge: o.challenge,
        signature: signLogin(alice.key.privateKey, o.challenge),
        credential: auth.assert(o.options.challenge),
      };
      assert.equal((await post("/v1/auth/passkey/session", body)).statusCode, 201);
      assert.equal((await post("/v1/auth/passkey/session", body)).statusCode, 401, "replay");

      // Alice's passkey does not log in Bob's device; Bob cannot register once the enrollment window has passed.
      const bob = await enroll("bob", "d-bob00000001");
      const ob = (await post("/v1/auth/passkey/options", { device: "d-bob00000001" })).json<{
        challenge: string;
        options: { challenge: string; allowCredentials: unknown[] };
      }>();
      assert.equal(ob.options.allowCredentials.length, 0);
      r = await post("/v1/auth/passkey/session", {
        device: "d-bob00000001",
        challenge: ob.challenge,
        signature: signLogin(bob.key.privateKey, ob.challenge),
        credential: auth.assert(ob.options.challenge),
      });
      assert.equal(r.statusCode, 401);
      await store.handle.db
        .updateTable("devices")
        .set({ created_at: Date.now() - 16 * 60 * 1000 })
        .where("id", "=", "d-bob00000001")
        .execute();
      const bobOld = await app.inject({
        method: "POST",
        url: "/v1/auth/passkey/register/options",
        headers: { authorization: `Bearer ${bob.token}` },
      });
      assert.equal(bobOld.statusCode, 403, bobOld.body);

      // Malformed bodies are 400, never 5xx.
      r = await post("/v1/auth/passkey/session", {
        device: "d-alice000001",
        challenge: "x",
        signature: "y",
        credential: {},
      });
      assert.equal(r.statusCode, 400);
    } finally {
      await app.close();
      await store.close();
      await db.dispose();
    }
  });
}

/**
 * Issue 13 finding 6 with real MLS, on every database: the server derives a commit's membership change from the
 * PublicMessage commit it verifies, never from the client's `added`/`removed`. Before: a member posted an empty
 * commit with `removed: [another member's device]` and the server marked that device left.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { OK, parseDeviceId, parseUserHandle, randomId, toBase64, utf8 } from "@valise/core";
import {
  addDevices,
  createGroup,
  generateDeviceKeys,
  generateKeyPackages,
  joinFromWelcome,
  signChallenge,
  updateKeys,
  type DeviceKeys,
  type GroupContext,
} from "@valise/protocol";
import { DATABASE_KINDS } from "./helpers/databases.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { call, type Session } from "./helpers/content.js";

interface Dev {
  keys: DeviceKeys;
  ctx: GroupContext;
  session: Session;
}

async function enroll(srv: TestServer, handle: string, device: string): Promise<Dev> {
  const keys = await generateDeviceKeys(parseUserHandle(handle), parseDeviceId(device));
  const { enrollmentCode } = await srv.store.directory.newEnrollmentCode(handle);
  await srv.store.directory.redeemEnrollment(
    enrollmentCode,
    { id: device, name: "t", signaturePublicKey: keys.signaturePublicKey },
    [],
    () => {},
  );
  const ch = await call<{ challenge: string }>(srv.url, null, "POST", "/v1/auth/challenge", { device });
  const sig = await signChallenge(keys.signaturePrivateKey, utf8(`valise-login:${ch.json.challenge}`));
  const s = await call<{ token: string }>(srv.url, null, "POST", "/v1/auth/session", {
    device,
    challenge: ch.json.challenge,
    signature: toBase64(sig),
  });
  assert.equal(s.status, 201, s.text);
  return {
    keys,
    ctx: { keys, verifier: { verifyDevice: async () => OK } },
    session: { handle, device, token: s.json.token },
  };
}

function post(
  srv: TestServer,
  as: Dev,
  conv: string,
  out: { commit: Uint8Array; welcome?: Uint8Array; groupInfo: Uint8Array },
  change: { added: string[]; removed: string[] },
) {
  return call(srv.url, as.session, "POST", `/v1/conversations/${conv}/commits`, {
    commit: toBase64(out.commit),
    ...(out.welcome ? { welcome: toBase64(out.welcome) } : {}),
    groupInfo: toBase64(out.groupInfo),
    ...change,
    idempotencyKey: randomId("c").slice(2),
  });
}

for (const kind of DATABASE_KINDS) {
  describe(`commit membership derived by the server on ${kind}`, () => {
    let srv: TestServer;
    let alice: Dev, bob: Dev, mallory: Dev;
    before(async () => {
      srv = await startTestServer(kind);
      await srv.store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
      for (const h of ["alice", "bob", "mallory"])
        await srv.store.directory.addUser({ handle: h, units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      alice = await enroll(srv, "alice", "d-alice00001");
      bob = await enroll(srv, "bob", "d-bob0000001");
      mallory = await enroll(srv, "mallory", "d-mallory001");
    });
    after(async () => {
      await srv.close();
    });

    test("an empty commit claiming `removed: [bob]` is refused and bob stays a member", async () => {
      const conv = randomId("c");
      const c = await call(srv.url, alice.session, "POST", "/v1/conversations", {
        id: conv,
        kind: "group",
        label: "UNCLASSIFIED",
      });
      assert.equal(c.status, 201, c.text);
      const g0 = await createGroup(alice.ctx, utf8(conv));
      const [kb] = await generateKeyPackages(bob.keys, 1);
      const [km] = await generateKeyPackages(mallory.keys, 1);
      const add = await addDevices(alice.ctx, g0, [kb!.publicBytes, km!.publicBytes]);
      // Claims that disagree with the proposals are refused (here: bob left out of `added`).
      const lie = await post(srv, alice, conv, add, { added: [mallory.keys.device], removed: [] });
      assert.equal(lie.status, 400, lie.text);
      const ok = await post(srv, alice, conv, add, { added: [bob.keys.device, mallory.keys.device], removed: [] });
      assert.equal(ok.status, 201, ok.text);
      const gm = (await joinFromWelcome(mallory.ctx, add.welcome!, [km!])).group;

      const upd = await updateKeys(mallory.ctx, gm);
      // Bob cannot post mallory's commit as his own: it is signed by her leaf.
      const asBob = await post(srv, bob, conv, upd, { added: [], removed: [] });
      assert.equal(asBob.status, 403, asBob.text);
      const attack = await post(srv, mallory, conv, upd, { added: [], removed: [bob.keys.device] });
      assert.equal(attack.status, 400, attack.text);
      assert.deepEqual(await srv.store.conversations.membership(conv, bob.keys.device), {
        joinedSeq: 2,
        leftSeq: null,
      });
      const honest = await post(srv, mallory, conv, upd, { added: [], removed: [] });
      assert.equal(honest.status, 201, honest.text);
      assert.deepEqual(await srv.store.conversations.membership(conv, bob.keys.device), {
        joinedSeq: 2,
        leftSeq: null,
      });
      // A stale commit (epoch 1 again) is still an epoch conflict, not a 400: clients rebase on 409.
      const stale = await post(srv, alice, conv, await updateKeys(alice.ctx, add.group), { added: [], removed: [] });
      assert.equal(stale.status, 409, stale.text);
    });
  });
}

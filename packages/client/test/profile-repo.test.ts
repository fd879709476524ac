/**
 * The profile repository writes one save at a time, in order: a store that finishes an earlier write after a later
 * one (the sealed browser store encrypts before it writes) never ends up holding the older profile.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ProfileRepository, type TextKeyStore } from "../src/profile-repo.js";
import type { ProfileState } from "../src/profile.js";
import type { CablePayload } from "../src/items.js";

/** A store whose first write is slow: without ordering, the first (older) profile would land last. */
class SlowFirstStore implements TextKeyStore {
  text: string | null = null;
  writes: string[] = [];
  private calls = 0;
  async load(): Promise<ProfileState | null> {
    return this.text ? (JSON.parse(this.text) as ProfileState) : null;
  }
  async save(state: ProfileState): Promise<void> {
    return this.saveText(JSON.stringify(state));
  }
  async saveText(json: string): Promise<void> {
    const delay = this.calls++ === 0 ? 50 : 0;
    await new Promise((r) => setTimeout(r, delay));
    this.text = json;
    this.writes.push(json);
  }
}

const profile = (): ProfileState =>
  ({
    serverUrl: "http://127.0.0.1:1",
    handle: "jnovak",
    deviceId: "d-aaaaaaaaaaaaaaaa",
    deviceName: "laptop",
    conversations: {},
    keyPackages: [],
    pending: [],
    inboxCursor: 0,
  }) as unknown as ProfileState;

test("two saves in flight: the store ends with the newer profile", async () => {
  const store = new SlowFirstStore();
  const state = profile();
  const repo = new ProfileRepository(state, store);
  state.uploads = { b1: { sent: { plain: 0 } } } as unknown as ProfileState["uploads"];
  const first = repo.save();
  state.uploads = { b1: { sent: { plain: 8388608 } } } as unknown as ProfileState["uploads"];
  const second = repo.save();
  await Promise.all([first, second]);
  const kept = JSON.parse(store.text!) as { uploads: { b1: { sent: { plain: number } } } };
  assert.equal(kept.uploads.b1.sent.plain, 8388608, `the store holds an older profile: ${store.text}`);
  assert.ok(store.writes.length >= 1);
  // A third save with nothing changed writes nothing.
  assert.deepEqual((await repo.save()).changed, []);
});

test("a failed write does not stop the next save", async () => {
  let fail = true;
  const texts: string[] = [];
  const store: TextKeyStore = {
    load: async () => null,
    save: async () => undefined,
    saveText: async (json) => {
      if (fail) {
        fail = false;
        throw new Error("disk full");
      }
      texts.push(json);
    },
  };
  const state = profile();
  const repo = new ProfileRepository(state, store);
  await assert.rejects(repo.save(), /disk full/);
  state.deviceName = "laptop 2";
  await repo.save();
  assert.match(texts[0]!, /laptop 2/);
});

test("typed slices: reads create nothing (no write), writes go to their own slice", async () => {
  const store = new SlowFirstStore();
  const state = profile();
  const repo = new ProfileRepository(state, store);
  assert.deepEqual((await repo.save()).changed.sort(), ["conversations", "identity", "keyPackages", "pending"]);
  // Reading absent optional slices leaves the stored profile as it was.
  assert.equal(repo.upload("b1"), undefined);
  assert.equal(repo.upload("__proto__"), undefined);
  assert.deepEqual(repo.uploadList(), []);
  repo.deleteUpload("b1");
  assert.equal(repo.storedReceipts, undefined);
  assert.equal(repo.heldKeys.cables, undefined);
  assert.equal(repo.log, undefined);
  assert.deepEqual((await repo.save()).changed, [], "a read created a slice");
  assert.equal(Object.hasOwn(JSON.parse(store.text!) as object, "uploads"), false);

  repo.uploads["b1"] = { blob: "b1", startedAt: 1 } as unknown as NonNullable<ProfileState["uploads"]>[string];
  assert.deepEqual((await repo.save()).changed, ["outbox"]);
  assert.equal(repo.upload("b1")?.blob, "b1");
  repo.deleteUpload("b1");
  assert.deepEqual(repo.uploadList(), []);

  repo.cables["k-1"] = { t: "cable", id: "k-1" } as unknown as CablePayload;
  assert.equal(Object.getPrototypeOf(repo.cables), null, "held keys are null-prototype records");
  assert.equal(Object.getPrototypeOf(repo.receipts.sent), null);
  repo.session = { token: "t", expiresAt: 5 };
  repo.keyPackages = [{ ref: "r", publicBytes: "p", privateBytes: "q" }];
  repo.pending = [];
  assert.deepEqual((await repo.save()).changed.sort(), ["keyPackages", "keys", "outbox", "receipts", "session"]);
  assert.deepEqual(repo.audit, { checkpoints: {} });
  assert.deepEqual((await repo.save()).changed, ["audit"]);
  assert.equal(state.session?.token, "t", "the slices are the profile's own fields");
});

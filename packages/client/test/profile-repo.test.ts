/**
 * The profile repository writes one save at a time, in order: a store that finishes an earlier write after a later
 * one (the sealed browser store encrypts before it writes) never ends up holding the older profile.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ProfileRepository, type TextKeyStore } from "../src/profile-repo.js";
import type { ProfileState } from "../src/profile.js";

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

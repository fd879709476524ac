/**
 * The browser's KeyStore: the device's ProfileState (keys, MLS group states, cursors, received cable and document
 * keys) in IndexedDB, one record per profile, written in one transaction (atomic: a crash or reload leaves the old or
 * the new state). The record is sealed with AES-256-GCM under a non-extractable WebCrypto key kept in the same
 * database: script can use that key but never read it out, and the stored record is ciphertext. What this does not
 * give: the device's Ed25519 signing key and MLS secrets are plain bytes in memory while the app runs (ts-mls signs
 * with raw keys), so script running in this origin can read them.
 */
import type { KeyStore, ProfileState } from "../profile.js";

const DB_VERSION = 1;
const STATES = "profiles";
const KEYS = "keys";

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error("IndexedDB request failed"));
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error("IndexedDB transaction failed"));
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

export function openValiseDb(name = "valise"): Promise<IDBDatabase> {
  const r = indexedDB.open(name, DB_VERSION);
  r.onupgradeneeded = () => {
    const db = r.result;
    if (!db.objectStoreNames.contains(STATES)) db.createObjectStore(STATES);
    if (!db.objectStoreNames.contains(KEYS)) db.createObjectStore(KEYS);
  };
  return req(r);
}

interface Sealed {
  iv: Uint8Array;
  data: ArrayBuffer;
}

/** How many times this page erased the store (wipeValiseDb): a record opened before an erase never writes again. */
let erasures = 0;

/** One JSON record sealed under a non-extractable AES-GCM key, both in IndexedDB. */
export class IndexedDbSealedRecord<T> {
  private key: CryptoKey | null = null;
  private readonly erasure = erasures;
  constructor(
    private readonly db: IDBDatabase,
    /** The profile's name (several profiles may live in one browser). */
    readonly profile = "default",
  ) {}

  private async wrappingKey(): Promise<CryptoKey> {
    if (this.key) return this.key;
    const tx = this.db.transaction(KEYS, "readonly");
    const existing = (await req(tx.objectStore(KEYS).get(this.profile))) as CryptoKey | undefined;
    if (existing) return (this.key = existing);
    const k = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
    if (this.erasure !== erasures) return k; // erased meanwhile: the key is not stored (and save writes nothing)
    const w = this.db.transaction(KEYS, "readwrite");
    w.objectStore(KEYS).put(k, this.profile);
    await done(w);
    return (this.key = k);
  }

  async load(): Promise<T | null> {
    const tx = this.db.transaction(STATES, "readonly");
    const sealed = (await req(tx.objectStore(STATES).get(this.profile))) as Sealed | undefined;
    if (!sealed) return null;
    const key = await this.wrappingKey();
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: sealed.iv as Uint8Array<ArrayBuffer>, additionalData: aad(this.profile) },
      key,
      sealed.data,
    );
    return JSON.parse(new TextDecoder().decode(plain)) as T;
  }

  /**
   * Seals and writes `state`. After the browser was erased (wipeValiseDb) a record opened before does nothing: a
   * sync or a history save still in flight when the user chose "sign out and erase" must not write its record back.
   */
  async save(state: T): Promise<void> {
    if (this.erasure !== erasures) return;
    const key = await this.wrappingKey();
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const data = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: aad(this.profile) },
      key,
      new TextEncoder().encode(JSON.stringify(state)),
    );
    if (this.erasure !== erasures) return;
    const tx = this.db.transaction(STATES, "readwrite");
    tx.objectStore(STATES).put({ iv, data } satisfies Sealed, this.profile);
    await done(tx);
  }

  /** Forgets this profile on this browser (its keys and state). */
  async clear(): Promise<void> {
    const tx = this.db.transaction([STATES, KEYS], "readwrite");
    tx.objectStore(STATES).delete(this.profile);
    tx.objectStore(KEYS).delete(this.profile);
    await done(tx);
    this.key = null;
  }
}

/**
 * Erases every sealed record and every wrapping key of this database (all profiles, histories and drafts of this
 * browser): what "sign out and erase this browser" does. The records were ciphertext; without their keys, which this
 * deletes in the same transaction, nothing of them can be read back.
 */
export async function wipeValiseDb(db: IDBDatabase): Promise<void> {
  erasures++;
  const tx = db.transaction([STATES, KEYS], "readwrite");
  tx.objectStore(STATES).clear();
  tx.objectStore(KEYS).clear();
  await done(tx);
}

export class IndexedDbKeyStore extends IndexedDbSealedRecord<ProfileState> implements KeyStore {}

function aad(profile: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`valise-profile:${profile}`);
}

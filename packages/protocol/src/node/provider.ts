/**
 * A ts-mls CryptoProvider for Node: synchronous `node:crypto` primitives instead of Web Crypto's thread-pool hops.
 * AES-GCM (createCipheriv), SHA-2 / HMAC / HKDF (createHash, createHmac; HKDF per RFC 5869), Ed25519 with KeyObjects
 * cached by key bytes (no re-import per message). The X-Wing KEM and HPKE (RFC 9180) stay with @hpke, so the
 * wire format is byte-for-byte that of ts-mls's default provider (tested by a mixed-provider group).
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
} from "node:crypto";
import {
  generateKeyPairSync,
  randomFillSync,
  sign as nodeSign,
  timingSafeEqual,
  verify as nodeVerify,
} from "node:crypto";
import type { KeyObject } from "node:crypto";
import { Aes128Gcm, Aes256Gcm, CipherSuite, HkdfSha256, HkdfSha384, HkdfSha512 } from "@hpke/core";
import { XWing } from "@hpke/hybridkem-x-wing";
import { defaultCryptoProvider } from "ts-mls";
import type { Ciphersuite, CiphersuiteImpl, CryptoProvider, Hash, Kdf, Rng } from "ts-mls";
import { makeGenericHpke } from "../ts-mls-internals.js";
import type { PooledSignature } from "../batch.js";

type NodeHash = "sha256" | "sha384" | "sha512";
const HASHES = { "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512" } as const;
const HASH_SIZE = { sha256: 32, sha384: 48, sha512: 64 } as const;

function u8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function nodeHash(h: NodeHash): Hash {
  return {
    async digest(data) {
      return u8(createHash(h).update(data).digest());
    },
    async mac(key, data) {
      return u8(createHmac(h, key).update(data).digest());
    },
    async verifyMac(key, mac, data) {
      const m = createHmac(h, key).update(data).digest();
      return m.length === mac.length && timingSafeEqual(m, mac);
    },
  };
}

/** HKDF (RFC 5869) over createHmac. An empty salt is HMAC with an empty key, which equals HashLen zeros (§2.2). */
export function nodeKdf(h: NodeHash): Kdf {
  const size = HASH_SIZE[h];
  return {
    size,
    async extract(salt, ikm) {
      return u8(createHmac(h, salt).update(ikm).digest());
    },
    async expand(prk, info, len) {
      if (len > 255 * size) throw new Error("HKDF-Expand: length too large");
      // T(i) = HMAC(PRK, T(i-1) || info || i), each input in one buffer: one update() call costs about as much as
      // the HMAC of a short input here, and MLS's expansions are mostly one block (a key, a nonce, a secret).
      const buf = Buffer.allocUnsafe(size + info.length + 1);
      buf.set(info, 0);
      buf[info.length] = 1;
      let t = createHmac(h, prk)
        .update(buf.subarray(0, info.length + 1))
        .digest();
      if (len <= size) return u8(len === size ? t : t.subarray(0, len));
      const out = new Uint8Array(len);
      out.set(t, 0);
      for (let i = 2, o = size; o < len; i++, o += size) {
        buf.set(t, 0);
        buf.set(info, size);
        buf[size + info.length] = i;
        t = createHmac(h, prk).update(buf).digest();
        out.set(t.subarray(0, Math.min(size, len - o)), o);
      }
      return out;
    },
  };
}

/** AES-GCM as ts-mls's Aead: ciphertext || 16-byte tag. Key length picks AES-128 or AES-256. */
export const nodeAesGcm = {
  async encrypt(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
    const c = createCipheriv(key.length === 16 ? "aes-128-gcm" : "aes-256-gcm", key, nonce);
    c.setAAD(aad);
    const head = c.update(plaintext);
    const tail = c.final();
    const tag = c.getAuthTag();
    const out = new Uint8Array(head.length + tail.length + tag.length);
    out.set(head, 0);
    out.set(tail, head.length);
    out.set(tag, head.length + tail.length);
    return out;
  },
  async decrypt(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array> {
    if (ciphertext.length < 16) throw new Error("AES-GCM: ciphertext too short");
    const d = createDecipheriv(key.length === 16 ? "aes-128-gcm" : "aes-256-gcm", key, nonce);
    d.setAAD(aad);
    d.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
    const head = d.update(ciphertext.subarray(0, ciphertext.length - 16));
    const tail = d.final(); // throws on a bad tag
    return tail.length === 0 ? u8(head) : new Uint8Array(Buffer.concat([head, tail]));
  },
};

/** A small bounded cache: KeyObjects by key bytes (a group of 1,000 has 1,000 signature keys). */
class KeyCache {
  private readonly m = new Map<string, KeyObject>();
  constructor(private readonly max: number) {}
  get(k: Uint8Array, make: () => KeyObject): KeyObject {
    const id = Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString("base64");
    let v = this.m.get(id);
    if (v === undefined) {
      v = make();
      if (this.m.size >= this.max) {
        const first = this.m.keys().next();
        if (first.done !== true) this.m.delete(first.value);
      }
      this.m.set(id, v);
    }
    return v;
  }
}

const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/**
 * Ed25519 on node:crypto. `verify` runs on the calling thread (one message: no hop); `verifyInPool` runs in libuv's
 * thread pool (crypto.verify with a callback), for processApplications, which checks a run of messages' signatures
 * while it decrypts the next ones.
 */
export function nodeEd25519(): PooledSignature {
  const privs = new KeyCache(64);
  const pubs = new KeyCache(8192);
  const priv = (k: Uint8Array) =>
    privs.get(k, () =>
      createPrivateKey({
        key: k.length === 32 ? Buffer.concat([ED25519_PKCS8_PREFIX, k]) : Buffer.from(k),
        format: "der",
        type: "pkcs8",
      }),
    );
  const pub = (k: Uint8Array) =>
    pubs.get(k, () => createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, k]), format: "der", type: "spki" }));
  return {
    async sign(signKey, message) {
      return u8(nodeSign(null, message, priv(signKey)));
    },
    async verify(publicKey, message, signature) {
      if (publicKey.length !== 32 || signature.length !== 64) return false;
      try {
        return nodeVerify(null, message, pub(publicKey), signature);
      } catch {
        return false;
      }
    },
    verifyInPool(publicKey, message, signature) {
      if (publicKey.length !== 32 || signature.length !== 64) return Promise.resolve(false);
      return new Promise<boolean>((resolve) => {
        try {
          nodeVerify(null, message, pub(publicKey), signature, (err, ok) => resolve(err === null && ok));
        } catch {
          resolve(false);
        }
      });
    },
    async keygen() {
      const { publicKey, privateKey } = generateKeyPairSync("ed25519");
      const raw = privateKey.export({ format: "der", type: "pkcs8" });
      const spki = publicKey.export({ format: "der", type: "spki" });
      return { signKey: u8(raw.subarray(raw.length - 32)), publicKey: u8(spki.subarray(spki.length - 32)) };
    },
  };
}

export const nodeRng: Rng = {
  randomBytes(n) {
    return u8(randomFillSync(Buffer.alloc(n)));
  },
};

function kdfFor(h: NodeHash) {
  return h === "sha256" ? new HkdfSha256() : h === "sha384" ? new HkdfSha384() : new HkdfSha512();
}

async function makeImpl(cs: Ciphersuite): Promise<CiphersuiteImpl> {
  const h = HASHES[cs.hash];
  const kdfHash = cs.hpke.kdf === "HKDF-SHA256" ? "sha256" : cs.hpke.kdf === "HKDF-SHA384" ? "sha384" : "sha512";
  const hpkeSuite = new CipherSuite({
    kem: new XWing(),
    kdf: kdfFor(kdfHash),
    aead: cs.hpke.aead === "AES128GCM" ? new Aes128Gcm() : new Aes256Gcm(),
  });
  return {
    name: cs.name,
    hash: nodeHash(h),
    kdf: nodeKdf(kdfHash),
    signature: nodeEd25519(),
    hpke: await makeGenericHpke(cs.hpke, nodeAesGcm, hpkeSuite),
    rng: nodeRng,
  };
}

/** Node provider for X-Wing + AES-GCM + Ed25519 suites; anything else falls back to ts-mls's default provider. */
export const nodeCryptoProvider: CryptoProvider = {
  async getCiphersuiteImpl(cs) {
    if (cs.hpke.kem !== "X-Wing" || cs.signature !== "Ed25519" || cs.hpke.aead === "CHACHA20POLY1305")
      return defaultCryptoProvider.getCiphersuiteImpl(cs);
    return makeImpl(cs);
  },
};

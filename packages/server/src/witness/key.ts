/**
 * A witness's Ed25519 cosigning key (C2SP tlog-cosignature, signature type 0x04), kept in a file as
 * `PRIVATE+KEY+<name>+<hex key ID>+base64(0x04 || 32-byte seed)` — the signed-note signer key form with the
 * cosignature type byte, so the key ID is the cosignature key ID. The file is created mode 0600 and refused if group-
 * or world-accessible. The public half is the vkey operators give to logs and clients.
 */
import { createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, statSync, writeSync } from "node:fs";
import {
  ALG_COSIGNATURE_V1,
  ValiseError,
  cosignatureKeyId,
  cosignatureSigner,
  cosignatureVerifier,
  formatCosignatureVerifierKey,
  fromBase64,
  isValidKeyName,
  toBase64,
  type Clock,
  type NoteSigner,
  type NoteVerifier,
} from "@valise/core";

export const DEFAULT_WITNESS_NAME = "valise.example/witness";

export interface WitnessKey {
  readonly name: string;
  readonly publicKey: Uint8Array;
  /** tlog-cosignature vkey `<name>+<hash>+base64(0x04 || public key)`. */
  readonly vkey: string;
  readonly verifier: NoteVerifier;
  /** A cosigner timestamping with `clock`. */
  signer(clock: Clock): NoteSigner;
}

const hex8 = (n: number) => n.toString(16).padStart(8, "0");
// RFC 8410 PKCS#8 prefix for a 32-byte Ed25519 seed; SPKI puts the raw public key after a 12-byte header.
const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");

function publicKeyOf(seed: Uint8Array): Uint8Array {
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: "der", type: "pkcs8" });
  return new Uint8Array(createPublicKey(priv).export({ format: "der", type: "spki" }).subarray(12));
}

function fromSeed(name: string, seed: Uint8Array): WitnessKey {
  const publicKey = publicKeyOf(seed);
  return {
    name,
    publicKey,
    vkey: formatCosignatureVerifierKey(name, publicKey),
    verifier: cosignatureVerifier(name, publicKey),
    signer: (clock) => cosignatureSigner(name, seed, clock),
  };
}

/** Generate a key; returns the signer key text (for the file) and the key. */
export function generateWitnessKey(name: string, seed?: Uint8Array): { skey: string; key: WitnessKey } {
  if (!isValidKeyName(name)) throw new ValiseError("bad_request", `invalid witness name ${JSON.stringify(name)}`);
  const sk = seed ?? new Uint8Array(randomBytes(32));
  if (sk.length !== 32) throw new ValiseError("bad_request", "Ed25519 seed must be 32 bytes");
  const key = fromSeed(name, sk);
  const id = hex8(cosignatureKeyId(name, key.publicKey));
  return { skey: `PRIVATE+KEY+${name}+${id}+${toBase64(Uint8Array.of(ALG_COSIGNATURE_V1, ...sk))}`, key };
}

/** Parse a witness signer key; throws ValiseError("bad_encoding") if malformed or its key ID does not match. */
export function parseWitnessKey(skey: string): WitnessKey {
  const bad = (why: string) => new ValiseError("bad_encoding", `malformed witness key: ${why}`);
  const s = skey.trim();
  if (!s.startsWith("PRIVATE+KEY+")) throw bad("expected PRIVATE+KEY+<name>+<hash>+<key>");
  // Names have no '+'; the base64 key may.
  const [name = "", hash = "", ...rest] = s.slice("PRIVATE+KEY+".length).split("+");
  if (!isValidKeyName(name)) throw bad("invalid key name");
  if (!/^[0-9a-f]{8}$/.test(hash)) throw bad("key ID must be 8 lowercase hex digits");
  let raw: Uint8Array;
  try {
    raw = fromBase64(rest.join("+"));
  } catch {
    throw bad("invalid base64");
  }
  if (raw.length !== 33 || raw[0] !== ALG_COSIGNATURE_V1) throw bad("expected 0x04 || 32-byte Ed25519 seed");
  const key = fromSeed(name, raw.slice(1));
  if (cosignatureKeyId(name, key.publicKey) !== parseInt(hash, 16)) throw bad("key ID does not match");
  return key;
}

/** Create the key file (mode 0600, never overwriting an existing file); returns the key. */
export function createWitnessKeyFile(file: string, name = DEFAULT_WITNESS_NAME): WitnessKey {
  const { skey, key } = generateWitnessKey(name);
  let fd: number;
  try {
    fd = openSync(file, "wx", 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST")
      throw new ValiseError("conflict", `${file} exists; a witness key is never overwritten`);
    throw e;
  }
  try {
    writeSync(fd, `${skey}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return key;
}

/** Read the key file; refuses a file that group or others can access. */
export function loadWitnessKeyFile(file: string): WitnessKey {
  const st = statSync(file);
  if (process.platform !== "win32" && (st.mode & 0o077) !== 0)
    throw new ValiseError("forbidden", `${file} is accessible by group or others; chmod 600 ${file}`);
  try {
    return parseWitnessKey(readFileSync(file, "utf8"));
  } catch (e) {
    throw new ValiseError("bad_encoding", `${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

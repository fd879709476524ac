/**
 * Branded identifiers (as ts-mls does for LeafIndex): a DeviceId can't be passed where a ConversationId is expected.
 * Parsers check shape at the edge; everything past the edge carries the brand.
 */
import { ValiseError } from "./errors.js";

declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

export type UserHandle = Brand<string, "UserHandle">;
export type UnitName = Brand<string, "UnitName">;
export type DeviceId = Brand<string, "DeviceId">;
export type ConversationId = Brand<string, "ConversationId">;
export type Epoch = Brand<bigint, "Epoch">;
export type Seq = Brand<number, "Seq">;

/**
 * The id patterns as strings, for JSON Schema (`Type.String({ pattern: ID_PATTERN.device })`) and the RegExps below:
 * every schema that names an id takes its pattern from here, never a retyped copy.
 */
export const ID_PATTERN = {
  // A handle: lower-case letters, digits, '.', '_', '-'; 2..64 chars, starting with a letter.
  handle: "^[a-z][a-z0-9._-]{1,63}$",
  // A unit: upper-case path segments separated by '/', e.g. HQ/ASIA-1, EMB/BEIJING.
  unit: "^[A-Z][A-Z0-9_-]{0,31}(/[A-Z0-9][A-Z0-9_-]{0,31}){0,3}$",
  // Ids minted by the server/client: 'd-' / 'c-' + 8..64 base32/hex-ish chars.
  device: "^d-[a-z0-9]{8,64}$",
  conversation: "^c-[a-z0-9]{8,64}$",
  // Documents ('f-'), cables ('k-') and blobs ('b-'): minted by clients with randomId.
  document: "^f-[a-z0-9]{8,64}$",
  cable: "^k-[a-z0-9]{8,64}$",
  blob: "^b-[a-z0-9]{8,64}$",
  // Standard base64 (with padding), as every binary field on the wire.
  base64: "^[A-Za-z0-9+/]*={0,2}$",
} as const;

const HANDLE_RE = new RegExp(ID_PATTERN.handle);
const UNIT_RE = new RegExp(ID_PATTERN.unit);
const DEVICE_RE = new RegExp(ID_PATTERN.device);
const CONV_RE = new RegExp(ID_PATTERN.conversation);
export const DOCUMENT_ID_RE = new RegExp(ID_PATTERN.document);
export const CABLE_ID_RE = new RegExp(ID_PATTERN.cable);
export const BLOB_ID_RE = new RegExp(ID_PATTERN.blob);

export function isUserHandle(s: unknown): s is UserHandle {
  return typeof s === "string" && HANDLE_RE.test(s);
}
export function parseUserHandle(s: string): UserHandle {
  if (!isUserHandle(s))
    throw new ValiseError("bad_handle", `invalid user handle ${JSON.stringify(s)}: expected [a-z][a-z0-9._-]{1,63}`);
  return s;
}
export function isUnitName(s: unknown): s is UnitName {
  return typeof s === "string" && UNIT_RE.test(s);
}
export function parseUnitName(s: string): UnitName {
  if (!isUnitName(s))
    throw new ValiseError("bad_unit", `invalid unit ${JSON.stringify(s)}: expected upper-case path like HQ/ASIA-1`);
  return s;
}
export function isDeviceId(s: unknown): s is DeviceId {
  return typeof s === "string" && DEVICE_RE.test(s);
}
export function parseDeviceId(s: string): DeviceId {
  if (!isDeviceId(s)) throw new ValiseError("bad_request", `invalid device id ${JSON.stringify(s)}`);
  return s;
}
export function isConversationId(s: unknown): s is ConversationId {
  return typeof s === "string" && CONV_RE.test(s);
}
export function parseConversationId(s: string): ConversationId {
  if (!isConversationId(s)) throw new ValiseError("bad_request", `invalid conversation id ${JSON.stringify(s)}`);
  return s;
}
export function asSeq(n: number): Seq {
  if (!Number.isSafeInteger(n) || n < 0) throw new ValiseError("bad_request", `invalid sequence number ${n}`);
  return n as Seq;
}
export function asEpoch(n: bigint): Epoch {
  if (n < 0n) throw new ValiseError("bad_request", `invalid epoch ${n}`);
  return n as Epoch;
}

/** d: device, c: conversation, f: document, k: cable, b: blob. */
export type IdPrefix = "d" | "c" | "f" | "k" | "b";
type IdOf<P extends IdPrefix> = P extends "d" ? DeviceId : P extends "c" ? ConversationId : string;

/** Random id with a prefix, 26 chars of lower-case base32 (130 bits). Uses Web Crypto (browser and Node). */
export function randomId<P extends IdPrefix>(prefix: P): IdOf<P> {
  const bytes = new Uint8Array(17);
  globalThis.crypto.getRandomValues(bytes);
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  let out = "";
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5 && out.length < 26) {
      out += alphabet[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  return `${prefix}-${out}` as IdOf<P>;
}

/** Random secrets and their hashes: codes and tokens are stored only as SHA-256 hashes. */
import { hash, randomBytes } from "node:crypto";

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString("base64url");
}
/** A human-typable enrollment code: 4 groups of 5 base32 characters (100 bits). */
export function randomEnrollmentCode(): string {
  const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"; // no I/O/0/1
  const b = randomBytes(20);
  let s = "";
  for (let i = 0; i < 20; i++) {
    s += alphabet[b[i]! & 31];
    if (i % 5 === 4 && i < 19) s += "-";
  }
  return s;
}
export function normalizeEnrollmentCode(code: string): string {
  return code.toUpperCase().replace(/[^A-Z0-9]/g, "");
}
/** SHA-256 of the string's UTF-8 bytes, in hex (one-shot: the session lookup runs it for every request and frame). */
export function sha256Hex(s: string): string {
  return hash("sha256", s, "hex");
}

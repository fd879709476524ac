/**
 * Strict base64 decoding on the server's hot path (WebSocket send frames): the same strings as core `fromBase64`
 * accept — the standard alphabet, padded, canonical (no bits set in padding positions) — decoded natively. Buffer
 * decodes leniently (skips foreign characters, takes base64url, missing padding), so a string is accepted only if
 * the bytes encode back to exactly it. Node-only.
 */
export function fromBase64Strict(s: string): Uint8Array | null {
  const b = Buffer.from(s, "base64");
  if (b.toString("base64") !== s) return null;
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

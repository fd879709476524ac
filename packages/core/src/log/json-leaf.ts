/**
 * The first step of parsing a JSON log leaf (directory entries, audit events) over attacker bytes: bounded size,
 * strict UTF-8 (a BOM is not skipped), one JSON object. Never throws; the caller then checks fields and that the
 * bytes are the canonical encoding.
 */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function parseJsonObjectLeaf(
  bytes: Uint8Array,
  maxBytes: number,
  what: string,
): { ok: true; obj: Record<string, unknown> } | { ok: false; reason: string } {
  if (!(bytes instanceof Uint8Array) || bytes.length > maxBytes) return { ok: false, reason: `not ${what}` };
  let obj: unknown;
  try {
    obj = JSON.parse(strictUtf8.decode(bytes));
  } catch {
    return { ok: false, reason: "not UTF-8 JSON" };
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) return { ok: false, reason: "not an object" };
  return { ok: true, obj: obj as Record<string, unknown> };
}

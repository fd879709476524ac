/**
 * Directory log entries (DESIGN.md §3 "Key transparency"): one leaf per directory change, in a canonical, versioned
 * encoding — JSON with keys sorted by code point, no whitespace, integers only, strings as JSON.stringify writes
 * them. The leaf is exactly these UTF-8 bytes, so two parties who agree on the change agree on the leaf hash.
 * Entries arrive from the server: `parseDirectoryEntry` returns a result and never throws, and accepts only the
 * canonical bytes (re-encoding must reproduce the input), so one change has one leaf.
 */
import { equalBytes, utf8 } from "../bytes.js";
import { parseJsonObjectLeaf } from "./json-leaf.js";

export const DIRECTORY_ENTRY_VERSION = 1;
/** Entry bundles (C2SP tlog-tiles) prefix each entry with a uint16 length. */
export const MAX_DIRECTORY_ENTRY_BYTES = 65_535;

export type DirectoryEntry =
  | { v: 1; type: "unit.add"; unit: string; maxLabel: string; time: number }
  | { v: 1; type: "user.add"; user: string; units: string[]; clearance: string; role: string; time: number }
  | { v: 1; type: "user.clearance"; user: string; clearance: string; time: number }
  | { v: 1; type: "device.add"; user: string; device: string; name: string; key: string; time: number }
  | { v: 1; type: "device.revoke"; user: string; device: string; time: number }
  // Staff lifecycle (issue 12): every fact that decides who gets keys has its own entry.
  /** A unit's highest label changed. */
  | { v: 1; type: "unit.label"; unit: string; maxLabel: string; time: number }
  /** The user became a member of the unit (a posting, a move: `member.remove` + `member.add` in one change). */
  | { v: 1; type: "member.add"; user: string; unit: string; time: number }
  | { v: 1; type: "member.remove"; user: string; unit: string; time: number }
  /** The user's role changed (`user`, `officer`, `admin`, `archivist`). */
  | { v: 1; type: "user.role"; user: string; role: string; time: number }
  /** Offboarding: a disabled user gets no keys and cannot log in; `user.enable` reverses it. Devices stay revoked. */
  | { v: 1; type: "user.disable"; user: string; time: number }
  | { v: 1; type: "user.enable"; user: string; time: number }
  // Records archive (issue 14 part 3).
  /**
   * The user (role `archivist`) became the records archive of the unit: a member of its channels and links whose
   * devices receive every key of the unit their clearance allows. Valid only while the user's role is `archivist`
   * and the user is not already a member of the unit; clients ignore one that is not (and alert on the server's rows).
   */
  | { v: 1; type: "archive.assign"; user: string; unit: string; time: number }
  /** The archive assignment ends (the user leaves the unit's channels and links). */
  | { v: 1; type: "archive.remove"; user: string; unit: string; time: number }
  /**
   * How far back the unit shares keys with members who join later: `all` (the default: everything the unit holds)
   * or a number of seconds (decimal, no leading zero) before the forward. The archive always gets everything.
   */
  | { v: 1; type: "unit.share"; unit: string; since: string; time: number };

export type DirectoryEntryType = DirectoryEntry["type"];

/** The fields each entry type has besides `v`, `type` and `time`, with their JSON kinds. */
const FIELDS: Record<DirectoryEntryType, Record<string, "string" | "strings">> = {
  "unit.add": { unit: "string", maxLabel: "string" },
  "user.add": { user: "string", units: "strings", clearance: "string", role: "string" },
  "user.clearance": { user: "string", clearance: "string" },
  "device.add": { user: "string", device: "string", name: "string", key: "string" },
  "device.revoke": { user: "string", device: "string" },
  "unit.label": { unit: "string", maxLabel: "string" },
  "member.add": { user: "string", unit: "string" },
  "member.remove": { user: "string", unit: "string" },
  "user.role": { user: "string", role: "string" },
  "user.disable": { user: "string" },
  "user.enable": { user: "string" },
  "archive.assign": { user: "string", unit: "string" },
  "archive.remove": { user: "string", unit: "string" },
  "unit.share": { unit: "string", since: "string" },
};

/** A `unit.share` window: `all`, or whole seconds (1 to 100 years) written without leading zeros. */
export function parseShareSince(since: string): "all" | number | null {
  if (since === "all") return "all";
  if (!/^[1-9][0-9]{0,9}$/.test(since)) return null;
  const n = Number(since);
  return n <= 100 * 365 * 86_400 ? n : null;
}

type Json = string | number | Json[] | { [k: string]: Json };

function canonicalJson(v: Json): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new TypeError("canonical JSON holds safe integers only");
    return String(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k]!)}`).join(",")}}`;
}

/** The leaf bytes of an entry. `user.add` units are sorted and deduplicated first. */
export function encodeDirectoryEntry(e: DirectoryEntry): Uint8Array {
  // Only the type's own fields: an object carrying more (a caller's record) still encodes as its entry.
  const src = e as unknown as Record<string, Json>;
  const obj: Record<string, Json> = { v: e.v, type: e.type, time: e.time };
  for (const k of Object.keys(FIELDS[e.type])) obj[k] = src[k]!;
  if (e.type === "user.add") obj.units = [...new Set(e.units)].sort();
  const out = utf8(canonicalJson(obj));
  if (out.length > MAX_DIRECTORY_ENTRY_BYTES) throw new RangeError("directory entry too large");
  return out;
}

export type ParsedDirectoryEntry = { ok: true; entry: DirectoryEntry } | { ok: false; reason: string };

/** Parse leaf bytes strictly: known version and type, exactly the type's fields, canonical encoding. */
export function parseDirectoryEntry(bytes: Uint8Array): ParsedDirectoryEntry {
  const leaf = parseJsonObjectLeaf(bytes, MAX_DIRECTORY_ENTRY_BYTES, "an entry");
  if (!leaf.ok) return leaf;
  const o = leaf.obj;
  if (o.v !== DIRECTORY_ENTRY_VERSION) return { ok: false, reason: "unknown version" };
  if (typeof o.type !== "string" || !Object.hasOwn(FIELDS, o.type)) return { ok: false, reason: "unknown type" };
  const fields = FIELDS[o.type as DirectoryEntryType];
  if (!Number.isSafeInteger(o.time) || (o.time as number) < 0) return { ok: false, reason: "bad time" };
  const expected = new Set(["v", "type", "time", ...Object.keys(fields)]);
  if (Object.keys(o).length !== expected.size || !Object.keys(o).every((k) => expected.has(k)))
    return { ok: false, reason: "unexpected or missing fields" };
  for (const [k, kind] of Object.entries(fields)) {
    const x = o[k];
    const ok =
      kind === "string"
        ? typeof x === "string"
        : Array.isArray(x) && x.every((s, i) => typeof s === "string" && (i === 0 || x[i - 1] < s));
    if (!ok) return { ok: false, reason: `bad field ${k}` };
  }
  const entry = o as unknown as DirectoryEntry;
  if (entry.type === "unit.share" && parseShareSince(entry.since) === null)
    return { ok: false, reason: "bad field since" };
  let again: Uint8Array;
  try {
    again = encodeDirectoryEntry(entry);
  } catch {
    return { ok: false, reason: "not canonical" };
  }
  if (!equalBytes(again, bytes)) return { ok: false, reason: "not canonical" };
  return { ok: true, entry };
}

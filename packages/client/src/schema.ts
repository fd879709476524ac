/**
 * A small schema parser for what peers send (decrypted MLS payloads, cable headers) and what a profile stores:
 * bounded strings, bounded arrays, integer ranges, ids by pattern, objects with exactly the listed fields (an
 * unknown or inherited field is refused, so `__proto__`, `constructor` and friends never get through). A parser
 * returns a fresh, typed value built only from the fields it names, or throws a `protocol_error` ValiseError; it
 * never throws anything else on any input. Browser-safe (no node: imports): the CLI and the web app share it.
 */
import { ValiseError } from "@valise/core";

/** Parses `v` (found at `path`, for the error message) into a T, or throws a `protocol_error` ValiseError. */
export type Parser<T> = (v: unknown, path: string) => T;
export type Parsed<P> = P extends Parser<infer T> ? T : never;

export function fail(path: string, what: string): never {
  throw new ValiseError("protocol_error", `${path}: ${what}`);
}

/** A string of at most `max` UTF-16 units (and at least `min`), optionally matching `pattern` or passing `test`. */
export function str(
  opts: { max: number; min?: number; pattern?: RegExp; test?: (s: string) => boolean } = { max: 1000 },
): Parser<string> {
  return (v, path) => {
    if (typeof v !== "string") fail(path, "expected a string");
    if (v.length > opts.max) fail(path, `longer than ${opts.max}`);
    if (v.length < (opts.min ?? 0)) fail(path, `shorter than ${opts.min ?? 0}`);
    if (opts.pattern && !opts.pattern.test(v)) fail(path, "not of the expected form");
    if (opts.test) {
      let ok = false;
      try {
        ok = opts.test(v);
      } catch {
        ok = false;
      }
      if (!ok) fail(path, "not of the expected form");
    }
    return v;
  };
}

/** A safe integer in [min, max]. */
export function int(opts: { min: number; max: number }): Parser<number> {
  return (v, path) => {
    if (typeof v !== "number" || !Number.isSafeInteger(v)) fail(path, "expected an integer");
    if (v < opts.min || v > opts.max) fail(path, `out of range ${opts.min}..${opts.max}`);
    return v;
  };
}

export function literal<const T extends string | number | boolean>(value: T): Parser<T> {
  return (v, path) => {
    if (v !== value) fail(path, `expected ${JSON.stringify(value)}`);
    return value;
  };
}

/** One of a fixed set of strings. */
export function oneOf<const T extends string>(values: readonly T[]): Parser<T> {
  return (v, path) => {
    if (typeof v !== "string" || !(values as readonly string[]).includes(v))
      fail(path, `expected one of ${values.join(", ")}`);
    return v as T;
  };
}

export function nullable<T>(p: Parser<T>): Parser<T | null> {
  return (v, path) => (v === null ? null : p(v, path));
}

/** A value transformed after parsing (e.g. canonicalised); an exception from `f` is a protocol_error. */
export function map<T, U>(p: Parser<T>, f: (t: T) => U): Parser<U> {
  return (v, path) => {
    const t = p(v, path);
    try {
      return f(t);
    } catch (e) {
      return fail(path, e instanceof Error ? e.message : "invalid");
    }
  };
}

/** An array of at most `max` items, each parsed by `item`; `unique` refuses duplicates (strings compared). */
export function arr<T>(item: Parser<T>, opts: { max: number; unique?: boolean }): Parser<T[]> {
  return (v, path) => {
    if (!Array.isArray(v)) fail(path, "expected an array");
    if (v.length > opts.max) fail(path, `more than ${opts.max} items`);
    const out: T[] = [];
    for (let i = 0; i < v.length; i++) out.push(item(v[i], `${path}[${i}]`));
    if (opts.unique && new Set(out).size !== out.length) fail(path, "duplicate items");
    return out;
  };
}

type Shape = Record<string, Parser<unknown>>;
type ObjOf<S extends Shape, O extends keyof S> = { [K in Exclude<keyof S, O>]: Parsed<S[K]> } & {
  [K in O]?: Parsed<S[K]>;
};

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * An object with exactly the fields of `shape` (each required unless listed in `optional`, where a missing field
 * stays absent). Any other own field is refused; fields are read only as own properties. The result is a fresh
 * object holding only the parsed fields.
 */
export function obj<S extends Shape, O extends keyof S = never>(
  shape: S,
  opts: { optional?: readonly O[] } = {},
): Parser<ObjOf<S, O>> {
  const known = new Set(Object.keys(shape));
  const optional = new Set<string>(opts.optional as readonly string[] | undefined);
  return (v, path) => {
    if (!isPlainRecord(v)) fail(path, "expected an object");
    for (const k of Object.keys(v)) if (!known.has(k)) fail(path, `unknown field ${JSON.stringify(k.slice(0, 40))}`);
    const out: Record<string, unknown> = {};
    for (const k of known) {
      if (!Object.hasOwn(v, k)) {
        if (optional.has(k)) continue;
        fail(path, `missing field ${k}`);
      }
      out[k] = shape[k]!(v[k], `${path}.${k}`);
    }
    return out as ObjOf<S, O>;
  };
}

/** A tagged union: `tag` selects the parser (an unknown tag is refused). */
export function tagged<K extends string, M extends Record<string, Parser<unknown>>>(
  tag: K,
  cases: M,
): Parser<Parsed<M[keyof M]>> {
  return (v, path) => {
    if (!isPlainRecord(v) || !Object.hasOwn(v, tag)) fail(path, `expected an object with ${tag}`);
    const t = v[tag];
    if (typeof t !== "string" || !Object.hasOwn(cases, t)) fail(path, `unknown ${tag}`);
    return cases[t]!(v, path) as Parsed<M[keyof M]>;
  };
}

/**
 * JSON from untrusted bytes: at most `maxBytes`, strict UTF-8, nesting at most `maxDepth` deep (checked before
 * JSON.parse so hostile nesting costs nothing), then `parser`.
 */
export function parseJsonBytes<T>(
  bytes: Uint8Array,
  parser: Parser<T>,
  opts: { maxBytes: number; maxDepth?: number; what: string },
): T {
  if (bytes.length > opts.maxBytes) fail(opts.what, `larger than ${opts.maxBytes} bytes`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return fail(opts.what, "not UTF-8");
  }
  if (jsonDepth(text) > (opts.maxDepth ?? 8)) fail(opts.what, "nested too deeply");
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return fail(opts.what, "not JSON");
  }
  return parser(v, opts.what);
}

/** Maximum bracket nesting of a JSON text (brackets inside strings ignored). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) max = Math.max(max, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/** A record with no prototype: safe to index with a peer's string (use Object.hasOwn to test membership). */
export function nullRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** The own value at `key`, or undefined (never an inherited one such as Object.prototype for "__proto__"). */
export function own<T>(rec: Record<string, T> | undefined | null, key: string): T | undefined {
  return rec && Object.hasOwn(rec, key) ? rec[key] : undefined;
}

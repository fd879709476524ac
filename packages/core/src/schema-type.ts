/**
 * A small builder of TypeBox schemas for the wire contract (`wire.ts`), with TypeBox's own types.
 *
 * Why: importing the `typebox` package resolves about 1,400 modules. Every `valise` command and the web app paid that
 * at start, while the wire contract only needs plain JSON Schema objects and their static types. The objects built
 * here are what TypeBox builds: the same enumerable JSON Schema fields, and the same hidden `~kind` and `~optional`
 * markers. So the server can still compose them with TypeBox's `Type` (Fastify validates them as JSON Schema), and
 * `Static<>` infers the same types. The import of `typebox` below is type-only: it costs nothing at run time.
 */
import type { Type as TypeBox } from "typebox";

type TB = typeof TypeBox;

/** A schema object: the enumerable JSON Schema fields, then TypeBox's hidden markers (non-enumerable, as TypeBox). */
function create(hidden: Record<string, unknown>, fields: object, options: object = {}): object {
  const s: Record<string, unknown> = { ...fields, ...options };
  for (const [k, value] of Object.entries(hidden))
    Object.defineProperty(s, k, { configurable: true, writable: true, enumerable: false, value });
  return s;
}

const isOptional = (s: unknown) => typeof s === "object" && s !== null && Object.hasOwn(s, "~optional");

function literalType(value: unknown): string {
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") return typeof value;
  throw new TypeError(`schema-type: a literal must be a string, number or boolean, not ${typeof value}`);
}

/** The subset of TypeBox's `Type` that the wire contract uses. */
export const Type = {
  String: ((options?: object) => create({ "~kind": "String" }, { type: "string" }, options)) as TB["String"],
  Integer: ((options?: object) => create({ "~kind": "Integer" }, { type: "integer" }, options)) as TB["Integer"],
  Number: ((options?: object) => create({ "~kind": "Number" }, { type: "number" }, options)) as TB["Number"],
  Boolean: ((options?: object) => create({ "~kind": "Boolean" }, { type: "boolean" }, options)) as TB["Boolean"],
  Null: ((options?: object) => create({ "~kind": "Null" }, { type: "null" }, options)) as TB["Null"],
  Unknown: ((options?: object) => create({ "~kind": "Unknown" }, {}, options)) as TB["Unknown"],
  Literal: ((value: unknown, options?: object) =>
    create({ "~kind": "Literal" }, { type: literalType(value), const: value }, options)) as TB["Literal"],
  Array: ((items: object, options?: object) =>
    create({ "~kind": "Array" }, { type: "array", items }, options)) as TB["Array"],
  Union: ((anyOf: object[], options?: object) => create({ "~kind": "Union" }, { anyOf }, options)) as TB["Union"],
  Object: ((properties: Record<string, object>, options?: object) => {
    const required = Object.keys(properties).filter((k) => !isOptional(properties[k]));
    return create(
      { "~kind": "Object" },
      { type: "object", ...(required.length > 0 ? { required } : {}), properties },
      options,
    );
  }) as TB["Object"],
  /** An object of any keys (string keys only, as `Type.Record(Type.String(), value)`), each value `value`. */
  Record: ((key: object, value: object, options?: object) => {
    const k = key as { type?: unknown; pattern?: unknown };
    if (k.type !== "string" || k.pattern !== undefined)
      throw new TypeError("schema-type: a record's key must be Type.String() without a pattern");
    return create({ "~kind": "Record" }, { type: "object", patternProperties: { "^.*$": value } }, options);
  }) as TB["Record"],
  /** A copy of `schema` marked optional (a property that may be absent in an Object). */
  Optional: ((schema: object) => {
    const copy = create({}, schema);
    for (const k of Object.getOwnPropertyNames(schema))
      if (!Object.prototype.propertyIsEnumerable.call(schema, k))
        Object.defineProperty(copy, k, Object.getOwnPropertyDescriptor(schema, k)!);
    Object.defineProperty(copy, "~optional", { configurable: true, writable: true, enumerable: false, value: true });
    return copy;
  }) as TB["Optional"],
};

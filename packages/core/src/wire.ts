/**
 * The wire contract (issue 17): the request and response schemas (TypeBox, i.e. JSON Schema) of the main endpoints,
 * in one module that the server validates requests with (Fastify) and the client validates responses with
 * (`parseWire`). Browser-safe: no node: imports, and `parseWire` interprets the schema (no code generation, so the
 * web app's Content-Security-Policy without 'unsafe-eval' is kept).
 *
 * Responses allow fields beyond the ones named (a newer server may add some); requests do not.
 */
import type { Static, TSchema } from "typebox";
import { Type } from "./schema-type.js";
import { ValiseError } from "./errors.js";
import { ID_PATTERN } from "./ids.js";

export const MAX_MESSAGE = 256 * 1024;
export const MAX_COMMIT = 16 * 1024 * 1024;

export const ConversationIdT = Type.String({ pattern: ID_PATTERN.conversation });
export const DeviceIdT = Type.String({ pattern: ID_PATTERN.device });
export const IdempotencyKeyT = Type.String({ minLength: 8, maxLength: 128, pattern: "^[A-Za-z0-9_-]+$" });
export const base64T = (maxLength: number) => Type.String({ maxLength, pattern: ID_PATTERN.base64 });
const Seq = Type.Integer({ minimum: 0 });
const Time = Type.Integer({ minimum: 0 });
const ConversationKindT = Type.Union([
  Type.Literal("direct"),
  Type.Literal("group"),
  Type.Literal("unit"),
  Type.Literal("link"),
]);

// ---------------------------------------------------------------- requests (the server validates these)

export const CreateConversationBody = Type.Object(
  {
    id: ConversationIdT,
    kind: ConversationKindT,
    label: Type.String({ minLength: 1, maxLength: 512 }),
    unit: Type.Optional(Type.String({ maxLength: 200 })),
    /** `link`: the originating unit (the caller's); `unit` is the addressee unit. */
    fromUnit: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
export const ConversationParams = Type.Object({ id: ConversationIdT });
export const FetchMessagesQuery = Type.Object(
  {
    after: Type.Optional(Type.Integer({ minimum: 0 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  { additionalProperties: false },
);
export const CommitBody = Type.Object(
  {
    commit: base64T(MAX_COMMIT),
    welcome: Type.Optional(base64T(MAX_COMMIT)),
    groupInfo: base64T(MAX_COMMIT),
    added: Type.Array(DeviceIdT, { maxItems: 5000 }),
    removed: Type.Array(DeviceIdT, { maxItems: 5000 }),
    idempotencyKey: IdempotencyKeyT,
    external: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export const InboxQuery = Type.Object(
  { after: Type.Optional(Type.Integer({ minimum: 0 })) },
  { additionalProperties: false },
);

// ---------------------------------------------------------------- responses (the client validates these)

export const WireConversation = Type.Object({
  id: ConversationIdT,
  kind: ConversationKindT,
  label: Type.String({ maxLength: 512 }),
  unit: Type.Union([Type.String({ maxLength: 200 }), Type.Null()]),
  fromUnit: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Null()])),
  creator: Type.String({ maxLength: 200 }),
  epoch: Seq,
  headSeq: Seq,
  joinedSeq: Type.Optional(Seq),
  leftSeq: Type.Optional(Type.Union([Seq, Type.Null()])),
});
export const ConversationsResponse = Type.Object({ conversations: Type.Array(WireConversation) });

export const WireMessage = Type.Object({
  seq: Type.Integer({ minimum: 1 }),
  kind: Type.Union([Type.Literal("application"), Type.Literal("commit"), Type.Literal("proposal")]),
  epoch: Seq,
  sender: DeviceIdT,
  payload: base64T(MAX_COMMIT * 2),
  createdAt: Time,
});
export const MessagesResponse = Type.Object({ messages: Type.Array(WireMessage, { maxItems: 1000 }) });

export const AppendAnswerResponse = Type.Object({ seq: Seq, epoch: Seq, duplicate: Type.Boolean() });

const LogIndex = Type.Optional(Type.Union([Seq, Type.Null()]));
export const WireUser = Type.Object({
  handle: Type.String({ pattern: ID_PATTERN.handle }),
  units: Type.Array(Type.String({ pattern: ID_PATTERN.unit }), { maxItems: 1000 }),
  clearance: Type.String({ maxLength: 512 }),
  role: Type.String({ maxLength: 64 }),
  devices: Type.Array(
    Type.Object({
      id: DeviceIdT,
      name: Type.String({ maxLength: 200 }),
      signaturePublicKey: base64T(1000),
      createdAt: Time,
      revokedAt: Type.Union([Time, Type.Null()]),
      logIndex: LogIndex,
      revokeLogIndex: LogIndex,
    }),
    { maxItems: 10_000 },
  ),
  logIndex: LogIndex,
  clearanceLogIndex: LogIndex,
  disabled: Type.Optional(Type.Boolean()),
});

// ---------------------------------------------------------------- checking

type Schema = {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean;
  items?: Schema;
  anyOf?: Schema[];
  const?: unknown;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
};

const patterns = new Map<string, RegExp>();
const re = (p: string) => {
  let r = patterns.get(p);
  if (!r) patterns.set(p, (r = new RegExp(p, "u")));
  return r;
};
const show = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "an array" : typeof v);

/**
 * Why `value` does not match `schema` (the JSON Schema subset above: object, array, string, integer, number,
 * boolean, null, anyOf, const), or null if it does. `path` names where in the value (for the message).
 */
export function wireProblem(schema: TSchema, value: unknown, path = "$"): string | null {
  const s = schema as unknown as Schema;
  if (s.anyOf)
    return s.anyOf.some((x) => wireProblem(x, value, path) === null) ? null : `${path}: not one of the allowed forms`;
  if ("const" in s) return value === s.const ? null : `${path}: expected ${JSON.stringify(s.const)}`;
  switch (s.type) {
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value))
        return `${path}: expected an object, got ${show(value)}`;
      const o = value as Record<string, unknown>;
      for (const k of s.required ?? []) if (!Object.hasOwn(o, k)) return `${path}.${k}: missing`;
      for (const [k, v] of Object.entries(o)) {
        const p = s.properties && Object.hasOwn(s.properties, k) ? s.properties[k] : undefined;
        if (!p) {
          if (s.additionalProperties === false) return `${path}.${k}: not allowed`;
          continue;
        }
        const why = wireProblem(p, v, `${path}.${k}`);
        if (why) return why;
      }
      return null;
    }
    case "array": {
      if (!Array.isArray(value)) return `${path}: expected an array, got ${show(value)}`;
      if (s.maxItems !== undefined && value.length > s.maxItems) return `${path}: more than ${s.maxItems} items`;
      if (s.minItems !== undefined && value.length < s.minItems) return `${path}: fewer than ${s.minItems} items`;
      if (s.items)
        for (let i = 0; i < value.length; i++) {
          const why = wireProblem(s.items, value[i], `${path}[${i}]`);
          if (why) return why;
        }
      return null;
    }
    case "string":
      if (typeof value !== "string") return `${path}: expected a string, got ${show(value)}`;
      if (s.maxLength !== undefined && value.length > s.maxLength) return `${path}: longer than ${s.maxLength}`;
      if (s.minLength !== undefined && value.length < s.minLength) return `${path}: shorter than ${s.minLength}`;
      if (s.pattern !== undefined && !re(s.pattern).test(value)) return `${path}: not of the expected form`;
      return null;
    case "integer":
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) return `${path}: expected a number, got ${show(value)}`;
      if (s.type === "integer" && !Number.isSafeInteger(value)) return `${path}: expected an integer`;
      if (s.minimum !== undefined && value < s.minimum) return `${path}: below ${s.minimum}`;
      if (s.maximum !== undefined && value > s.maximum) return `${path}: above ${s.maximum}`;
      return null;
    case "boolean":
      return typeof value === "boolean" ? null : `${path}: expected a boolean, got ${show(value)}`;
    case "null":
      return value === null ? null : `${path}: expected null, got ${show(value)}`;
    default:
      return null;
  }
}

/** `value` as the schema's type, or a `protocol_error` naming `what` (e.g. the endpoint) and the first mismatch. */
export function parseWire<T extends TSchema>(schema: T, value: unknown, what: string): Static<T> {
  const why = wireProblem(schema, value);
  if (why) throw new ValiseError("protocol_error", `${what}: malformed answer from the server (${why})`);
  return value as Static<T>;
}

import { ValiseError, fromBase64, isUnitName, parsePrecedence } from "@valise/core";

/** What a sync hands to the user: decrypted items, membership news, and alerts. */
export type ReceivedItem =
  | {
      type: "message";
      from: string;
      device: string;
      conversation: string;
      kind: string;
      label: string;
      text: string;
      seq: number;
      time: string;
    }
  | {
      type: "joined";
      from: string;
      conversation: string;
      kind: string;
      label: string;
      text: string;
      seq: number;
      time: string;
    }
  | { type: "alert"; from: string; conversation: string; label: string; text: string; seq: number; time: string }
  | {
      /** A cable addressed to (or sent by) one of this user's units; `text` is its subject. */
      type: "cable";
      from: string;
      conversation: string;
      label: string;
      text: string;
      seq: number;
      time: string;
      id: string;
      reference: string;
      precedence: string;
      originator: string;
      action: string[];
      info: string[];
      corrects: string | null;
    }
  | {
      /** A document (version) shared with this user; `text` is its file name. */
      type: "document";
      from: string;
      conversation: string;
      label: string;
      text: string;
      seq: number;
      time: string;
      id: string;
      version: number;
      size: number;
    };

/** Application payloads inside MLS: versioned JSON, told apart by `t`. */
export interface TextPayload {
  t: "text";
  text: string;
}
/**
 * A cable's content key and the metadata its sender binds to it (signed inside MLS): a server that changes the
 * reference, precedence, label or addressees it lists is caught by comparing with this.
 */
export interface CablePayload {
  t: "cable";
  id: string;
  reference: string;
  originator: string;
  precedence: string;
  label: string;
  action: string[];
  info: string[];
  corrects: string | null;
  subject: string;
  blob: string;
  /** Ciphertext bytes of the content blob. */
  size: number;
  key: string; // base64, 32 bytes
}
/** A document version's key, its (encrypted, here) file name and where it is shared. */
export interface DocumentPayload {
  t: "doc";
  id: string;
  version: number;
  label: string;
  name: string;
  /** Plaintext bytes. */
  size: number;
  blob: string;
  key: string; // base64, 32 bytes
  to: { kind: "user" | "unit"; name: string };
}
export type AppPayload = TextPayload | CablePayload | DocumentPayload;

/**
 * Authenticated data bound to every application message (RFC 9420 §6.3.1 authenticated_data): the conversation and
 * its label. A server that moves or relabels a ciphertext makes it fail the receiver's check.
 */
export function messageAad(conversation: string, label: string): string {
  return `valise/1\nconversation=${conversation}\nlabel=${label}`;
}

const MAX_ITEM_STRING = 100_000;
/** Parses a decrypted payload strictly: a sender's bytes are checked before the SDK acts on them. */
export function parsePayload(bytes: Uint8Array): AppPayload {
  let p: unknown;
  try {
    p = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new ValiseError("protocol_error", "payload is not JSON");
  }
  const o = (typeof p === "object" && p !== null ? p : {}) as Record<string, unknown>;
  const str = (k: string, max = 1000) => {
    const v = o[k];
    if (typeof v !== "string" || v.length > max) throw new ValiseError("protocol_error", `payload field ${k}`);
    return v;
  };
  const int = (k: string) => {
    const v = o[k];
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw new ValiseError("protocol_error", `payload field ${k}`);
    return v as number;
  };
  const units = (k: string) => {
    const v = o[k];
    if (!Array.isArray(v) || v.length > 200 || !v.every(isUnitName))
      throw new ValiseError("protocol_error", `payload field ${k}`);
    return v as string[];
  };
  const key = () => {
    const k = str("key", 100);
    if (fromBase64(k).length !== 32) throw new ValiseError("protocol_error", "payload key must be 32 bytes");
    return k;
  };
  switch (o.t) {
    case "text":
      return { t: "text", text: str("text", MAX_ITEM_STRING) };
    case "cable": {
      const corrects = o.corrects === null || o.corrects === undefined ? null : str("corrects", 200);
      return {
        t: "cable",
        id: str("id", 100),
        reference: str("reference", 200),
        originator: str("originator", 200),
        precedence: parsePrecedence(str("precedence", 20)),
        label: str("label", 512),
        action: units("action"),
        info: units("info"),
        corrects,
        subject: str("subject", 2000),
        blob: str("blob", 100),
        size: int("size"),
        key: key(),
      };
    }
    case "doc": {
      const to = (typeof o.to === "object" && o.to !== null ? o.to : {}) as Record<string, unknown>;
      if ((to.kind !== "user" && to.kind !== "unit") || typeof to.name !== "string")
        throw new ValiseError("protocol_error", "payload field to");
      return {
        t: "doc",
        id: str("id", 100),
        version: int("version"),
        label: str("label", 512),
        name: str("name", 1000),
        size: int("size"),
        blob: str("blob", 100),
        key: key(),
        to: { kind: to.kind, name: to.name },
      };
    }
    default:
      throw new ValiseError("protocol_error", "unknown payload type");
  }
}

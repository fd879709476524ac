/**
 * Cables (DESIGN §2): released once by an originator unit to ACTION and INFO units, numbered by the server,
 * immutable. The subject, body and attachments are encrypted once under a random content key and stored once as a
 * blob; the key, with the metadata the sender binds to it, travels to each addressee unit inside an MLS message in
 * a group of that unit's cleared devices (and the originator's). The server's listing is checked against what the
 * sender signed.
 */
import {
  ValiseError,
  canonicalLabel,
  dominates,
  formatCableReference,
  fromBase64,
  parseCableReference,
  parseLabel,
  parsePrecedence,
  parseUnitName,
  randomId,
  toBase64,
  utf8,
} from "@valise/core";
import type { ServerCable } from "./transport.js";
import {
  MAX_CABLE_BODY,
  MAX_CABLE_HEADER,
  MAX_FILE_NAME,
  MAX_SUBJECT,
  parseCableHeader,
  type CableHeader,
  type CablePayload,
} from "./items.js";
import { heldCable } from "./held-keys.js";
import { missingKeyMessage } from "./missing-key.js";
import {
  ByteReader,
  bytesSource,
  concatSources,
  downloadDecrypted,
  uploadEncrypted,
  type PlainSource,
  type Progress,
} from "./content.js";
import type { ContentHost } from "./host.js";

export interface CableSpec {
  /** Originating unit; default: the sender's only unit. */
  from?: string | undefined;
  action: string[];
  info?: string[] | undefined;
  precedence: string;
  label: string;
  subject: string;
  body: string;
  attachments?: { name: string; source: PlainSource }[] | undefined;
  /** Reference of the cable this one corrects. */
  corrects?: string | undefined;
}

export interface OpenedCable {
  cable: ServerCable;
  subject: string;
  body: string;
  attachments: { name: string; size: number }[];
}

export class Cables {
  constructor(private readonly host: ContentHost) {}

  /** Encrypts, uploads, releases (the server numbers it) and delivers the key to every addressee unit. */
  async send(spec: CableSpec, onProgress?: Progress): Promise<{ id: string; reference: string; cable: ServerCable }> {
    const label = canonicalLabel(spec.label);
    const precedence = parsePrecedence(spec.precedence);
    const action = unique(spec.action.map(parseUnitName));
    const info = unique((spec.info ?? []).map(parseUnitName));
    if (action.length === 0) throw new ValiseError("bad_request", "a cable needs at least one ACTION addressee");
    const both = action.filter((u) => info.includes(u));
    if (both.length > 0) throw new ValiseError("bad_request", `${both.join(", ")} cannot be both ACTION and INFO`);
    if (spec.subject.trim().length === 0) throw new ValiseError("bad_request", "a cable needs a subject");
    // What receivers accept (items.ts): refused here rather than by every addressee.
    if (spec.subject.length > MAX_SUBJECT)
      throw new ValiseError("bad_request", `a cable's subject has at most ${MAX_SUBJECT} characters`);
    if (spec.body.length > MAX_CABLE_BODY)
      throw new ValiseError("bad_request", `a cable's body has at most ${MAX_CABLE_BODY} characters`);
    if ((spec.attachments ?? []).some((a) => a.name.length === 0 || a.name.length > MAX_FILE_NAME))
      throw new ValiseError("bad_request", `attachment names have 1 to ${MAX_FILE_NAME} characters`);
    return this.host.authed(async () => {
      const me = await this.host.me();
      if (!dominates(parseLabel(me.clearance), parseLabel(label)))
        throw new ValiseError("not_cleared", `your clearance does not cover ${label}`);
      const originator = spec.from ?? (me.units.length === 1 ? me.units[0] : undefined);
      if (!originator)
        throw new ValiseError(
          "bad_request",
          `you belong to ${me.units.length} units: say which one releases it (from)`,
        );
      if (!me.units.includes(originator)) throw new ValiseError("forbidden", `you are not a member of ${originator}`);
      const corrects = spec.corrects ? formatCableReference(parseCableReference(spec.corrects)) : null;
      const attachments = spec.attachments ?? [];
      const header: CableHeader = {
        v: 1,
        subject: spec.subject,
        body: spec.body,
        attachments: attachments.map((a) => ({ name: a.name, size: a.source.size })),
      };
      const headerBytes = utf8(JSON.stringify(header));
      const prefix = new Uint8Array(4);
      new DataView(prefix.buffer).setUint32(0, headerBytes.length);
      const source = concatSources([
        bytesSource(prefix),
        bytesSource(headerBytes),
        ...attachments.map((a) => a.source),
      ]);
      const id = randomId("k");
      const key = globalThis.crypto.getRandomValues(new Uint8Array(32));
      const up = await uploadEncrypted(
        this.host.transport,
        this.host.cipher,
        key,
        { objectId: id, version: 1, label },
        source,
        onProgress,
      );
      const cable = await this.host.transport.releaseCable({
        id,
        originator,
        action,
        info,
        precedence,
        label,
        blob: up.blob,
        ...(corrects ? { corrects } : {}),
      });
      const payload: CablePayload = {
        t: "cable",
        id,
        reference: cable.reference,
        originator,
        precedence,
        label,
        action,
        info,
        corrects,
        subject: spec.subject,
        blob: up.blob,
        size: up.size,
        key: toBase64(key),
        sender: this.host.handle,
        senderDevice: this.host.deviceId,
      };
      checkAgainstServer(payload, cable);
      this.host.profile.cables[id] = payload;
      await this.host.save();
      for (const unit of unique([...action, ...info]))
        await this.host.deliver(
          unit === originator ? { kind: "unit", unit, label } : { kind: "link", fromUnit: originator, unit, label },
          payload,
        );
      return { id, reference: cable.reference, cable };
    });
  }

  /** The server's listing (FLASH first), with the subject where this device holds the key. */
  async list(q: { unit?: string; precedence?: string; limit?: number } = {}) {
    return this.host.authed(async () => {
      const cables = await this.host.transport.cables(q);
      return cables.map((c) => {
        const p = heldCable(this.host.profile.heldKeys, c.id);
        let subject: string | null = null;
        let problem: string | null = null;
        if (p) {
          try {
            checkAgainstServer(p, c);
            subject = p.subject;
          } catch (e) {
            problem = e instanceof Error ? e.message : String(e);
          }
        }
        return { ...c, subject, problem };
      });
    });
  }

  /** A cable by reference (or id): decrypted, checked against what its sender signed, marked read. */
  async open(
    ref: string,
    opts: {
      onAttachment?: (
        a: { name: string; size: number; index: number },
        bytes: AsyncIterable<Uint8Array>,
      ) => Promise<void>;
      onProgress?: Progress;
      markRead?: boolean;
    } = {},
  ): Promise<OpenedCable> {
    return this.host.authed(async () => {
      let cable = /^k-/.test(ref)
        ? await this.host.transport.cable(ref)
        : await this.host.transport.cableByReference(ref.trim());
      let p = heldCable(this.host.profile.heldKeys, cable.id);
      if (!p) {
        await this.host.catchUp(); // the key may be in a message not processed yet
        p = heldCable(this.host.profile.heldKeys, cable.id);
      }
      if (!p) {
        const me = await this.host.user(this.host.handle);
        const holders = await keyHolders(this.host, [cable.originator, ...cable.action, ...cable.info], cable.label);
        const what = `cable ${cable.reference} [${cable.precedence}, from ${cable.originator}, ${new Date(cable.createdAt).toISOString()}]`;
        throw new ValiseError(
          "not_found",
          `${missingKeyMessage(what, cable.label, me, holders)}; \`valise cable list\` lists the others`,
          {
            reference: cable.reference,
            label: cable.label,
            precedence: cable.precedence,
            // For an app's own wording (issue 14): the sentence without the CLI hint, and who can forward the key.
            missingKey: missingKeyMessage(what, cable.label, me, holders),
            holders: holders.filter((h) => h !== this.host.handle),
          },
        );
      }
      checkAgainstServer(p, cable);
      const plain = downloadDecrypted(
        this.host.transport,
        this.host.cipher,
        fromBase64(p.key),
        { objectId: p.id, version: 1, label: p.label },
        p.blob,
        opts.onProgress,
      );
      const r = new ByteReader(plain);
      const len = new DataView((await r.read(4)).buffer).getUint32(0);
      if (len > MAX_CABLE_HEADER) throw new ValiseError("protocol_error", "cable header too large");
      const header = parseCableHeader(await r.read(len));
      if (header.subject !== p.subject)
        throw new ValiseError(
          "protocol_error",
          `cable ${p.reference}: the encrypted subject differs from the one its sender bound to the key`,
        );
      for (const [index, a] of header.attachments.entries()) {
        const bytes = r.take(a.size);
        if (opts.onAttachment) await opts.onAttachment({ ...a, index }, bytes);
        else for await (const piece of bytes) void piece; // drain: still authenticated to the end
      }
      await r.end();
      if (opts.markRead !== false) cable = await this.host.transport.cableReceipt(cable.id, "read");
      return { cable, subject: header.subject, body: header.body, attachments: header.attachments };
    });
  }
}

/** Users the door shows as cleared members of one of `units` (they can hold, and forward, an item's key). */
export async function keyHolders(host: ContentHost, units: string[], label: string): Promise<string[]> {
  const out = new Set<string>();
  for (const unit of unique(units)) {
    const members = await host.transport.unitMembers(unit).then(
      (r) => r.members,
      () => [] as string[],
    );
    for (const h of members) {
      const u = await host.user(h);
      if (u && u.units.includes(unit) && dominates(parseLabel(u.clearance), parseLabel(label))) out.add(h);
    }
  }
  return [...out].sort();
}

function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

/**
 * The server's view of a cable must match what the sender signed inside MLS: a relabelled, re-prioritised,
 * renumbered or re-addressed cable is refused.
 */
export function checkAgainstServer(p: CablePayload, c: ServerCable): void {
  const same = (a: string[], b: string[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();
  const bad: string[] = [];
  if (c.id !== p.id) bad.push("id");
  if (c.reference !== p.reference) bad.push("reference");
  if (c.originator !== p.originator) bad.push("originator");
  if (c.precedence !== p.precedence) bad.push("precedence");
  if (c.label !== p.label) bad.push("label");
  if (!same(c.action, p.action)) bad.push("ACTION addressees");
  if (!same(c.info, p.info)) bad.push("INFO addressees");
  if ((c.corrects ?? null) !== p.corrects) bad.push("corrects");
  if (c.blob !== p.blob || c.size !== p.size) bad.push("content");
  // "" only in records kept from before senders were bound (see held-keys migrateProfile).
  if (p.sender !== "" && (c.sender !== p.sender || c.senderDevice !== p.senderDevice)) bad.push("sender");
  if (bad.length > 0)
    throw new ValiseError(
      "protocol_error",
      `the server's record of cable ${p.reference} differs from what its sender signed: ${bad.join(", ")}`,
    );
}

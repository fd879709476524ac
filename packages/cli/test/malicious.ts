/**
 * A server that misbehaves on purpose (issue 4 item 7). `misbehave` installs Fastify hooks on a test server (before
 * it listens) that (1) play honest witnesses, cosigning every checkpoint served with test witness keys, and (2)
 * rewrite answers when a test flips a switch in `Misbehaviour`: a forged, rolled-back or under-cosigned checkpoint
 * for one device, or a replayed old directory answer. Database-level attacks (a ghost device) go through
 * `server.store` directly.
 */
import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import {
  cosignatureSigner,
  formatCosignatureVerifierKey,
  generateNoteKey,
  openNote,
  parseNoteVerifierKey,
  parseVerifierKeyParts,
  signNote,
  systemClock,
  type NoteSigner,
} from "@valise/core";

export interface TestWitness {
  name: string;
  vkey: string;
  signer: NoteSigner;
}

/** Fresh witness keys (the C2SP cosignature/v1 kind, as `valise witness` uses). */
export function testWitnesses(n: number): TestWitness[] {
  return Array.from({ length: n }, (_, i) => {
    const name = `witness-${String.fromCharCode(97 + i)}.test`;
    const sk = new Uint8Array(randomBytes(32));
    return {
      name,
      vkey: formatCosignatureVerifierKey(name, parseVerifierKeyParts(generateNoteKey(name, sk).vkey).publicKey),
      signer: cosignatureSigner(name, sk, systemClock),
    };
  });
}

/** Add cosignatures by `signers` to a signed note (keeping its existing signature lines). */
export function cosign(note: string, signers: readonly NoteSigner[]): string {
  const split = note.lastIndexOf("\n\n");
  const text = note.slice(0, split + 1);
  const lines = note
    .slice(split + 2)
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => {
      const [name, base64] = l.slice(2).split(" ") as [string, string];
      const raw = Buffer.from(base64, "base64");
      return { name, keyId: raw.readUInt32BE(0), base64 };
    });
  return signNote(text, signers, lines);
}

/** The checkpoint text of a note whose log signature verifies with `vkey`. */
export function noteText(note: string, vkey: string): string {
  const o = openNote(note, [parseNoteVerifierKey(vkey)]);
  if (!o.ok) throw new Error(`note does not open: ${o.reason}`);
  return o.text;
}

export interface Misbehaviour {
  /** Rewrite the checkpoint (already cosigned by the honest test witnesses) shown to `device` (undefined: anonymous). */
  checkpoint?: (note: string, device: string | undefined) => string;
  /** Rewrite GET /v1/users/:handle answers (JSON text) shown to `device`. */
  user?: (handle: string, body: string, device: string | undefined) => string;
}

export function misbehave(app: FastifyInstance, witnesses: readonly TestWitness[], evil: Misbehaviour): void {
  app.addHook("onSend", async (req, reply, payload) => {
    if (reply.statusCode !== 200 || typeof payload !== "string") return payload;
    const device = req.session?.deviceId;
    const url = req.routeOptions.url;
    if (url === "/v1/log/directory/checkpoint") {
      const honest = cosign(
        payload,
        witnesses.map((w) => w.signer),
      );
      return evil.checkpoint ? evil.checkpoint(honest, device) : honest;
    }
    if (url === "/v1/users/:handle" && evil.user)
      return evil.user((req.params as { handle: string }).handle, payload, device);
    return payload;
  });
}

/**
 * Node-only: a JSON record sealed at rest (the device's history and search data, history.ts). AES-256-GCM under a
 * key derived (HKDF-SHA256) from a secret of the profile — the CLI passes the device's private signing key from
 * profile.json — and the record's name (bound as authenticated data, so one sealed file cannot stand in for
 * another). Written like the profile: mode 0600 in a 0700 directory, a temporary file of its own, fsynced, renamed
 * over the old one, the directory fsynced (a crash leaves the old or the new record, never a torn one).
 * What this gives: the file is ciphertext, useless without the profile (a backup of the history alone, a file left
 * on a shared disk). What it does not: whoever can read profile.json can derive the key — the same as the browser's
 * sealed IndexedDB record, whose key sits in the same database.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { dirname } from "node:path";
import { ValiseError } from "@valise/core";
import type { SealedRecord } from "../history.js";

const MAGIC = Buffer.from("VALISE-SEALED-1\n");

export class FileSealedRecord<T> implements SealedRecord<T> {
  private readonly key: Buffer;
  constructor(
    readonly file: string,
    secret: Uint8Array,
    readonly name: string,
  ) {
    this.key = Buffer.from(hkdfSync("sha256", secret, "valise-sealed-record", `valise-sealed:${name}`, 32));
  }

  async load(): Promise<T | null> {
    if (!existsSync(this.file)) return null;
    try {
      const buf = readFileSync(this.file);
      if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error("not a sealed record");
      const iv = buf.subarray(MAGIC.length, MAGIC.length + 12);
      const tag = buf.subarray(buf.length - 16);
      const d = createDecipheriv("aes-256-gcm", this.key, iv);
      d.setAAD(Buffer.from(`valise-sealed:${this.name}`));
      d.setAuthTag(tag);
      const plain = Buffer.concat([d.update(buf.subarray(MAGIC.length + 12, buf.length - 16)), d.final()]);
      return JSON.parse(plain.toString("utf8")) as T;
    } catch (e) {
      throw new ValiseError(
        "store_error",
        `cannot open ${this.file} (altered, or sealed for another profile): ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }

  async save(value: T): Promise<void> {
    const dir = dirname(this.file);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const iv = randomBytes(12);
    const c = createCipheriv("aes-256-gcm", this.key, iv);
    c.setAAD(Buffer.from(`valise-sealed:${this.name}`));
    const body = Buffer.concat([c.update(Buffer.from(JSON.stringify(value), "utf8")), c.final()]);
    const tmp = `${this.file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      const fd = openSync(tmp, "wx", 0o600);
      try {
        writeSync(fd, Buffer.concat([MAGIC, iv, body, c.getAuthTag()]));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.file);
    } catch (e) {
      try {
        unlinkSync(tmp);
      } catch {
        // never created, or already renamed
      }
      throw new ValiseError("store_error", `cannot save ${this.file}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const dfd = openSync(dir, "r");
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  }
}

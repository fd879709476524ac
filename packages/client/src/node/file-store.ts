/**
 * Node-only: the profile as one JSON file, mode 0600, written atomically: a temporary file of its own (unique name,
 * so two writers never share one), fsynced, renamed over the profile, and the directory fsynced. Processes that
 * change a profile hold its lock (`lockProfile` in ./profile-lock.ts) from load to their last save.
 */
import {
  mkdirSync,
  openSync,
  writeSync,
  fsyncSync,
  closeSync,
  renameSync,
  readFileSync,
  existsSync,
  unlinkSync,
} from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { ValiseError } from "@valise/core";
import type { KeyStore, ProfileState } from "../profile.js";

export class FileKeyStore implements KeyStore {
  readonly file: string;
  constructor(readonly dir: string) {
    this.file = join(dir, "profile.json");
  }
  async load(): Promise<ProfileState | null> {
    if (!existsSync(this.file)) return null;
    try {
      const s = JSON.parse(readFileSync(this.file, "utf8")) as ProfileState;
      if (s.version !== 1) throw new Error(`unsupported profile version ${String(s.version)}`);
      return s;
    } catch (e) {
      throw new ValiseError(
        "store_error",
        `cannot read profile ${this.file}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }
  async save(state: ProfileState): Promise<void> {
    return this.saveText(JSON.stringify(state));
  }
  /** Writes the profile's serialized JSON (the profile repository hands it over already serialized). */
  async saveText(json: string): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      const fd = openSync(tmp, "wx", 0o600);
      try {
        writeSync(fd, json);
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
      throw new ValiseError(
        "store_error",
        `cannot save profile ${this.file}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    const dfd = openSync(this.dir, "r");
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  }
}

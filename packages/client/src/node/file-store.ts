/** Node-only: the profile as one JSON file, mode 0600, written atomically (temp file, fsync, rename). */
import {
  mkdirSync,
  openSync,
  writeSync,
  fsyncSync,
  closeSync,
  renameSync,
  readFileSync,
  existsSync,
  chmodSync,
} from "node:fs";
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
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, JSON.stringify(state));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.file);
    const dfd = openSync(this.dir, "r");
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  }
}

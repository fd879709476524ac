/**
 * The witness's durable memory: per log origin, the latest checkpoint note it cosigned (the log's signatures and its
 * own cosignature), in `<dir>/<sha256(origin) hex>.checkpoint`. The note is the state: size and root hash are read
 * back from it. A new state is written to a temporary file, fsync'd, renamed over the old one, and the directory
 * fsync'd, all before the witness answers — so a cosignature once returned is never forgotten on a crash, and a
 * restarted witness refuses the same rollbacks and forks.
 *
 * One process per directory: `<dir>/lock` holds the owner's pid (a stale lock of a dead process is taken over).
 *
 * `<dir>/evidence/` keeps refused checkpoints that were validly signed by the log (tlog-witness §add-checkpoint: the
 * witness MAY log them): with the cosigned note beside it, such a file proves the log showed two histories.
 */
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from "node:fs";
import { mkdir, open, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ValiseError, parseCheckpoint } from "@valise/core";
import type { CosignedState } from "./verify.js";

export interface StoredCheckpoint extends CosignedState {
  /** The cosigned note as served to monitors. */
  readonly note: string;
}

/** The lowercase hex SHA-256 of the origin (c2sp.org/tlog-witness §Monitor Retrieval Mechanism). */
export function originHash(origin: string): string {
  return createHash("sha256").update(origin, "utf8").digest("hex");
}

function fromNote(note: string, file: string): StoredCheckpoint {
  try {
    const cp = parseCheckpoint(note.slice(0, note.lastIndexOf("\n\n") + 1));
    return { size: cp.size, rootHash: cp.rootHash, note };
  } catch (e) {
    throw new ValiseError("store_error", `${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** At most this many evidence files are kept (only the log's key can produce them, but it could flood). */
export const MAX_EVIDENCE_FILES = 1000;

export class WitnessStateDir {
  private evidenceCount: number | undefined;
  private readonly cache = new Map<string, StoredCheckpoint>();
  private readonly lockFile: string;
  private released = false;

  /** Opens (creating, mode 0700) the directory and takes its lock; throws ValiseError("conflict") if it is held. */
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.lockFile = join(dir, "lock");
    for (let attempt = 0; ; attempt++) {
      try {
        const fd = openSync(this.lockFile, "wx", 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw e;
        const pid = Number(readFileSync(this.lockFile, "utf8").trim());
        if (Number.isSafeInteger(pid) && pid > 0 && isAlive(pid))
          throw new ValiseError("conflict", `witness state ${dir} is in use by process ${pid}`);
        rmSync(this.lockFile, { force: true }); // stale: its process is gone
      }
    }
  }

  private file(origin: string): string {
    return join(this.dir, `${originHash(origin)}.checkpoint`);
  }

  /** The latest cosigned checkpoint for `origin`, or undefined if there is none. */
  get(origin: string): StoredCheckpoint | undefined {
    const hit = this.cache.get(origin);
    if (hit) return hit;
    const file = this.file(origin);
    let note: string;
    try {
      note = readFileSync(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw e;
    }
    const s = fromNote(note, file);
    this.cache.set(origin, s);
    return s;
  }

  /** Durably replace the state for `origin`: temp file, fsync, rename, directory fsync. */
  async put(origin: string, note: string): Promise<StoredCheckpoint> {
    if (this.released) throw new ValiseError("internal", "witness state is closed");
    const file = this.file(origin);
    const s = fromNote(note, file);
    const tmp = `${file}.tmp`;
    try {
      const fh = await open(tmp, "w", 0o600);
      try {
        await fh.writeFile(note, "utf8");
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
      const dh = await open(this.dir, "r");
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch (e) {
      // The file may hold the new state or the old one: forget the cached one, so the next request reads the disk.
      // Being ahead of what was answered is safe (it only refuses more); being behind what is on disk is not.
      this.cache.delete(origin);
      throw e;
    }
    this.cache.set(origin, s);
    return s;
  }

  /**
   * Keep a refused, validly signed checkpoint: the reason, the latest cosigned note and the submitted request.
   * Returns the file written, or undefined past MAX_EVIDENCE_FILES.
   */
  async recordEvidence(origin: string, reason: string, request: string): Promise<string | undefined> {
    const dir = join(this.dir, "evidence");
    await mkdir(dir, { recursive: true, mode: 0o700 });
    this.evidenceCount ??= readdirSync(dir).length;
    if (this.evidenceCount >= MAX_EVIDENCE_FILES) return undefined;
    this.evidenceCount++;
    const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, "-")}-${this.evidenceCount}.txt`);
    const cosigned = this.get(origin)?.note ?? "(none)\n";
    const text =
      `origin: ${origin}\nrefused: ${reason}\n\n` +
      `-- latest cosigned checkpoint --\n${cosigned}\n-- refused add-checkpoint request --\n${request}`;
    await writeFile(file, text, { mode: 0o600, flag: "wx" });
    return file;
  }

  /** Log-key hand-overs this witness followed (issue 19), oldest first, from `<dir>/key-handovers.json`. */
  handovers(): string[] {
    try {
      const v = JSON.parse(readFileSync(join(this.dir, "key-handovers.json"), "utf8")) as unknown;
      return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw e;
    }
  }

  /** Durably add a followed hand-over (temp file, fsync, rename, directory fsync) before it takes effect. */
  async addHandover(note: string): Promise<void> {
    if (this.released) throw new ValiseError("internal", "witness state is closed");
    const file = join(this.dir, "key-handovers.json");
    const tmp = `${file}.tmp`;
    const fh = await open(tmp, "w", 0o600);
    try {
      await fh.writeFile(`${JSON.stringify([...this.handovers(), note], null, 1)}\n`, "utf8");
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    const dh = await open(this.dir, "r");
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }

  /** Release the lock (the state files stay). */
  close(): void {
    if (this.released) return;
    this.released = true;
    rmSync(this.lockFile, { force: true });
  }
}

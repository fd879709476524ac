/**
 * Node-only: one writer per profile directory, across processes. Every process that loads a profile, changes it and
 * saves it must hold this lock from load to its last save: two processes that loaded the same MLS state encrypt
 * under the same ratchet generation (the same AES-GCM key and nonce for different plaintexts), and the second save
 * overwrites the first.
 *
 * The lock is `DIR/profile.lock`, created with O_EXCL (`wx`) and holding the owner's pid, start time and a nonce.
 * A lock whose process is gone (killed, crashed) is stale and is broken, under a second short-lived lock
 * (`profile.lock.break`) so that two processes breaking the same stale lock cannot both end up holding it.
 */
import { closeSync, fsyncSync, openSync, readFileSync, unlinkSync, writeSync, mkdirSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { ValiseError } from "@valise/core";

export interface ProfileLockOptions {
  /** Wait for the holder to finish (default); false: fail at once with `profile_busy`-style conflict. */
  wait?: boolean;
  /** Give up after this long (ms); default: wait for ever. */
  timeoutMs?: number;
  /** Called once when the lock is held by another live process and this one starts waiting. */
  onWait?: (holder: LockOwner) => void;
  /** Poll interval (ms) while waiting; default 100. */
  pollMs?: number;
}

export interface LockOwner {
  pid: number;
  host: string;
  /** The owner's process start time (Linux: /proc/PID/stat field 22), to tell a reused pid from the owner. */
  start: string | null;
  nonce: string;
  command: string;
  since: number;
}

export interface ProfileLock {
  readonly file: string;
  release(): void;
}

/** /proc/PID/stat start time (clock ticks since boot); null where there is no /proc. */
function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces and parentheses: fields after the last ')' are fixed.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19] ?? null; // field 22 overall
  } catch {
    return null;
  }
}

function alive(o: LockOwner): boolean {
  if (o.host !== hostname()) return true; // another machine (shared file system): cannot tell, assume alive
  try {
    process.kill(o.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  // The pid exists: the owner, unless the pid was reused by another process since.
  const start = processStart(o.pid);
  return o.start === null || start === null || start === o.start;
}

function readOwner(file: string): LockOwner | null {
  try {
    const o = JSON.parse(readFileSync(file, "utf8")) as LockOwner;
    return typeof o.pid === "number" && typeof o.nonce === "string" ? o : null;
  } catch {
    return null; // missing, or torn (a process killed between create and write)
  }
}

function tryCreate(file: string, owner: LockOwner): boolean {
  let fd: number;
  try {
    fd = openSync(file, "wx", 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  }
  try {
    writeSync(fd, JSON.stringify(owner));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

function unlinkIfSame(file: string, nonce: string | null): void {
  const cur = readOwner(file);
  if ((cur?.nonce ?? null) !== nonce) return;
  try {
    unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}

/** How old (ms) an unreadable lock file must be before it counts as torn by a crash rather than being written. */
const TORN_AFTER_MS = 2000;

/** Breaks `file` if its owner is gone; true if it did (or the file vanished). */
function breakIfStale(file: string, me: LockOwner): boolean {
  const cur = readOwner(file);
  if (cur && alive(cur)) return false;
  if (!cur) {
    try {
      if (Date.now() - statSync(file).mtimeMs < TORN_AFTER_MS) return false;
    } catch {
      return true; // gone
    }
  }
  const breaker = `${file}.break`;
  if (!tryCreate(breaker, me)) {
    const b = readOwner(breaker);
    if (b && alive(b)) return false;
    // A breaker that died holding the break lock: remove it if it is still that one (or torn and old).
    try {
      if (!b && Date.now() - statSync(breaker).mtimeMs < TORN_AFTER_MS) return false;
    } catch {
      return false;
    }
    unlinkIfSame(breaker, b?.nonce ?? null);
    return false; // try again on the next round
  }
  try {
    // Under the break lock: unlink only the stale lock we looked at, never one created since.
    const again = readOwner(file);
    if ((again?.nonce ?? null) === (cur?.nonce ?? null)) unlinkIfSame(file, cur?.nonce ?? null);
  } finally {
    unlinkIfSame(breaker, me.nonce);
  }
  return true;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Takes the profile's lock (waiting for another process to finish by default). */
export async function lockProfile(dir: string, opts: ProfileLockOptions = {}): Promise<ProfileLock> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, "profile.lock");
  const me: LockOwner = {
    pid: process.pid,
    host: hostname(),
    start: processStart(process.pid),
    nonce: randomBytes(12).toString("hex"),
    command: process.argv.slice(2, 4).join(" "),
    since: Date.now(),
  };
  const deadline = opts.timeoutMs !== undefined ? Date.now() + opts.timeoutMs : Infinity;
  let told = false;
  for (;;) {
    if (tryCreate(file, me)) break;
    if (breakIfStale(file, me)) continue;
    const holder = readOwner(file);
    if (opts.wait === false || Date.now() >= deadline) {
      const who = holder
        ? `process ${holder.pid}${holder.command ? ` (valise ${holder.command})` : ""}`
        : "another process";
      throw new ValiseError("conflict", `profile ${dir} is in use by ${who}; try again when it has finished`, {
        lock: file,
        ...(holder ? { pid: holder.pid } : {}),
      });
    }
    if (!told && holder) {
      told = true;
      opts.onWait?.(holder);
    }
    await sleep(opts.pollMs ?? 100);
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    try {
      unlinkIfSame(file, me.nonce);
    } catch {
      // a lock left behind is broken by the next process (its pid is gone)
    }
  };
  process.once("exit", release);
  return { file, release };
}

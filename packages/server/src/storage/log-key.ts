/**
 * The directory log's Ed25519 signing key, a signed-note signer key (`PRIVATE+KEY+<origin>+<hash>+<base64>`).
 *
 * It is never stored in the database, on SQLite or PostgreSQL: a database dump, a replica or a database
 * administrator must not be able to sign checkpoints. It lives in the data directory as `log-key` (created mode 0600,
 * refused if group- or world-accessible), or comes from the environment as VALISE_LOG_KEY — the choice for several
 * PostgreSQL-backed servers, which must all sign with one key (a secret store injects it). The database pins the
 * public verifier key (`log_keys`), so a server started with another key refuses to sign (see DirectoryLog).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { ValiseError, fromBase64, generateNoteKey, parseNoteSignerKey, type NoteSigner } from "@valise/core";

export const DEFAULT_LOG_ORIGIN = "valise.example/directory";
export const LOG_KEY_FILE = "log-key";

export interface LogKey {
  /** The checkpoint origin line, which is also the key name. */
  origin: string;
  signer: NoteSigner;
  /** signed-note verifier key `<name>+<hash>+<base64(0x01 || public key)>`. */
  vkey: string;
}

function fromSignerKey(skey: string, where: string): LogKey {
  let signer: NoteSigner;
  try {
    signer = parseNoteSignerKey(skey.trim());
  } catch (e) {
    throw new ValiseError("bad_encoding", `${where}: ${e instanceof Error ? e.message : String(e)}`);
  }
  // PRIVATE+KEY+<name>+<hash>+<base64>: names have no '+', but base64 can.
  const seed = fromBase64(skey.trim().split("+").slice(4).join("+")).subarray(1);
  return { origin: signer.name, signer, vkey: generateNoteKey(signer.name, seed).vkey };
}

/**
 * Load the log key from VALISE_LOG_KEY or `<dataDir>/log-key`, creating the file (with `origin`, default
 * DEFAULT_LOG_ORIGIN) if neither exists. If `origin` is given it must match the key's name.
 */
export function loadOrCreateLogKey(opts: {
  dataDir: string;
  origin?: string | undefined;
  env?: NodeJS.ProcessEnv;
}): LogKey {
  const env = opts.env ?? process.env;
  let key: LogKey;
  if (env.VALISE_LOG_KEY) key = fromSignerKey(env.VALISE_LOG_KEY, "VALISE_LOG_KEY");
  else {
    const file = join(opts.dataDir, LOG_KEY_FILE);
    let text: string | undefined;
    try {
      const st = statSync(file);
      if (process.platform !== "win32" && (st.mode & 0o077) !== 0)
        throw new ValiseError("forbidden", `${file} is accessible by group or others; chmod 600 ${file}`);
      text = readFileSync(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    if (text === undefined) {
      mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
      const { skey } = generateNoteKey(opts.origin ?? DEFAULT_LOG_ORIGIN);
      // O_EXCL: two processes starting at once cannot both create (and use) different keys.
      let fd: number | undefined;
      try {
        fd = openSync(file, "wx", 0o600);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      if (fd === undefined) text = readFileSync(file, "utf8");
      else {
        try {
          writeSync(fd, `${skey}\n`);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        text = skey;
      }
    }
    key = fromSignerKey(text, file);
  }
  if (opts.origin !== undefined && opts.origin !== key.origin)
    throw new ValiseError(
      "conflict",
      `the log key is for origin ${key.origin}, not ${opts.origin} (the origin is part of every checkpoint)`,
    );
  return key;
}

/**
 * A minimal POSIX ustar archive (IEEE Std 1003.1-2001, "pax interchange format" §ustar) of regular files and
 * directories, written and read with plain file descriptors so a backup never holds a file in memory. The archive
 * opens with any tar (`tar -tvf valise-backup.tar`). Sizes past ustar's 8 GiB octal field use the base-256 encoding
 * GNU tar and libarchive read; names longer than 100 bytes are split into ustar's prefix and name fields (each path
 * here is at most 255 bytes: the backup's own names and blob files `blobs/xx/<id>`).
 */
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, writeSync } from "node:fs";
import { dirname, join, normalize, sep } from "node:path";

const BLOCK = 512;
const CHUNK = 1 << 20;

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, "0")}\0`;
}

function header(name: string, size: number, mode: number, mtime: number, dir: boolean): Buffer {
  const h = Buffer.alloc(BLOCK);
  const full = Buffer.from(name, "utf8");
  let prefix = "";
  let base = name;
  if (full.length > 100) {
    // Split at a '/' so that the name part is ≤ 100 bytes and the prefix ≤ 155.
    const cut = [...name.matchAll(/\//g)].map((m) => m.index).find((i) => Buffer.byteLength(name.slice(i + 1)) <= 100);
    if (cut === undefined || Buffer.byteLength(name.slice(0, cut)) > 155)
      throw new Error(`path too long for a ustar archive: ${name}`);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
  }
  h.write(base, 0, 100, "utf8");
  h.write(octal(mode & 0o7777, 8), 100, "ascii");
  h.write(octal(0, 8), 108, "ascii"); // uid
  h.write(octal(0, 8), 116, "ascii"); // gid
  if (size < 8 ** 11) h.write(octal(size, 12), 124, "ascii");
  else {
    // base-256: first byte 0x80, the size big-endian in the remaining 11 bytes.
    h[124] = 0x80;
    let v = BigInt(size);
    for (let i = 135; i > 124; i--) {
      h[i] = Number(v & 255n);
      v >>= 8n;
    }
  }
  h.write(octal(Math.floor(mtime / 1000), 12), 136, "ascii");
  h.fill(0x20, 148, 156); // checksum field counts as spaces
  h.write(dir ? "5" : "0", 156, "ascii");
  h.write("ustar\0", 257, "ascii");
  h.write("00", 263, "ascii");
  h.write(prefix, 345, 155, "utf8");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return h;
}

/** Writes an archive to a file descriptor, entry by entry. */
export class TarWriter {
  private readonly buf = Buffer.alloc(CHUNK);
  constructor(private readonly fd: number) {}

  directory(name: string, mode = 0o700, mtime = Date.now()): void {
    writeSync(this.fd, header(name.endsWith("/") ? name : `${name}/`, 0, mode, mtime, true));
  }

  /** Copy the file at `path` in as `name` (its size when opened; a file that grows meanwhile is cut there). */
  file(name: string, path: string): number {
    const fd = openSync(path, "r");
    try {
      const st = fstatSync(fd);
      writeSync(this.fd, header(name, st.size, st.mode, st.mtimeMs, false));
      let left = st.size;
      let at = 0;
      while (left > 0) {
        const n = readSync(fd, this.buf, 0, Math.min(CHUNK, left), at);
        if (n === 0) throw new Error(`${path} shrank while it was archived`);
        writeSync(this.fd, this.buf, 0, n);
        left -= n;
        at += n;
      }
      const pad = (BLOCK - (st.size % BLOCK)) % BLOCK;
      if (pad > 0) writeSync(this.fd, Buffer.alloc(pad));
      return st.size;
    } finally {
      closeSync(fd);
    }
  }

  bytes(name: string, data: Uint8Array, mode = 0o600): void {
    writeSync(this.fd, header(name, data.length, mode, Date.now(), false));
    writeSync(this.fd, data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad > 0) writeSync(this.fd, Buffer.alloc(pad));
  }

  /** The two zero blocks that end an archive, then fsync. */
  finish(): void {
    writeSync(this.fd, Buffer.alloc(2 * BLOCK));
    fsyncSync(this.fd);
  }
}

function readFully(fd: number, b: Buffer, len: number, pos: number): number {
  let got = 0;
  while (got < len) {
    const n = readSync(fd, b, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

function parseSize(h: Buffer): number {
  if (h[124]! & 0x80) {
    let v = 0n;
    for (let i = 125; i < 136; i++) v = (v << 8n) | BigInt(h[i]!);
    return Number(v);
  }
  return parseInt(h.toString("ascii", 124, 136).replace(/\0.*$/, "").trim() || "0", 8);
}

function cstr(h: Buffer, from: number, len: number): string {
  const s = h.subarray(from, from + len);
  const end = s.indexOf(0);
  return s.toString("utf8", 0, end < 0 ? len : end);
}

/**
 * Extract every regular file and directory of the archive at `file` into `dir` (files mode 0600, directories
 * 0700). Refuses anything else (links, devices), absolute paths and `..`; returns the relative paths extracted.
 */
export function extractTar(file: string, dir: string): string[] {
  const fd = openSync(file, "r");
  const out: string[] = [];
  const h = Buffer.alloc(BLOCK);
  const buf = Buffer.alloc(CHUNK);
  try {
    for (let pos = 0; ;) {
      if (readFully(fd, h, BLOCK, pos) < BLOCK) throw new Error(`${file}: truncated archive (no end marker)`);
      pos += BLOCK;
      if (h.every((b) => b === 0)) return out;
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
      if (sum !== parseInt(h.toString("ascii", 148, 156).replace(/[\0 ].*$/, ""), 8))
        throw new Error(`${file}: bad header checksum at byte ${pos - BLOCK}: not a tar archive, or a damaged one`);
      const prefix = cstr(h, 345, 155);
      const name = (prefix ? `${prefix}/` : "") + cstr(h, 0, 100);
      const type = String.fromCharCode(h[156]!);
      const size = parseSize(h);
      const rel = normalize(name).replace(/\/+$/, "");
      if (rel.startsWith("/") || rel.split(sep).includes("..") || rel === "" || rel === ".")
        throw new Error(`${file}: refusing the unsafe path ${JSON.stringify(name)}`);
      const target = join(dir, rel);
      if (type === "5") {
        mkdirSync(target, { recursive: true, mode: 0o700 });
        out.push(`${rel}/`);
      } else if (type === "0" || type === "\0") {
        mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
        const wfd = openSync(target, "wx", 0o600);
        try {
          let left = size;
          let at = pos;
          while (left > 0) {
            const n = readFully(fd, buf, Math.min(CHUNK, left), at);
            if (n === 0) throw new Error(`${file}: truncated archive in ${name}`);
            writeSync(wfd, buf, 0, n);
            left -= n;
            at += n;
          }
          fsyncSync(wfd);
        } finally {
          closeSync(wfd);
        }
        out.push(rel);
      } else throw new Error(`${file}: entry ${JSON.stringify(name)} of type ${JSON.stringify(type)} is not supported`);
      pos += Math.ceil(size / BLOCK) * BLOCK;
    }
  } finally {
    closeSync(fd);
  }
}

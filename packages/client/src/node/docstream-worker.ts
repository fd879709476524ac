/**
 * Worker for node/docstream.ts: seals or opens one chunk per message with node:crypto. The input ArrayBuffer arrives
 * transferred and goes back transferred (the main thread reuses it for the next read); the output buffer is
 * transferred too, so no chunk is ever copied between threads. Only ever loaded as a worker (types aside).
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { parentPort } from "node:worker_threads";

export interface ChunkTask {
  readonly id: number;
  /** 0 = encrypt, 1 = decrypt (the last 16 bytes of the input are the tag). */
  readonly op: 0 | 1;
  readonly key: Uint8Array;
  readonly nonce: Uint8Array;
  readonly aad: Uint8Array;
  readonly data: ArrayBuffer;
  readonly offset: number;
  readonly length: number;
}

export interface ChunkResult {
  readonly id: number;
  /** Ciphertext (without tag) or plaintext. */
  readonly out?: ArrayBuffer;
  readonly outLength?: number;
  readonly tag?: Uint8Array;
  /** The input buffer, handed back for reuse. */
  readonly data: ArrayBuffer;
  readonly error?: string;
}

/** A Buffer's bytes as an ArrayBuffer that can be transferred (copies only if the Buffer is a view of a pool). */
function own(b: Buffer): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  const ab = new ArrayBuffer(b.byteLength);
  new Uint8Array(ab).set(b);
  return ab;
}

function runChunk(t: ChunkTask): { result: ChunkResult; transfer: ArrayBuffer[] } {
  const input = Buffer.from(t.data, t.offset, t.length);
  try {
    if (t.op === 0) {
      const c = createCipheriv("aes-256-gcm", t.key, t.nonce);
      c.setAAD(t.aad);
      const out = c.update(input);
      c.final();
      const ab = own(out);
      return {
        result: { id: t.id, out: ab, outLength: out.length, tag: c.getAuthTag(), data: t.data },
        transfer: ab === t.data ? [ab] : [ab, t.data],
      };
    }
    const n = t.length - 16;
    const d = createDecipheriv("aes-256-gcm", t.key, t.nonce);
    d.setAAD(t.aad);
    d.setAuthTag(input.subarray(n));
    const out = d.update(input.subarray(0, n));
    d.final();
    const ab = own(out);
    return {
      result: { id: t.id, out: ab, outLength: out.length, data: t.data },
      transfer: ab === t.data ? [ab] : [ab, t.data],
    };
  } catch (e) {
    return { result: { id: t.id, data: t.data, error: (e as Error).message }, transfer: [t.data] };
  }
}

parentPort?.on("message", (t: ChunkTask) => {
  const { result, transfer } = runChunk(t);
  parentPort!.postMessage(result, transfer);
});

/**
 * Uploads interrupted by a reload (issue 15): while a document upload runs, what it is (file name, size and date,
 * label, addressee or document, progress) is kept in IndexedDB sealed like the profile (record "uploads:HANDLE",
 * AES-GCM under a non-extractable key). After a reload the Documents screen lists it as interrupted, with Resume
 * (choose the same file again: checked by name, size and date; the upload starts over, encrypted under a fresh key —
 * the part sent before is never attached and the server reclaims it after its upload expiry) and Discard.
 * The file's bytes are never kept (a second copy of the file on disk).
 */
import { IndexedDbSealedRecord, openValiseDb } from "@valise/client/browser/idb-store";

export interface PendingUpload {
  id: string;
  name: string;
  size: number;
  lastModified: number;
  /** A new document (to, label) or a new version of `versionOf`. */
  to: string;
  label: string;
  versionOf: string;
  done: number;
  total: number;
  startedAt: number;
}

export class UploadLog {
  private writing: Promise<void> = Promise.resolve();
  private constructor(
    private readonly rec: IndexedDbSealedRecord<PendingUpload[]>,
    private list: PendingUpload[],
  ) {}

  static async open(handle: string): Promise<UploadLog> {
    const rec = new IndexedDbSealedRecord<PendingUpload[]>(await openValiseDb(), `uploads:${handle}`);
    return new UploadLog(rec, (await rec.load()) ?? []);
  }

  all(): PendingUpload[] {
    return [...this.list];
  }

  private save(): Promise<void> {
    const snapshot = [...this.list];
    this.writing = this.writing.then(() => this.rec.save(snapshot)).catch(() => undefined);
    return this.writing;
  }

  put(u: PendingUpload): Promise<void> {
    this.list = [...this.list.filter((x) => x.id !== u.id), u];
    return this.save();
  }

  remove(id: string): Promise<void> {
    this.list = this.list.filter((x) => x.id !== id);
    return this.save();
  }
}

/** Whether `file` is the one an interrupted upload was sending. */
export function sameFile(u: PendingUpload, file: File): boolean {
  return file.name === u.name && file.size === u.size && file.lastModified === u.lastModified;
}

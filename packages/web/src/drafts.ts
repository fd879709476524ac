/**
 * A cable being written survives a reload: the draft (addressees, precedence, label, subject, body, corrects) is kept
 * in IndexedDB sealed like the profile (AES-GCM under a non-extractable key), one record per user, and removed when
 * the cable is released or the draft discarded. Attachments are not kept (their bytes would be a second copy of the
 * files on disk): the restored draft says so.
 */
import { IndexedDbSealedRecord, openValiseDb } from "@valise/client/browser/idb-store";

export interface CableDraft {
  from: string;
  action: string[];
  info: string[];
  precedence: string;
  label: string;
  subject: string;
  body: string;
  corrects: string;
  /** Names of the attachments that were chosen (to say which to attach again). */
  attachmentNames: string[];
  savedAt: number;
}

export async function draftRecord(handle: string): Promise<IndexedDbSealedRecord<CableDraft>> {
  return new IndexedDbSealedRecord<CableDraft>(await openValiseDb(), `draft:cable:${handle}`);
}

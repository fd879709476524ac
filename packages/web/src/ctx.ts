/** What every screen gets from the app (App.tsx builds it): kept apart so that screens need not import App. */
import type { HistoryStore, ServerUser, ValiseClient } from "@valise/client";
import type { History } from "./history.js";

export interface Ctx {
  client: ValiseClient;
  me: ServerUser;
  history: History;
  /** The device's history store and its search index (search.tsx), sealed in IndexedDB; never sent anywhere. */
  store: HistoryStore;
  /** Bumped when new items arrive (push): screens reload. */
  tick: number;
  refresh(): void;
  setLabels(labels: string[]): void;
  /** Signs out (the session dropped); `wipe` also erases this browser's sealed store (keys, history, drafts). */
  signOut(wipe: boolean): Promise<void>;
}

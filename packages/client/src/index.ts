export * from "./client.js";
export * from "./transport.js";
export * from "./profile.js";
export * from "./items.js";
export * from "./verifier.js";
export * from "./push.js";
export * from "./transparency.js";
export * from "./content.js";
export * from "./cables.js";
export * from "./documents.js";
export * from "./host.js";
export * from "./docstream.js";
export * from "./audit.js";
export * from "./schema.js";
export * from "./held-keys.js";
export * from "./checkpoint-state.js";
export { acceptForward, forwardPayloads, missingKeyMessage, travelsIn, type ForwardHost } from "./forward.js";
export * from "./search.js";
export * from "./history.js";
export {
  acceptHistoryPayload,
  fetchHistoryBatches,
  sendHistory,
  BATCH_MESSAGES,
  type HistoryProgress,
  type TransferHost,
} from "./history-transfer.js";
export * from "./archive.js";
export * from "./profile-repo.js";
export { Receipts, receiptsApply, type MessageState, type ReceiptState } from "./receipts.js";

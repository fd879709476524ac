export * from "./db.js";
export * from "./schema.js";
export * from "./directory-store.js";
export * from "./conversation-store.js";
export * from "./store.js";
export * from "./directory-log.js";
export * from "./log-key.js";

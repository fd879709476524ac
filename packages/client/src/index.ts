export * from "./client.js";
export * from "./transport.js";
export * from "./profile.js";
export * from "./items.js";
export * from "./verifier.js";
export * from "./push.js";
export * from "./transparency.js";

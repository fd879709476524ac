export * from "./errors.js";
export * from "./ids.js";
export * from "./bytes.js";
export * from "./label.js";
export * from "./clock.js";

export * from "./errors.js";
export * from "./ids.js";
export * from "./bytes.js";
export * from "./label.js";
export * from "./clock.js";
export * from "./log/merkle.js";
export * from "./log/merkle-prove.js";
export * from "./log/frontier.js";

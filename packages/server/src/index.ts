export * from "./storage/index.js";

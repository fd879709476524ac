export * from "./key.js";
export * from "./request.js";
export * from "./verify.js";
export * from "./state.js";
export * from "./app.js";
export * from "./submit.js";
export * from "./publisher.js";
export * from "./startup-check.js";

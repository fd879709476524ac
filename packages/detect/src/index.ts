/**
 * @valise/detect: a pure, deterministic detection engine over audit events (DESIGN.md §1 T3): rules as data,
 * per-user and per-unit baselines, alerts with a severity, a plain-language reason and the events behind them.
 * No I/O here: the CLI (`valise detect`) and later the server feed it events and rules.
 */
export * from "./event.js";
export * from "./rules.js";
export * from "./engine.js";
export * from "./reorder.js";
export { quantile, hash32, isTimeZone, localHour } from "./stats.js";

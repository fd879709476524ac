export * from "./storage/index.js";
export * from "./storage/store.js";
export * from "./http/app.js";
export * from "./http/capabilities.js";
export * from "./delivery/fanout.js";
export * from "./delivery/nats-fanout.js";
export * from "./mls.js";
export * from "./witness/index.js";
export * from "./detect/index.js";
export * from "./incidents/ioc.js";
export {
  IocService,
  retroScan,
  retroScanLeaves,
  checkSourceKeys,
  leafSource,
  IOC_RULE,
  INDEX_RULE,
} from "./incidents/ioc-service.js";

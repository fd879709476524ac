/** Prometheus metrics at /metrics: counts and timings only, never content. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    httpRequests: new Counter({
      name: "valise_http_requests_total",
      help: "HTTP requests",
      labelNames: ["route", "status"],
      registers: [registry],
    }),
    appended: new Counter({
      name: "valise_messages_appended_total",
      help: "Messages durably appended",
      labelNames: ["kind"],
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: "valise_append_batch_size",
      help: "Messages per append transaction",
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
      registers: [registry],
    }),
    wsConnections: new Gauge({
      name: "valise_ws_connections",
      help: "Open WebSocket connections",
      registers: [registry],
    }),
    pushes: new Counter({ name: "valise_ws_pushes_total", help: "Events pushed to devices", registers: [registry] }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;

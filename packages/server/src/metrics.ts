/** Prometheus metrics at /metrics: counts and timings only, never content. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** What the database pool reports (PostgreSQL): connections open, idle, and requests waiting for one. */
export type PoolStats = () => { total: number; idle: number; waiting: number } | undefined;

export function createMetrics(poolStats?: PoolStats) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  if (poolStats)
    new Gauge({
      name: "valise_db_pool_connections",
      help: "PostgreSQL pool connections by state (total, idle, waiting: requests queued for a connection)",
      labelNames: ["state"],
      registers: [registry],
      collect() {
        const s = poolStats();
        if (!s) return;
        this.set({ state: "total" }, s.total);
        this.set({ state: "idle" }, s.idle);
        this.set({ state: "waiting" }, s.waiting);
      },
    });
  return {
    registry,
    httpRequests: new Counter({
      name: "valise_http_requests_total",
      help: "HTTP requests",
      labelNames: ["route", "status"],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: "valise_http_request_duration_seconds",
      help: "HTTP request latency (until the response is sent), per route pattern and method",
      labelNames: ["route", "method"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
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
    auditBatchSize: new Histogram({
      name: "valise_audit_append_batch_size",
      help: "Audit events per audit-log append transaction",
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000],
      registers: [registry],
    }),
    transactionSeconds: new Histogram({
      name: "valise_db_transaction_seconds",
      help: "Append transactions (kind message or audit) from begin to commit, by outcome",
      labelNames: ["kind", "outcome"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    querySeconds: new Histogram({
      name: "valise_db_query_seconds",
      help: "Database queries made through the query builder, by outcome",
      labelNames: ["outcome"],
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [registry],
    }),
    pushes: new Counter({ name: "valise_ws_pushes_total", help: "Events pushed to devices", registers: [registry] }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;

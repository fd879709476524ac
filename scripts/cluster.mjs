#!/usr/bin/env node
// Starts a Valise cluster on this machine (README "Several nodes"): N `valise serve` nodes on one PostgreSQL
// database and one NATS server, behind a small round-robin HTTP/WebSocket proxy. For trying a cluster out, tests and
// benchmarks; loopback only. Needs `npm run build` first.
//
//   VALISE_DATABASE_URL=postgres://valise@127.0.0.1:5432/valise node scripts/cluster.mjs [--nodes 3] [--port 8080]
//       [--data DIR] [--nats nats://127.0.0.1:4222] [--blob-store pg|fs] [--no-proxy]
//
// Without --nats it starts nats-server itself (from PATH, /usr/sbin or VALISE_NATS_SERVER) on a free port. Node i
// listens on PORT+i (8081, 8082, …) with data directory DIR/node<i>; all share one log signing key (DIR/log-key,
// made on first start, handed to the nodes as VALISE_LOG_KEY). The proxy listens on PORT, forwards each request and
// WebSocket to the next live node (X-Forwarded-For set; the nodes trust 127.0.0.1 as proxy) and skips a node that
// refuses connections. When everything answers it prints one JSON line on stdout:
//   {"proxy":"http://127.0.0.1:8080","nodes":[{"url":…,"pid":…},…],"nats":…,"data":…,"logKey":…}
// Ctrl-C (SIGINT/SIGTERM) stops the nodes, the proxy and the nats-server it started.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createServer, request } from "node:http";
import { connect as tcp, createServer as netServer } from "node:net";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    nodes: { type: "string", default: "3" },
    port: { type: "string", default: "8080" },
    data: { type: "string", default: "./valise-cluster" },
    nats: { type: "string" },
    "blob-store": { type: "string", default: "pg" },
    "no-proxy": { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(
    readFileSync(fileURLToPath(import.meta.url), "utf8")
      .split("\nimport")[0]
      .replace(/^\/\/ ?/gm, ""),
  );
  process.exit(0);
}
const dbUrl = process.env.VALISE_DATABASE_URL;
if (!dbUrl) {
  console.error("set VALISE_DATABASE_URL=postgres://… (one PostgreSQL database for every node)");
  process.exit(2);
}
const n = Number(values.nodes);
const basePort = Number(values.port);
const data = resolve(values.data);
mkdirSync(data, { recursive: true, mode: 0o700 });
const main = join(root, "packages/cli/dist/src/main.js");
if (!existsSync(main)) {
  console.error("packages/cli/dist not built: run npm run build");
  process.exit(2);
}
const children = [];
let stopping = false;

function freePort() {
  return new Promise((ok, fail) => {
    const s = netServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => ok(p));
    });
  });
}
function listening(port) {
  return new Promise((ok) => {
    const s = tcp(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), ok(true)));
    s.once("error", () => ok(false));
  });
}
async function waitFor(port, what, child) {
  const deadline = Date.now() + 120_000;
  while (!(await listening(port))) {
    if (child && child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode})`);
    if (Date.now() > deadline) throw new Error(`${what} did not start on ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
function natsBinary() {
  if (process.env.VALISE_NATS_SERVER) return process.env.VALISE_NATS_SERVER;
  for (const d of [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin"])
    if (d && existsSync(join(d, "nats-server"))) return join(d, "nats-server");
  return null;
}

async function stopAll(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  await Promise.all(
    children.map((c) => (c.exitCode === null ? new Promise((r) => c.once("exit", r)) : Promise.resolve())),
  );
  process.exit(code);
}
process.once("SIGINT", () => void stopAll());
process.once("SIGTERM", () => void stopAll());

// NATS
let natsUrl = values.nats;
if (!natsUrl) {
  const bin = natsBinary();
  if (!bin) {
    console.error("no nats-server found (apt-get install nats-server), or pass --nats URL");
    process.exit(2);
  }
  const port = await freePort();
  const c = spawn(bin, ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  children.push(c);
  await waitFor(port, "nats-server", c);
  natsUrl = `nats://127.0.0.1:${port}`;
}

// One log key for every node (the database pins it).
const { loadOrCreateLogKey } = await import(join(root, "packages/server/dist/src/index.js"));
loadOrCreateLogKey({ dataDir: data, env: {} });
const logKey = readFileSync(join(data, "log-key"), "utf8").trim();

const nodes = [];
function startNode(i) {
  const port = basePort + i;
  const dir = join(data, `node${i}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const args = [main, "serve", "--data", dir, "--port", String(port), "--nats", natsUrl];
  args.push("--blob-store", values["blob-store"], "--metrics-listen", "off", "--trust-proxy", "127.0.0.1");
  args.push("--web-origin", `http://localhost:${basePort}`);
  const c = spawn(process.execPath, args, {
    env: { ...process.env, VALISE_LOG_KEY: logKey, VALISE_DATABASE_URL: dbUrl },
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.push(c);
  const node = { url: `http://127.0.0.1:${port}`, port, pid: c.pid, child: c };
  nodes[i - 1] = node;
  return node;
}
// The first node migrates the database; the others start once it answers.
await waitFor(startNode(1).port, "node 1", nodes[0].child);
for (let i = 2; i <= n; i++) startNode(i);
for (const node of nodes) await waitFor(node.port, `node at ${node.url}`, node.child);

// The proxy: round robin over the nodes, skipping one that refuses connections.
let next = 0;
function pick(tried) {
  for (let k = 0; k < nodes.length; k++) {
    const node = nodes[(next + k) % nodes.length];
    if (!tried.has(node) && node.child.exitCode === null) {
      next = (next + k + 1) % nodes.length;
      return node;
    }
  }
  return null;
}
function forwardedFor(req) {
  const prior = req.headers["x-forwarded-for"];
  return prior ? `${prior}, ${req.socket.remoteAddress}` : req.socket.remoteAddress;
}
if (!values["no-proxy"]) {
  const proxy = createServer((req, res) => {
    const tried = new Set();
    const attempt = () => {
      const node = pick(tried);
      if (!node) return res.writeHead(502, { "content-type": "application/json" }).end('{"code":"unavailable"}');
      tried.add(node);
      const up = request(
        { host: "127.0.0.1", port: node.port, method: req.method, path: req.url },
        (r) => (res.writeHead(r.statusCode ?? 502, r.headers), r.pipe(res)),
      );
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) up.setHeader(k, v);
      up.setHeader("x-forwarded-for", forwardedFor(req));
      up.on("error", (e) => {
        // Refused before anything was sent: try the next node (a request body cannot be replayed after that).
        if (e.code === "ECONNREFUSED" && !up.reusedSocket) attempt();
        else if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
      req.pipe(up);
    };
    attempt();
  });
  proxy.on("upgrade", (req, socket, head) => {
    const tried = new Set();
    const attempt = () => {
      const node = pick(tried);
      if (!node) return socket.destroy();
      tried.add(node);
      const up = tcp(node.port, "127.0.0.1");
      up.once("connect", () => {
        const headers = { ...req.headers, "x-forwarded-for": forwardedFor(req) };
        let text = `${req.method} ${req.url} HTTP/1.1\r\n`;
        for (const [k, v] of Object.entries(headers)) text += `${k}: ${v}\r\n`;
        up.write(text + "\r\n");
        if (head.length) up.write(head);
        up.pipe(socket).pipe(up);
      });
      up.once("error", (e) => (e.code === "ECONNREFUSED" ? attempt() : socket.destroy()));
      socket.on("error", () => up.destroy());
      up.on("close", () => socket.destroy());
    };
    attempt();
  });
  await new Promise((ok, fail) => {
    proxy.once("error", fail);
    proxy.listen(basePort, "127.0.0.1", ok);
  });
}
console.log(
  JSON.stringify({
    proxy: values["no-proxy"] ? null : `http://127.0.0.1:${basePort}`,
    nodes: nodes.map((x) => ({ url: x.url, pid: x.pid })),
    nats: natsUrl,
    data,
    logKey: join(data, "log-key"),
  }),
);
for (const node of nodes)
  node.child.once("exit", (code, sig) => {
    if (!stopping) process.stderr.write(`node ${node.url} exited (${sig ?? code})\n`);
  });

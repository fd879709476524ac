/**
 * WebSocket push (at-least-once; clients deduplicate by sequence number). A socket authenticates with its first
 * frame `{"type":"auth","token":…}` (browsers cannot set headers on WebSockets, and a token in the URL would end up
 * in access logs). Events for a conversation go to its current member devices, in sequence order.
 */
import type { FastifyInstance } from "fastify";
import type { WebSocket } from "ws";
import type { Socket } from "node:net";
import type { FanoutEvent } from "../delivery/fanout.js";
import type { ServerContext } from "./context.js";
import { ValiseError, isConversationId } from "@valise/core";
import { acceptMessage } from "./accept-message.js";
import { clientOf, conversationMeta, sendRecord, notAudited } from "../audit/http.js";
import { isStoreOutage } from "./errors.js";
import { fromBase64Strict } from "./base64.js";
import { FrameBatch } from "./frame-batch.js";

const MAX_FRAME = 512 * 1024;

export function wsRoutes(app: FastifyInstance, ctx: ServerContext): () => void {
  const sockets = new Map<string, Set<WebSocket>>(); // device → sockets
  const members = new Map<string, Set<string>>(); // conversation → devices (cache, dropped on membership change)
  // conversation → the last seq pushed: with several nodes, events from different writers may arrive out of order or
  // not at all (see resync), so a membership cached before an unseen commit must not be trusted.
  const lastSeq = new Map<string, number>();
  const infos = new Map<WebSocket, { handle: string; deviceId: string; source: string; client: string | null }>();
  const officers = new Map<WebSocket, string>(); // sockets of security officers → handle (alert push)
  // Each WebSocket's TCP socket: acks and pushes written in one pass leave in one write (frame-batch.ts).
  const tcp = new WeakMap<WebSocket, Socket>();
  const batch = new FrameBatch();
  function sendFrame(ws: WebSocket, text: string): void {
    batch.hold(tcp.get(ws));
    ws.send(text);
  }

  /**
   * Alerts go to officers' sockets, in the order they were stored (one chain); the role is checked again at each
   * push (it may have been taken away).
   */
  let alertChain = Promise.resolve();
  function pushAlert(text: string): void {
    alertChain = alertChain
      .then(async () => {
        for (const [ws, handle] of officers) {
          const u = await ctx.store.directory.getUser(handle);
          if (u?.role === "officer" && ws.readyState === ws.OPEN) {
            ws.send(text);
            ctx.metrics.pushes.inc();
          }
        }
      })
      .catch((err: unknown) => app.log.warn({ err: String(err) }, "alert push failed"));
  }

  async function membersOf(conversationId: string): Promise<Set<string>> {
    let m = members.get(conversationId);
    if (!m) {
      m = new Set(await ctx.store.conversations.currentMembers(conversationId));
      members.set(conversationId, m);
      if (members.size > 50_000) {
        members.clear();
        lastSeq.clear();
      }
    }
    return m;
  }

  /**
   * A pushed message is a read (DESIGN §3 "Audit log"): one `message.read` event per receiving socket, appended
   * through the batched audit recorder (the same durable write as HTTP reads); the frame leaves only once its event
   * is durable. Loading members is chained per conversation (membership in sequence order); the audit appends of
   * consecutive messages overlap, and the sends are chained again, so pushes keep sequence order.
   */
  const loadChains = new Map<string, Promise<unknown>>();
  const sendChains = new Map<string, Promise<void>>();
  const meta = conversationMeta(ctx);
  function pushMessage(ev: Extract<FanoutEvent, { type: "message" }>): void {
    const conv = ev.conversationId;
    const last = lastSeq.get(conv);
    // An older message than one already pushed (another node's, overtaken): the client has read it by catching up
    // after the newer push.
    if (last !== undefined && ev.seq <= last) return;
    // A message not following the last one pushed: the ones between (a commit among them, perhaps) were not seen
    // here, so the cached membership is reloaded from the database.
    if (last === undefined || ev.seq !== last + 1) members.delete(conv);
    lastSeq.set(conv, ev.seq);
    const text = JSON.stringify(ev);
    const cached = members.get(conv);
    const loaded = cached && !loadChains.has(conv) ? Promise.resolve(cached) : chainLoad(conv);
    const audited = loaded.then(async (m) => {
      const targets: WebSocket[] = [];
      // Not to the sending device: it has the message already (its own sockets would only echo it back).
      for (const d of m)
        if (d !== ev.sender) for (const ws of sockets.get(d) ?? []) if (ws.readyState === ws.OPEN) targets.push(ws);
      if (targets.length === 0) return targets;
      const { label, unit } = await meta(conv);
      const bytes = Math.floor((ev.payload.length * 3) / 4);
      await Promise.all(
        targets.map((ws) => {
          const who = infos.get(ws);
          return who
            ? ctx.audit.record({
                actor: who.handle,
                device: who.deviceId,
                source: who.source,
                client: who.client,
                action: "message.read",
                object: conv,
                label,
                unit,
                bytes,
                outcome: "ok",
              })
            : Promise.resolve();
        }),
      );
      return targets;
    });
    const next = (sendChains.get(conv) ?? Promise.resolve())
      .then(() => audited)
      .then((targets) => {
        for (const ws of targets)
          if (ws.readyState === ws.OPEN) {
            sendFrame(ws, text);
            ctx.metrics.pushes.inc();
          }
      })
      .catch((err: unknown) => app.log.warn({ err: String(err) }, "push failed (not audited, not sent)"));
    sendChains.set(conv, next);
    void next.then(() => {
      if (sendChains.get(conv) === next) sendChains.delete(conv);
    });
  }
  function chainLoad(conv: string): Promise<Set<string>> {
    const p = (loadChains.get(conv) ?? Promise.resolve()).catch(() => undefined).then(() => membersOf(conv));
    loadChains.set(conv, p);
    void p
      .catch(() => undefined)
      .then(() => {
        if (loadChains.get(conv) === p) loadChains.delete(conv);
      });
    return p;
  }

  function send(deviceId: string, text: string): void {
    const set = sockets.get(deviceId);
    if (!set) return;
    for (const ws of set) {
      if (ws.readyState === ws.OPEN) {
        ws.send(text);
        ctx.metrics.pushes.inc();
      }
    }
  }

  const unsubscribe = ctx.fanout.subscribe((ev: FanoutEvent) => {
    switch (ev.type) {
      case "membership":
        members.delete(ev.conversationId);
        return;
      case "resync": {
        members.clear();
        lastSeq.clear();
        const text = JSON.stringify({ type: "resync" });
        for (const set of sockets.values()) for (const ws of set) if (ws.readyState === ws.OPEN) ws.send(text);
        return;
      }
      case "device-revoked": {
        for (const ws of sockets.get(ev.deviceId) ?? []) ws.close(4001, "device revoked");
        sockets.delete(ev.deviceId);
        return;
      }
      case "inbox":
        send(ev.deviceId, JSON.stringify(ev));
        return;
      case "directory": {
        // Every socket: any change may concern its user (a unit of theirs, someone they write to, their devices).
        const text = JSON.stringify({ type: "directory", size: ev.size });
        for (const set of sockets.values())
          for (const ws of set)
            if (ws.readyState === ws.OPEN) {
              ws.send(text);
              ctx.metrics.pushes.inc();
            }
        return;
      }
      case "alert":
        if (officers.size > 0) pushAlert(JSON.stringify({ type: "alert", ...ev.alert }));
        return;
      case "message":
        if (sockets.size === 0) return;
        pushMessage(ev);
        return;
    }
  });

  // Sessions are re-checked: on every send frame, and for idle sockets every few seconds, so a device revoked from
  // another process (`valise admin device revoke`) stops being served within seconds even if it only listens. One
  // query per sweep for all sockets (grouped by session), one sweep at a time: one query per socket (thousands a node,
  // every 3 s, all at once) overran the pool's wait for a connection, and that rejection ended the process. A sweep
  // that cannot read the sessions (the database is down or busy) closes nothing: the next one tries again.
  const tokens = new Map<WebSocket, string>();
  let sweeping = false;
  async function sweepSessions(): Promise<void> {
    const byToken = new Map<string, WebSocket[]>();
    for (const [ws, token] of tokens) {
      const list = byToken.get(token);
      if (list) list.push(ws);
      else byToken.set(token, [ws]);
    }
    if (byToken.size === 0) return;
    const live = await ctx.store.directory.liveSessions([...byToken.keys()]);
    for (const [token, list] of byToken)
      if (!live.has(token)) for (const ws of list) if (tokens.get(ws) === token) ws.close(4001, "session ended");
  }
  const sweep = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    sweepSessions()
      .catch((err: unknown) => {
        if (!isStoreOutage(err)) app.log.warn({ err: String(err) }, "session sweep failed");
      })
      .finally(() => (sweeping = false));
  }, 3_000);
  sweep.unref();

  const getWsAudit = notAudited(
    "the push socket: its login is audited, each send in the append's transaction (sendRecord)",
  );
  app.get("/v1/ws", { ...getWsAudit, websocket: true }, (socket, req) => {
    const origin = { source: req.ip, client: clientOf(req.headers) };
    tcp.set(socket, req.socket);
    let deviceId: string | null = null;
    let session: { handle: string; deviceId: string } | null = null;
    let token = "";
    let authenticating = false;
    const timer = setTimeout(() => socket.close(4000, "auth timeout"), 10_000);
    socket.on("message", (raw: Buffer) => {
      if (raw.length > MAX_FRAME) return socket.close(1009, "frame too large");
      let frame: Record<string, unknown> | null = null;
      try {
        const v: unknown = JSON.parse(raw.toString("utf8"));
        frame = v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
      } catch {
        frame = null;
      }
      if (!session) {
        if (authenticating) return; // one auth frame at a time; nothing else before it succeeded
        authenticating = true;
        void (async () => {
          const t = frame?.token;
          let s: { handle: string; deviceId: string } | null;
          try {
            s = typeof t === "string" && t.length < 200 ? await resolveSession(ctx, t) : null;
          } catch (err) {
            // The session cannot be read now (database down or its pool busy): come back later. Unhandled, this
            // rejection ended the process.
            if (!isStoreOutage(err)) app.log.warn({ err: String(err) }, "socket authentication failed");
            socket.close(1013, "try again later");
            return;
          }
          if (!s) {
            socket.close(4001, "unauthenticated");
            return;
          }
          clearTimeout(timer);
          // Socket authentication is a login (audited like one, with the socket's source); pushes are reads.
          const user = await ctx.store.directory.getUser(s.handle).catch(() => null);
          try {
            await ctx.audit.record({
              actor: s.handle,
              device: s.deviceId,
              ...origin,
              action: "login",
              object: s.handle,
              unit: user?.units[0] ?? null,
              bytes: 0,
              outcome: "ok",
            });
          } catch {
            socket.close(1011, "audit log unavailable");
            return;
          }
          session = s;
          infos.set(socket, { handle: s.handle, deviceId: s.deviceId, ...origin });
          token = t as string;
          tokens.set(socket, token);
          deviceId = s.deviceId;
          let set = sockets.get(deviceId);
          if (!set) sockets.set(deviceId, (set = new Set()));
          set.add(socket);
          ctx.metrics.wsConnections.inc();
          if (user?.role === "officer" && socket.readyState === socket.OPEN) officers.set(socket, s.handle);
          socket.send(JSON.stringify({ type: "ready", device: deviceId }));
        })().catch((err: unknown) => {
          // Nothing above should throw; if something does, this socket ends, not the process.
          app.log.error({ err: String(err) }, "socket authentication failed");
          socket.close(1011, "internal error");
        });
        return;
      }
      if (frame?.type === "send") void handleSend(socket, token, frame, origin);
      else socket.send(JSON.stringify({ type: "error", code: "bad_request", message: "unknown frame" }));
    });
    socket.on("close", () => {
      clearTimeout(timer);
      tokens.delete(socket);
      infos.delete(socket);
      officers.delete(socket);
      if (deviceId) {
        sockets.get(deviceId)?.delete(socket);
        if (sockets.get(deviceId)?.size === 0) sockets.delete(deviceId);
        ctx.metrics.wsConnections.dec();
      }
    });
    socket.on("error", () => socket.terminate());
  });

  /**
   * `{"type":"send","ref":n,"conversation":id,"idempotencyKey":k,"payload":base64}` → `{"type":"ack","ref",seq,epoch,
   * duplicate}` or `{"type":"error","ref",code,message}`: the same acceptance as POST …/messages, without an HTTP
   * request per message.
   */
  async function handleSend(
    socket: WebSocket,
    token: string,
    f: Record<string, unknown>,
    origin: { source: string; client: string | null },
  ): Promise<void> {
    const ref = typeof f.ref === "number" && Number.isSafeInteger(f.ref) ? f.ref : null;
    try {
      const s = await ctx.lookupSession(token);
      if (!s) {
        socket.close(4001, "session ended");
        return;
      }
      const conv = f.conversation;
      const idem = f.idempotencyKey;
      const payload = f.payload;
      if (ref === null || !isConversationId(conv) || typeof idem !== "string" || typeof payload !== "string")
        throw new ValiseError("bad_request", "send needs ref, conversation, idempotencyKey, payload");
      const bytes = fromBase64Strict(payload);
      if (!bytes) throw new ValiseError("bad_encoding", "payload: invalid base64");
      // The audit event (DESIGN §3) is appended in the message's own transaction; a denial is recorded here, before
      // the error frame.
      const rec = await sendRecord(ctx, s, origin, conv, bytes.length);
      let a;
      try {
        a = await acceptMessage(ctx, s, conv, bytes, idem, rec);
      } catch (e) {
        if (e instanceof ValiseError && (e.code === "not_found" || e.code === "forbidden"))
          await ctx.audit.record({ ...rec, outcome: "denied" });
        throw e;
      }
      sendFrame(socket, JSON.stringify({ type: "ack", ref, ...a }));
    } catch (e) {
      const outage = !(e instanceof ValiseError) && isStoreOutage(e);
      const code = e instanceof ValiseError ? e.code : outage ? "store_error" : "internal";
      const message =
        e instanceof ValiseError
          ? e.message
          : outage
            ? "the server cannot store or read right now; retry later"
            : "internal error";
      if (!(e instanceof ValiseError) && !outage) app.log.error({ err: String(e) }, "ws send failed");
      const extra = e instanceof ValiseError && e.details ? e.details : {};
      socket.send(JSON.stringify({ type: "error", ref, code, message, ...extra }));
    }
  }

  app.addHook("onClose", async () => clearInterval(sweep));
  return unsubscribe;
}

/** Session lookup (uncached: see storage/session-lookup.ts). */
export async function resolveSession(
  ctx: ServerContext,
  token: string,
): Promise<{ handle: string; deviceId: string } | null> {
  return ctx.lookupSession(token);
}

/**
 * WebSocket push (at-least-once; clients deduplicate by sequence number). A socket authenticates with its first
 * frame `{"type":"auth","token":…}` (browsers cannot set headers on WebSockets, and a token in the URL would end up
 * in access logs). Events for a conversation go to its current member devices, in sequence order.
 */
import type { FastifyInstance } from "fastify";
import type { WebSocket } from "ws";
import type { FanoutEvent } from "../delivery/fanout.js";
import type { ServerContext } from "./context.js";

export function wsRoutes(app: FastifyInstance, ctx: ServerContext): () => void {
  const sockets = new Map<string, Set<WebSocket>>(); // device → sockets
  const members = new Map<string, Set<string>>(); // conversation → devices (cache, dropped on membership change)
  const chains = new Map<string, Promise<void>>(); // per-conversation ordering while members load

  async function membersOf(conversationId: string): Promise<Set<string>> {
    let m = members.get(conversationId);
    if (!m) {
      m = new Set(await ctx.store.conversations.currentMembers(conversationId));
      members.set(conversationId, m);
      if (members.size > 50_000) members.clear();
    }
    return m;
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
      case "device-revoked": {
        for (const ws of sockets.get(ev.deviceId) ?? []) ws.close(4001, "device revoked");
        sockets.delete(ev.deviceId);
        return;
      }
      case "inbox":
        send(ev.deviceId, JSON.stringify(ev));
        return;
      case "message": {
        if (sockets.size === 0) return;
        const text = JSON.stringify(ev);
        const cached = members.get(ev.conversationId);
        const pending = chains.get(ev.conversationId);
        if (cached && !pending) {
          for (const d of cached) send(d, text);
          return;
        }
        const next = (pending ?? Promise.resolve())
          .then(() => membersOf(ev.conversationId))
          .then((m) => {
            for (const d of m) send(d, text);
          })
          .catch((err: unknown) => app.log.warn({ err: String(err) }, "push failed"));
        chains.set(ev.conversationId, next);
        void next.then(() => {
          if (chains.get(ev.conversationId) === next) chains.delete(ev.conversationId);
        });
        return;
      }
    }
  });

  app.get("/v1/ws", { websocket: true }, (socket) => {
    let deviceId: string | null = null;
    const timer = setTimeout(() => socket.close(4000, "auth timeout"), 10_000);
    socket.on("message", (raw: Buffer) => {
      if (deviceId) return; // clients only listen after auth
      void (async () => {
        let token: unknown;
        try {
          token = (JSON.parse(raw.toString("utf8")) as { token?: unknown }).token;
        } catch {
          token = undefined;
        }
        const session = typeof token === "string" && token.length < 200 ? await resolveSession(ctx, token) : null;
        if (!session) {
          socket.close(4001, "unauthenticated");
          return;
        }
        clearTimeout(timer);
        deviceId = session.deviceId;
        let set = sockets.get(deviceId);
        if (!set) sockets.set(deviceId, (set = new Set()));
        set.add(socket);
        ctx.metrics.wsConnections.inc();
        socket.send(JSON.stringify({ type: "ready", device: deviceId }));
      })();
    });
    socket.on("close", () => {
      clearTimeout(timer);
      if (deviceId) {
        sockets.get(deviceId)?.delete(socket);
        if (sockets.get(deviceId)?.size === 0) sockets.delete(deviceId);
        ctx.metrics.wsConnections.dec();
      }
    });
    socket.on("error", () => socket.terminate());
  });

  return unsubscribe;
}

/** Session lookup (uncached: see storage/session-lookup.ts). */
export async function resolveSession(
  ctx: ServerContext,
  token: string,
): Promise<{ handle: string; deviceId: string } | null> {
  return ctx.lookupSession(token);
}

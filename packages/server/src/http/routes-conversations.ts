/**
 * Conversations: create, list, read the ordered log, post application messages (binary body) and commits.
 * The server sees only routing metadata: MLS headers are parsed (bounded) to read group id, epoch and content type.
 */
import type { FastifyInstance } from "fastify";
import type { Static } from "typebox";
import { ValiseError, canonicalLabel, dominates, equalBytes, parseLabel, toBase64 } from "@valise/core";
import {
  CommitBody,
  ConversationParams,
  CreateConversationBody,
  FetchMessagesQuery,
  InboxQuery,
  MAX_COMMIT,
  MAX_MESSAGE,
} from "@valise/core/wire";
import { type ServerContext, b64, requireSession } from "./context.js";
import type { AppendRequest } from "../storage/conversation-store.js";
import { IDEMPOTENCY_KEY_RE, acceptMessage, appendChecked, checkGroup, requireActiveMember } from "./accept-message.js";
import { clientOf, sendRecord, audit, auditOf } from "../audit/http.js";

// The request schemas are the shared wire contract (@valise/core/wire), which the client checks answers against.
const CreateBody = CreateConversationBody;
const Params = ConversationParams;
const FetchQuery = FetchMessagesQuery;

export function conversationRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { conversations, directory } = ctx.store;

  /** A device whose user is no longer cleared for the conversation's label reads nothing of it (pending removal). */
  async function requireCleared(conversationId: string, deviceId: string): Promise<void> {
    if (await conversations.notCleared(conversationId, deviceId))
      throw new ValiseError("not_cleared", "this device is no longer cleared for the conversation's label");
  }

  app.addContentTypeParser(
    "application/octet-stream",
    { parseAs: "buffer", bodyLimit: MAX_MESSAGE },
    (_req, body, done) => done(null, body),
  );

  app.post<{ Body: Static<typeof CreateBody> }>(
    "/v1/conversations",
    { ...audit({ action: "message.send", write: true, object: auditOf.body("id") }), schema: { body: CreateBody } },
    async (req, reply) => {
      const s = requireSession(req);
      const user = await directory.getUser(s.handle);
      if (!user) throw new ValiseError("unauthenticated", "user unknown");
      const label = canonicalLabel(req.body.label);
      // Need-to-know: nobody opens a conversation above their own clearance.
      if (!dominates(parseLabel(user.clearance), parseLabel(label)))
        throw new ValiseError("not_cleared", `your clearance does not cover ${label}`);
      let unit: string | null = null;
      let fromUnit: string | null = null;
      const units = async (names: string[]) => {
        const all = await directory.listUnits();
        return names.map((n) => {
          const u = all.find((x) => x.name === n);
          if (!u) throw new ValiseError("not_found", `no unit ${n}`);
          if (!dominates(parseLabel(u.maxLabel), parseLabel(label)))
            throw new ValiseError("not_cleared", `unit ${u.name} may not carry ${label}`);
          return u.name;
        });
      };
      if (req.body.kind === "unit") {
        if (!req.body.unit) throw new ValiseError("bad_request", "a unit channel needs `unit`");
        if (req.body.fromUnit !== undefined) throw new ValiseError("bad_request", "only a link has `fromUnit`");
        if (!user.units.includes(req.body.unit))
          throw new ValiseError("forbidden", `you are not a member of ${req.body.unit}`);
        unit = (await units([req.body.unit]))[0]!;
      } else if (req.body.kind === "link") {
        // Key delivery between units (cables, documents): the caller speaks for `fromUnit`, `unit` receives.
        if (!req.body.unit || !req.body.fromUnit)
          throw new ValiseError("bad_request", "a link needs `unit` (addressee) and `fromUnit` (originator)");
        if (req.body.unit === req.body.fromUnit)
          throw new ValiseError("bad_request", "a link joins two different units");
        if (!user.units.includes(req.body.fromUnit))
          throw new ValiseError("forbidden", `you are not a member of ${req.body.fromUnit}`);
        const [to, from] = await units([req.body.unit, req.body.fromUnit]);
        unit = to!;
        fromUnit = from!;
      } else if (req.body.fromUnit !== undefined) throw new ValiseError("bad_request", "only a link has `fromUnit`");
      const conv = await conversations.create({
        id: req.body.id,
        kind: req.body.kind,
        label,
        unit,
        fromUnit,
        creator: s.handle,
        creatorDevice: s.deviceId,
      });
      return reply.status(201).send(conv);
    },
  );

  const getConversationsAudit = audit({
    action: "message.read",
    kind: "other",
    object: auditOf.fixed("conversations"),
  });
  app.get("/v1/conversations", getConversationsAudit, async (req) => {
    const s = requireSession(req);
    const list = await conversations.listForDevice(s.deviceId);
    return { conversations: list };
  });

  const getConversationsIdAudit = audit({ action: "message.read" });
  app.get<{ Params: Static<typeof Params> }>(
    "/v1/conversations/:id",
    { ...getConversationsIdAudit, schema: { params: Params } },
    async (req) => {
      const s = requireSession(req);
      const m = await conversations.membership(req.params.id, s.deviceId);
      const conv = await conversations.get(req.params.id);
      if (!conv || !m) throw new ValiseError("not_found", "no such conversation");
      await requireCleared(req.params.id, s.deviceId);
      return { ...conv, joinedSeq: m.joinedSeq, leftSeq: m.leftSeq };
    },
  );

  app.get<{ Params: Static<typeof Params>; Querystring: Static<typeof FetchQuery> }>(
    "/v1/conversations/:id/messages",
    { ...audit({ action: "message.read" }), schema: { params: Params, querystring: FetchQuery } },
    async (req) => {
      const s = requireSession(req);
      const m = await conversations.membership(req.params.id, s.deviceId);
      if (!m) throw new ValiseError("not_found", "no such conversation");
      await requireCleared(req.params.id, s.deviceId);
      const msgs = await conversations.fetch(req.params.id, req.query.after ?? 0, req.query.limit ?? 500, m);
      return {
        messages: msgs.map((x) => ({
          seq: x.seq,
          kind: x.kind,
          epoch: x.epoch,
          sender: x.sender,
          payload: toBase64(x.payload),
          createdAt: x.createdAt,
        })),
      };
    },
  );

  app.get<{ Params: Static<typeof Params> }>(
    "/v1/conversations/:id/group-info",
    { ...audit({ action: "message.read" }), schema: { params: Params } },
    async (req) => {
      const s = requireSession(req);
      const m = await conversations.membership(req.params.id, s.deviceId);
      if (!m || m.leftSeq !== null) throw new ValiseError("not_found", "no such conversation");
      await requireCleared(req.params.id, s.deviceId);
      const gi = await conversations.groupInfo(req.params.id);
      if (!gi) throw new ValiseError("not_found", "no group info published yet");
      return { groupInfo: toBase64(gi) };
    },
  );

  // Application messages (and standalone proposals): raw MLSMessage bytes.
  app.post<{ Params: Static<typeof Params> }>(
    "/v1/conversations/:id/messages",
    { ...audit({ action: "message.send", write: true, inTransaction: true }), schema: { params: Params } },
    async (req, reply) => {
      const s = requireSession(req);
      const body = req.body;
      if (!(body instanceof Uint8Array))
        throw new ValiseError("bad_request", "body must be application/octet-stream (an MLS message)");
      const idem = req.headers["idempotency-key"];
      if (typeof idem !== "string" || !IDEMPOTENCY_KEY_RE.test(idem))
        throw new ValiseError("bad_request", "Idempotency-Key header required (8-128 url-safe chars)");
      const rec = await sendRecord(
        ctx,
        s,
        { source: req.ip, client: clientOf(req.headers) },
        req.params.id,
        body.length,
      );
      return reply.status(201).send(await acceptMessage(ctx, s, req.params.id, body, idem, rec));
    },
  );

  app.post<{ Params: Static<typeof Params>; Body: Static<typeof CommitBody> }>(
    "/v1/conversations/:id/commits",
    {
      ...audit({ action: "message.send", write: true, inTransaction: true }),
      schema: { params: Params, body: CommitBody },
      bodyLimit: MAX_COMMIT * 2,
    },
    async (req, reply) => {
      const s = requireSession(req);
      const commit = b64("commit", req.body.commit);
      const h = ctx.mls.inspectMlsMessage(commit);
      if (
        !h ||
        (h.wireformat !== "private" && h.wireformat !== "public") ||
        h.contentType !== "commit" ||
        h.epoch === undefined ||
        !h.groupId
      )
        throw new ValiseError("protocol_error", "commit is not an MLS commit message");
      checkGroup(h.groupId, req.params.id);
      const welcome = req.body.welcome ? b64("welcome", req.body.welcome) : null;
      if (welcome && ctx.mls.inspectMlsMessage(welcome)?.wireformat !== "welcome")
        throw new ValiseError("protocol_error", "welcome is not an MLS Welcome");
      const groupInfo = b64("groupInfo", req.body.groupInfo);
      if (ctx.mls.inspectMlsMessage(groupInfo)?.wireformat !== "group_info")
        throw new ValiseError("protocol_error", "groupInfo is not an MLS GroupInfo");
      const conv = await conversations.get(req.params.id);
      if (!conv) throw new ValiseError("not_found", "no such conversation");
      // An external commit (RFC 9420 §12.4.3.2) re-joins a device that lost its state; it must still be a member.
      await requireActiveMember(ctx, req.params.id, s.deviceId);
      await requireCleared(req.params.id, s.deviceId);
      // Membership changes come from what the server verifies in the commit (a PublicMessage: its sender, signature
      // and proposals, against the GroupInfo stored for this epoch), never from the client's `added`/`removed`.
      const current = await conversations.groupInfo(req.params.id);
      const currentEpoch = current ? Number(ctx.mls.inspectMlsMessage(current)?.epoch ?? -1) : 0;
      if (Number(h.epoch) !== currentEpoch)
        throw new ValiseError(
          "epoch_conflict",
          `the conversation is at epoch ${currentEpoch}; fetch, process and retry`,
          {
            epoch: currentEpoch,
          },
        );
      const change = await ctx.mls.inspectCommit(commit, current, groupInfo);
      if (!change.ok) throw new ValiseError("protocol_error", `commit refused: ${change.reason}`);
      if (change.sender.device !== s.deviceId)
        throw new ValiseError("forbidden", "the commit is signed by another device than this session's");
      if ((change.sender.kind === "external") !== (req.body.external ?? false))
        throw new ValiseError("bad_request", "`external` does not match the commit's sender");
      if (current === null) {
        // Epoch 0: the group holds its creator's device alone.
        const members = await conversations.currentMembers(req.params.id);
        if (members.length !== 1 || members[0] !== s.deviceId)
          throw new ValiseError("forbidden", "only the creating device commits first");
      }
      const keyOk = async (c: { device: string; signaturePublicKey: Uint8Array | null }) => {
        if (c.signaturePublicKey === null) return true; // test stand-ins only (see CommitDeviceInfo)
        const dev = await directory.getDevice(c.device);
        return !!dev && equalBytes(dev.signaturePublicKey, c.signaturePublicKey);
      };
      if (!(await keyOk(change.sender)))
        throw new ValiseError("forbidden", "the commit's signature key is not this device's key in the directory");
      const added = change.added.map((c) => c.device);
      const removed = change.removed;
      const same = (a: readonly string[], b: readonly string[]) =>
        new Set(a).size === new Set(b).size && a.every((x) => b.includes(x));
      if (!same(req.body.added, added) || !same(req.body.removed, removed))
        throw new ValiseError("bad_request", "`added`/`removed` disagree with the commit's proposals", {
          added,
          removed,
        });
      if (added.length > 0 && !welcome) throw new ValiseError("bad_request", "adding devices needs a welcome");
      // Need-to-know, server side: only active devices of users cleared for the conversation's label may be added;
      // to a unit channel only devices of the unit's members, to a link those of either unit's members.
      const label = parseLabel(conv.label);
      const allowedUnits = conv.kind === "unit" || conv.kind === "link" ? [conv.unit, conv.fromUnit] : null;
      for (const a of change.added) {
        const d = a.device;
        const dev = await directory.getDevice(d);
        if (!dev || dev.revokedAt !== null) throw new ValiseError("forbidden", `device ${d} is unknown or revoked`);
        if (!(await keyOk(a)))
          throw new ValiseError("forbidden", `device ${d} is added with a key not in the directory`);
        const user = await directory.getUser(dev.handle);
        if (!user) throw new ValiseError("forbidden", `device ${d} has no user`);
        if (allowedUnits && !user.units.some((u) => allowedUnits.includes(u)))
          throw new ValiseError(
            "forbidden",
            `user ${dev.handle} is not a member of ${allowedUnits.filter((u) => u !== null).join(" or ")}`,
          );
        if (!dominates(parseLabel(user.clearance), label))
          throw new ValiseError("not_cleared", `user ${dev.handle} is not cleared for ${conv.label}`);
      }
      const rec = await sendRecord(
        ctx,
        s,
        { source: req.ip, client: clientOf(req.headers) },
        req.params.id,
        Number(req.headers["content-length"] ?? 0),
      );
      const accepted = await appendChecked(
        ctx,
        s,
        {
          conversationId: req.params.id,
          senderDevice: s.deviceId,
          kind: "commit",
          epoch: Number(h.epoch),
          payload: commit,
          idemKey: req.body.idempotencyKey,
          commit: {
            added,
            removed,
            welcome,
            groupInfo,
            external: req.body.external ?? false,
          },
        },
        rec,
      );
      return reply.status(201).send(accepted);
    },
  );

  app.get<{ Querystring: Static<typeof InboxQuery> }>(
    "/v1/inbox",
    {
      ...audit({ action: "message.read", kind: "other", object: auditOf.fixed("inbox") }),
      schema: { querystring: InboxQuery },
    },
    async (req) => {
      const s = requireSession(req);
      const items = await conversations.fetchInbox(s.deviceId, req.query.after ?? 0, 200);
      const out = [];
      for (const it of items) {
        const conv = await conversations.get(it.conversationId);
        out.push({
          id: it.id,
          conversation: conv,
          commitSeq: it.commitSeq,
          welcome: toBase64(it.payload),
          createdAt: it.createdAt,
        });
      }
      return { items: out };
    },
  );
}

export type { AppendRequest };

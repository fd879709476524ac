/**
 * A user acknowledges one of their own devices (issue 16: "that new phone is mine", `valise devices --ack`, the web
 * app's "this device is mine"):
 *   POST /v1/devices/:id/ack → 200 { device, acknowledged: true, from }      the device's owner, any of their devices
 * Audited as `directory.device.ack` (object: the owner, target_device: the acknowledged device, device: the one that
 * acknowledged it). The detection engine credits an acknowledgement only when it was made from another device already
 * trusted for the user: a new device then is not taken for an intruder's (rule new-device-new-network-read). Another
 * user's device, an unknown or revoked one is 404 (audited as denied).
 *   POST /v1/devices/:id/revoke → 200 { device, revoked: true }                 the device's owner, from another device
 * A user revokes their own lost or stolen device (issue 15): the same directory change as `valise admin device revoke`
 * (a `device.revoke` log entry; its sessions and key packages go; every group it is in must remove it), audited as
 * `directory.device.revoke` with the user as actor in the change's transaction. The device in use cannot revoke
 * itself (403: sign out instead); any of the user's active devices can revoke any other, as the user could ask the
 * administrator to. Another user's device, an unknown or revoked one is 404 (audited as denied).
 */
import type { FastifyInstance } from "fastify";
import { ValiseError, isDeviceId } from "@valise/core";
import { type ServerContext, requireSession } from "../http/context.js";
import { auditObject, audit, clientOf } from "../audit/http.js";

export function deviceAckRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const postDevicesIdAckAudit = audit({ action: "directory.device.ack", write: true, fromRoute: true });
  app.post<{ Params: { id: string } }>("/v1/devices/:id/ack", postDevicesIdAckAudit, async (req) => {
    const s = requireSession(req);
    const id = req.params.id;
    const user = await ctx.store.directory.getUser(s.handle);
    auditObject(req, { object: s.handle, targetDevice: id.slice(0, 200), unit: user?.units[0] ?? null, bytes: 0 });
    if (!isDeviceId(id)) throw new ValiseError("bad_request", "invalid device id");
    const dev = await ctx.store.directory.getDevice(id);
    if (!dev || dev.handle !== s.handle || dev.revokedAt !== null)
      throw new ValiseError("not_found", "no such active device of yours");
    return { device: id, acknowledged: true, from: s.deviceId };
  });

  const postDevicesIdRevokeAudit = audit({
    action: "directory.device.revoke",
    write: true,
    inTransaction: true,
    fromRoute: true,
  });
  app.post<{ Params: { id: string } }>("/v1/devices/:id/revoke", postDevicesIdRevokeAudit, async (req) => {
    const s = requireSession(req);
    const id = req.params.id;
    const user = await ctx.store.directory.getUser(s.handle);
    auditObject(req, { object: s.handle, targetDevice: id.slice(0, 200), unit: user?.units[0] ?? null, bytes: 0 });
    if (!isDeviceId(id)) throw new ValiseError("bad_request", "invalid device id");
    const dev = await ctx.store.directory.getDevice(id);
    if (!dev || dev.handle !== s.handle || dev.revokedAt !== null)
      throw new ValiseError("not_found", "no such active device of yours");
    if (id === s.deviceId)
      throw new ValiseError("forbidden", "a device cannot revoke itself: revoke it from another of your devices");
    await ctx.store.directory.revokeDevice(id, {
      actor: s.handle,
      device: s.deviceId,
      source: req.ip,
      client: clientOf(req.headers),
    });
    return { device: id, revoked: true };
  });
}

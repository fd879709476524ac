/**
 * A user acknowledges one of their own devices (issue 16: "that new phone is mine", `valise devices --ack`, the web
 * app's "this device is mine"):
 *   POST /v1/devices/:id/ack → 200 { device, acknowledged: true, from }      the device's owner, any of their devices
 * Audited as `directory.device.ack` (object: the owner, target_device: the acknowledged device, device: the one that
 * acknowledged it). The detection engine credits an acknowledgement only when it was made from another device already
 * trusted for the user: a new device then is not taken for an intruder's (rule new-device-new-network-read). Another
 * user's device, an unknown or revoked one is 404 (audited as denied).
 */
import type { FastifyInstance } from "fastify";
import { ValiseError, isDeviceId } from "@valise/core";
import { type ServerContext, requireSession } from "../http/context.js";
import { auditObject, audit } from "../audit/http.js";

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
}

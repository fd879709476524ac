import { useEffect, useRef, useState } from "react";
import type { DirectoryAlert, OwnDevice } from "@valise/client";
import type { Ctx } from "./ctx.js";
import { ErrorNote, errorText, fmtTime } from "./ui.js";
import { LogKeyCheck, NewDeviceButtons, RevokeButton, SignOut } from "./devices.js";
import { notificationsState } from "./notify.js";

export interface OwnState {
  devices: OwnDevice[];
  alerts: DirectoryAlert[];
  verified: boolean;
}

export function Account({ ctx, own, onAck }: { ctx: Ctx; own: OwnState | null; onAck: () => void }) {
  const [error, setError] = useState<string | null>(null);
  const [deviceResult, setDeviceResult] = useState<string | null>(null);
  const devicesH = useRef<HTMLHeadingElement>(null);
  useEffect(() => ctx.setLabels([]), [ctx]);
  const selfIndex = own?.devices.find((d) => d.self)?.logIndex ?? null;
  const state = (d: OwnDevice): { text: string; warn: boolean } => {
    if (d.revokedLogIndex !== null) return { text: "Revoked", warn: false };
    if (d.self) return { text: "This browser", warn: false };
    if (selfIndex !== null && d.logIndex < selfIndex)
      return { text: "Active (enrolled before this browser)", warn: false };
    if (d.expected) return { text: "Active, not enrolled by this browser: you confirmed it is yours", warn: false };
    return { text: "NOT ENROLLED BY THIS BROWSER: not confirmed by you", warn: true };
  };
  return (
    <section aria-labelledby="account-h">
      <h2 id="account-h">Account</h2>
      <p>
        <strong>{ctx.me.handle}</strong> · units {ctx.me.units.join(", ") || "none"} · clearance{" "}
        <strong>{ctx.me.clearance}</strong> · role {ctx.me.role}
      </p>
      {own && own.alerts.length > 0 && (
        <div className="kt-alert big" role="region" aria-labelledby="kt-h">
          <h3 id="kt-h">
            {own.alerts.some((a) => a.kind === "device.add")
              ? "A device you did not enrol may have been added to your account"
              : "Changes to your account this browser did not make"}
          </h3>
          <p>
            Each alert below is a change to your account in the witnessed directory log that this browser did not make.
            If the device is yours (you enrolled it elsewhere), select <strong>This device is mine</strong>.
          </p>
          <ul>
            {own.alerts.map((a) => (
              <li key={a.id}>
                {a.text} ({fmtTime(a.time)}){" "}
                {a.device && (
                  <button
                    type="button"
                    onClick={() =>
                      void ctx.client
                        .ackDevice(a.device!)
                        .then(() => ctx.client.save())
                        // Tell the server too (detection then trusts the device); a refusal leaves the dismissal.
                        .then(() =>
                          a.kind === "device.revoke"
                            ? undefined
                            : ctx.client.transport.ackOwnDevice(a.device!).catch(() => undefined),
                        )
                        .then(() => {
                          onAck();
                          devicesH.current?.focus();
                        })
                        .catch((e: unknown) => setError(errorText(e)))
                    }
                  >
                    {a.kind === "device.revoke" ? "Dismiss" : "This device is mine"}
                    <span className="sr-only"> ({a.device})</span>
                  </button>
                )}
              </li>
            ))}
          </ul>
          <NewDeviceButtons
            ctx={ctx}
            alerts={own.alerts}
            devices={own.devices}
            onDone={onAck}
            onResult={setDeviceResult}
          />
          <p>If you did not enrol it, revoke it and call your security officer now.</p>
        </div>
      )}
      {deviceResult && (
        <p role="status" className="audit-proof" data-testid="device-result">
          {deviceResult}
        </p>
      )}
      <h3 tabIndex={-1} ref={devicesH}>
        Your devices
      </h3>
      <p>
        {own?.verified
          ? "Checked against the witnessed directory log."
          : "As the server lists them (no log key pinned)."}
      </p>
      <table>
        <thead>
          <tr>
            <th scope="col">Device</th>
            <th scope="col">Id</th>
            <th scope="col">Enrolled</th>
            <th scope="col">State</th>
            <th scope="col">Action</th>
          </tr>
        </thead>
        <tbody>
          {(own?.devices ?? []).map((d) => (
            <tr key={d.id} className={state(d).warn ? "device-unexpected" : undefined} data-testid="own-device">
              <td>
                {d.name}
                {d.self ? " (this browser)" : ""}
              </td>
              <td>
                <code>{d.id}</code>
              </td>
              <td>{fmtTime(d.time)}</td>
              <td>{state(d).warn ? <strong>{state(d).text}</strong> : state(d).text}</td>
              <td>
                <RevokeButton ctx={ctx} device={d} onDone={onAck} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <ErrorNote error={error} />
      <h3>Notifications</h3>
      <Notifications />
      <h3>Directory log key</h3>
      <LogKeyCheck ctx={ctx} />
      <h3>Sign out</h3>
      <SignOut ctx={ctx} />
    </section>
  );
}

function Notifications() {
  const [state, setState] = useState(notificationsState());
  if (state === "unsupported") return <p>This browser cannot show notifications.</p>;
  if (state === "granted")
    return <p>On: a FLASH cable raises a notification (its reference and originator, never its text).</p>;
  if (state === "denied") return <p>Notifications are blocked for this site in the browser&apos;s settings.</p>;
  return (
    <p>
      <button type="button" onClick={() => void Notification.requestPermission().then(setState)}>
        Turn on notifications for FLASH cables
      </button>
    </p>
  );
}

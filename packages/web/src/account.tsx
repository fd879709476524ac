import { useEffect, useState } from "react";
import type { DirectoryAlert, OwnDevice } from "@valise/client";
import type { Ctx } from "./App.js";
import { ErrorNote, fmtTime } from "./ui.js";

export interface OwnState {
  devices: OwnDevice[];
  alerts: DirectoryAlert[];
  verified: boolean;
}

export function Account({ ctx, own, onAck }: { ctx: Ctx; own: OwnState | null; onAck: () => void }) {
  const [error, setError] = useState<string | null>(null);
  useEffect(() => ctx.setLabels([]), [ctx]);
  return (
    <section aria-labelledby="account-h">
      <h2 id="account-h">Account</h2>
      <p>
        <strong>{ctx.me.handle}</strong> · units {ctx.me.units.join(", ") || "none"} · clearance{" "}
        <strong>{ctx.me.clearance}</strong> · role {ctx.me.role}
      </p>
      {own && own.alerts.length > 0 && (
        <div className="kt-alert big" role="alert">
          <h3>A device you did not enrol may have been added to your account</h3>
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
                        .then(onAck)
                        .catch((e: unknown) => setError(String(e)))
                    }
                  >
                    This device is mine
                  </button>
                )}
              </li>
            ))}
          </ul>
          <p>If you did not enrol it, call your security officer now.</p>
        </div>
      )}
      <h3>Your devices</h3>
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
          </tr>
        </thead>
        <tbody>
          {(own?.devices ?? []).map((d) => (
            <tr key={d.id}>
              <td>
                {d.name}
                {d.self ? " (this browser)" : ""}
              </td>
              <td>
                <code>{d.id}</code>
              </td>
              <td>{fmtTime(d.time)}</td>
              <td>{d.revokedLogIndex !== null ? "revoked" : d.expected ? "active" : "NOT ENROLLED BY YOU?"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <ErrorNote error={error} />
    </section>
  );
}

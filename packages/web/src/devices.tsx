/**
 * Device management in the app (issues 14 and 15): approve a new device of one's own (it then gets the cable and
 * document keys this browser holds, end to end, with progress), revoke a lost one, sign out (optionally erasing this
 * browser's sealed store), and check a log key pinned on first use against the enrollment bundle.
 */
import { useRef, useState } from "react";
import type { DirectoryAlert, OwnDevice } from "@valise/client";
import type { Ctx } from "./ctx.js";
import { ModalConfirm } from "./a11y.js";
import { ErrorNote, errorText } from "./ui.js";

type Pending = { kind: "approve" | "revoke"; device: string; name: string } | null;

/**
 * Approve / revoke buttons for the devices that own-account alerts name as added (device.add). `compact`: the short
 * form in the top alert bar.
 */
export function NewDeviceButtons(props: {
  ctx: Ctx;
  alerts: DirectoryAlert[];
  devices?: OwnDevice[];
  compact?: boolean;
  onDone: () => void;
  /** The outcome, shown by the caller: the alert (and these buttons) go away once the device is approved. */
  onResult?: (text: string) => void;
}) {
  const added = props.alerts.filter((a) => a.kind === "device.add" && a.device);
  const ids = [...new Set(added.map((a) => a.device!))];
  if (ids.length === 0) return null;
  return (
    <span className={props.compact ? "device-actions compact" : "device-actions"}>
      {ids.map((id) => (
        <DeviceDecision
          key={id}
          ctx={props.ctx}
          device={id}
          name={props.devices?.find((d) => d.id === id)?.name ?? id}
          onDone={props.onDone}
          {...(props.onResult ? { onResult: props.onResult } : {})}
        />
      ))}
    </span>
  );
}

function DeviceDecision(props: {
  ctx: Ctx;
  device: string;
  name: string;
  onDone: () => void;
  onResult?: (text: string) => void;
}) {
  const [pending, setPending] = useState<Pending>(null);
  const [busy, setBusy] = useState(false);
  const [progress, setProgress] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const opener = useRef<HTMLButtonElement>(null);
  const { ctx, device, name } = props;
  const run = async () => {
    if (!pending) return;
    setBusy(true);
    setError(null);
    try {
      if (pending.kind === "approve") {
        const r = await ctx.client.approveDevice(device, (done, total) =>
          setProgress(`Sending history to ${name}: ${done} of ${total} messages`),
        );
        await ctx.client.transport.ackOwnDevice(device).catch(() => undefined);
        await ctx.client.save();
        const text = `Approved ${name}: ${r.keys} cable and document key${r.keys === 1 ? "" : "s"} sent in ${r.conversations} conversation${r.conversations === 1 ? "" : "s"}.`;
        setProgress(text);
        props.onResult?.(text);
      } else {
        // "Not mine" is a security fact for the officers (issue 16: a critical alert and an incident), told before the
        // revocation while the device is still listed as the user's; the revocation goes ahead if the report fails.
        const report = await ctx.client.transport
          .reportKt({ kind: "not_mine", subject: device, detail: `reported from the web app: ${name}` })
          .then(() => true)
          .catch(() => false);
        await ctx.client.revokeOwnDevice(device);
        const text =
          `Revoked ${name}: it can no longer log in, and it is removed from your conversations. ` +
          (report
            ? "Your security officers have been alerted."
            : "Your security officers could not be alerted from here: call them.");
        setProgress(text);
        props.onResult?.(text);
      }
      setPending(null);
      props.onDone();
    } catch (e) {
      setError(errorText(e));
      setPending(null);
    } finally {
      setBusy(false);
    }
  };
  return (
    <span className="device-decision">
      <button
        type="button"
        ref={opener}
        onClick={() => setPending({ kind: "approve", device, name })}
        data-testid="approve-device"
      >
        Approve {name}
        <span className="sr-only"> ({device})</span>
      </button>
      <button type="button" className="danger" onClick={() => setPending({ kind: "revoke", device, name })}>
        Not mine: revoke
        <span className="sr-only">
          {" "}
          {name} ({device})
        </span>
      </button>
      {progress && (
        <span role="status" className="device-progress" data-testid="device-progress">
          {progress}
        </span>
      )}
      <ErrorNote error={error} />
      {pending && (
        <ModalConfirm
          title={pending.kind === "approve" ? `Approve ${name}?` : `Revoke ${name}?`}
          onCancel={() => setPending(null)}
          busy={busy}
          returnTo={opener}
          buttons={
            <>
              <button type="button" onClick={() => void run()} disabled={busy}>
                {busy ? "Working…" : pending.kind === "approve" ? "Approve and send history" : "Revoke device"}
              </button>
              <button type="button" className="secondary" onClick={() => setPending(null)} disabled={busy}>
                Cancel
              </button>
            </>
          }
        >
          {pending.kind === "approve" ? (
            <p>
              Approve only a device you enrolled yourself. {name} (<code>{device}</code>) then receives the cable and
              document keys this browser holds, encrypted end to end to that device alone. A device you do not approve
              gets nothing sent before it joined.
            </p>
          ) : (
            <p>
              {name} (<code>{device}</code>) is revoked at once in the directory log: it can no longer log in, and every
              conversation removes it before anything new is sent. Your security officers are alerted that a device you
              did not enrol was on your account. This cannot be undone; a device enrolled again needs a new code.
            </p>
          )}
        </ModalConfirm>
      )}
    </span>
  );
}

/** A row action: revoke one of this user's other active devices (a lost phone). */
export function RevokeButton({ ctx, device, onDone }: { ctx: Ctx; device: OwnDevice; onDone: () => void }) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const opener = useRef<HTMLButtonElement>(null);
  if (device.self || device.revokedLogIndex !== null) return null;
  return (
    <>
      <button type="button" className="danger" ref={opener} onClick={() => setOpen(true)}>
        Revoke (lost device)<span className="sr-only"> {device.name}</span>
      </button>
      {result && <span role="status">{result}</span>}
      <ErrorNote error={error} />
      {open && (
        <ModalConfirm
          title={`Revoke ${device.name}?`}
          onCancel={() => setOpen(false)}
          busy={busy}
          returnTo={opener}
          buttons={
            <>
              <button
                type="button"
                disabled={busy}
                onClick={() => {
                  setBusy(true);
                  setError(null);
                  ctx.client
                    .revokeOwnDevice(device.id)
                    .then(() => {
                      setResult("Revoked.");
                      onDone();
                    })
                    .catch((e: unknown) => setError(errorText(e)))
                    .finally(() => {
                      setBusy(false);
                      setOpen(false);
                    });
                }}
              >
                {busy ? "Revoking…" : "Revoke device"}
              </button>
              <button type="button" className="secondary" onClick={() => setOpen(false)} disabled={busy}>
                Cancel
              </button>
            </>
          }
        >
          <p>
            {device.name} (<code>{device.id}</code>) is revoked at once in the directory log: it can no longer log in,
            and every conversation removes it before anything new is sent. Use this for a lost or stolen device. It
            cannot be undone.
          </p>
        </ModalConfirm>
      )}
    </>
  );
}

/** Sign out; optionally erase everything this browser keeps (sealed keys, history, drafts). */
export function SignOut({ ctx }: { ctx: Ctx }) {
  const [open, setOpen] = useState(false);
  const [wipe, setWipe] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const opener = useRef<HTMLButtonElement>(null);
  return (
    <div className="signout">
      <button type="button" className="secondary" ref={opener} onClick={() => setOpen(true)}>
        Sign out…
      </button>
      <ErrorNote error={error} />
      {open && (
        <ModalConfirm
          title="Sign out of this browser?"
          onCancel={() => setOpen(false)}
          busy={busy}
          returnTo={opener}
          buttons={
            <>
              <button
                type="button"
                disabled={busy}
                onClick={() => {
                  setBusy(true);
                  ctx.signOut(wipe).catch((e: unknown) => {
                    setError(errorText(e));
                    setBusy(false);
                    setOpen(false);
                  });
                }}
              >
                {busy ? "Signing out…" : wipe ? "Sign out and erase" : "Sign out"}
              </button>
              <button type="button" className="secondary" onClick={() => setOpen(false)} disabled={busy}>
                Cancel
              </button>
            </>
          }
        >
          <p>Signing out ends this session: your passkey is needed to log in again.</p>
          <label className="check">
            <input type="checkbox" checked={wipe} onChange={(e) => setWipe(e.target.checked)} />
            Also erase this browser&apos;s keys, history and drafts (a shared or public computer). You will need a new
            enrollment code to use Valise here again, and messages received only here are lost.
          </label>
        </ModalConfirm>
      )}
    </div>
  );
}

/** A log key pinned on first use, and a way to check it against the enrollment bundle. */
export function LogKeyCheck({ ctx }: { ctx: Ctx }) {
  const trust = ctx.client.trustAnchors;
  const [input, setInput] = useState("");
  const [result, setResult] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [, rerender] = useState(0);
  if (!trust) return <p>This browser pins no directory log key: the server&apos;s directory answers are trusted.</p>;
  return (
    <div className="logkey" data-testid="log-key">
      <p>
        Directory log key: <code>{trust.logKey}</code>
        {trust.firstUse ? (
          <strong> — pinned on first use (from the server at enrollment, not from your bundle).</strong>
        ) : (
          " — pinned from your enrollment bundle."
        )}
      </p>
      {trust.firstUse && (
        <form
          className="inline-form"
          aria-label="Check the log key"
          onSubmit={(e) => {
            e.preventDefault();
            setResult(null);
            setError(null);
            let key = input.trim();
            try {
              if (key.startsWith("{")) {
                const k = (JSON.parse(key) as { logKey?: unknown }).logKey;
                key = typeof k === "string" ? k : "";
              }
            } catch {
              return setError("That bundle is cut off: paste all of it, from the first { to the last }.");
            }
            ctx.client
              .confirmLogKey(key)
              .then(() => {
                setResult("The key matches your bundle: it is now pinned as your administrator's.");
                rerender((n) => n + 1);
              })
              .catch((err: unknown) => setError(errorText(err)));
          }}
        >
          <label>
            Your enrollment bundle (or its logKey)
            <textarea rows={2} value={input} onChange={(e) => setInput(e.target.value)} required />
          </label>
          <button type="submit">Check the key</button>
        </form>
      )}
      {result && (
        <p role="status" className="audit-proof">
          {result}
        </p>
      )}
      <ErrorNote error={error} />
    </div>
  );
}

import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import type { ValiseClient, ReceivedItem, ServerUser, MinimalWebSocket } from "@valise/client";
import { STORE_OUTAGE_NOTICE } from "@valise/client";
import { describeStaleness } from "@valise/core";
import {
  enrollDevice,
  finishPasskey,
  forget,
  login,
  openExisting,
  ownProfile,
  passkeyPending,
  wipeBrowser,
} from "./session.js";
import { History, type Msg } from "./history.js";
import { Banner, ErrorNote, enrollErrorText, errorText, fmtTime } from "./ui.js";
import { highest } from "./labels.js";
import { CableCompose, CableInbox } from "./cables.js";
import { Conversations } from "./conversations.js";
import { DocumentsScreen } from "./documents.js";
import { Account, type OwnState } from "./account.js";
import { Officer } from "./officer.js";
import { IncidentsScreen } from "./incidents.js";
import { OfficersOnly, useFocusOnChange } from "./a11y.js";
import { NewDeviceButtons } from "./devices.js";
import { notifyFlash, useUrgentTitle } from "./notify.js";
import { SearchBox, SearchScreen, deviceHistory, forgetDeviceHistory, saveSoon } from "./search.js";
import type { HistoryStore } from "@valise/client";

export type { Ctx } from "./ctx.js";
import type { Ctx } from "./ctx.js";

function useHashRoute(): string {
  const [h, setH] = useState(location.hash.slice(1) || "/cables");
  useEffect(() => {
    const on = () => setH(location.hash.slice(1) || "/cables");
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return h;
}

export function App() {
  const [phase, setPhase] = useState<"loading" | "enroll" | "passkey" | "login" | "ready">("loading");
  const [client, setClient] = useState<ValiseClient | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [otherTab, setOtherTab] = useState(false);
  const [outage, setOutage] = useState(false);
  /** Said after a sign-out that could not reach the server (its session was not ended there). */
  const [signOutNote, setSignOutNote] = useState<string | null>(null);
  useEffect(() => {
    ownProfile(() => setOtherTab(true))
      .then(() => openExisting())
      .then((c) => {
        setClient(c);
        setPhase(!c ? "enroll" : passkeyPending() ? "passkey" : "login");
      })
      .catch((e: unknown) => {
        setError(errorText(e));
        setPhase("enroll");
      });
  }, []);
  // While the server answers 503 or cannot be reached, the SDK retries reads and idempotent writes: say so.
  useEffect(() => {
    if (!client) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    client.transport.onRetry = () => {
      setOutage(true);
      clearTimeout(timer);
      timer = setTimeout(() => setOutage(false), 8000);
    };
    return () => {
      client.transport.onRetry = null;
      clearTimeout(timer);
    };
  }, [client]);
  if (phase === "loading")
    return (
      <Shell label="UNCLASSIFIED">
        {otherTab
          ? "Valise is open in another tab of this browser. Use that tab; this one continues when it is closed."
          : "Loading…"}
      </Shell>
    );
  if (phase === "enroll")
    return (
      <Shell label="UNCLASSIFIED">
        <Enroll
          onDone={(c) => {
            setClient(c);
            setPhase("ready");
          }}
          onNoPasskey={(c, err) => {
            setClient(c);
            setError(err);
            setPhase("passkey");
          }}
        />
        <SignOutNote note={signOutNote} />
        <ErrorNote error={error} />
      </Shell>
    );
  if (phase === "passkey" && client)
    return (
      <Shell label="UNCLASSIFIED">
        <FinishSetup
          client={client}
          firstError={error}
          onDone={() => {
            setError(null);
            setPhase("ready");
          }}
          onForget={() => {
            setError(null);
            setClient(null);
            setPhase("enroll");
          }}
        />
      </Shell>
    );
  if (phase === "login" && client)
    return (
      <Shell label="UNCLASSIFIED">
        <SignOutNote note={signOutNote} />
        <Login
          client={client}
          onDone={() => {
            setSignOutNote(null);
            setPhase("ready");
          }}
          onForget={() => setPhase("enroll")}
        />
      </Shell>
    );
  return client ? (
    <>
      {outage && (
        <div className="outage-note" role="status">
          {STORE_OUTAGE_NOTICE}
        </div>
      )}
      <Main
        client={client}
        onSignOut={(wiped, note) => {
          document.title = "Valise";
          setSignOutNote(note);
          if (wiped) {
            setClient(null);
            setPhase("enroll");
          } else setPhase("login");
        }}
      />
    </>
  ) : null;
}

function Shell(props: { label: string; children: ReactNode }) {
  return (
    <div className="shell">
      <Banner label={props.label} position="top" />
      <main id="main" className="content narrow">
        <h1 className="brand">Valise</h1>
        {props.children}
      </main>
      <Banner label={props.label} position="bottom" />
    </div>
  );
}

const errText = errorText;

function Enroll(props: { onDone: (c: ValiseClient) => void; onNoPasskey: (c: ValiseClient, error: string) => void }) {
  const [code, setCode] = useState("");
  const [name, setName] = useState("browser");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  useFocusIfLost(heading);
  return (
    <form
      className="card"
      onSubmit={(e) => {
        e.preventDefault();
        if (code.trim() === "") return setError("Paste your enrollment code or bundle first: the box above is empty.");
        if (name.trim() === "") return setError("Give this device a name (for example: office laptop).");
        setBusy(true);
        setError(null);
        enrollDevice(code, name)
          .then((c) =>
            finishPasskey(c).then(
              () => props.onDone(c),
              (err: unknown) => props.onNoPasskey(c, errText(err)),
            ),
          )
          .catch((err: unknown) => {
            setError(enrollErrorText(err));
            setBusy(false);
          });
      }}
    >
      <h2 tabIndex={-1} ref={heading}>
        Enroll this browser
      </h2>
      <p>
        Paste the one-time enrollment code (or the whole enrollment bundle) you were given. This browser becomes one of
        your devices, and you create a passkey for it. There are no passwords.
      </p>
      <label htmlFor="code">Enrollment code or bundle</label>
      <textarea
        id="code"
        name="code"
        rows={3}
        value={code}
        onChange={(e) => {
          setCode(e.target.value);
          setError(null);
        }}
        aria-describedby="code-help"
      />
      <p id="code-help" className="hint" data-testid="code-help">
        {code.trim() === ""
          ? "Paste what your administrator gave you: the whole enrollment bundle (it starts with {) is best."
          : code.trim().startsWith("{")
            ? "An enrollment bundle: this browser pins the directory log key and witnesses it names, and checks the server against them before enrolling."
            : "Only a code, without its bundle: the directory log key is not pinned from your administrator. This browser will pin the key the server shows now (first use) and tell you so. To pin the right key, paste the whole bundle instead; or, after enrolling, check the key under Account against the bundle."}
      </p>
      <label htmlFor="device-name">Device name</label>
      <input id="device-name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={64} />
      <button type="submit" disabled={busy}>
        {busy ? "Enrolling…" : "Enroll and create passkey"}
      </button>
      <ErrorNote error={error} />
    </form>
  );
}

/**
 * The device is enrolled but has no passkey (the browser prompt was cancelled or failed, maybe before a reload):
 * nothing else is reachable until the passkey exists.
 */
function FinishSetup(props: {
  client: ValiseClient;
  firstError: string | null;
  onDone: () => void;
  onForget: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(props.firstError);
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <div className="card setup-pending" role="region" aria-labelledby="setup-h">
      <h2 id="setup-h" tabIndex={-1} ref={heading}>
        Finish setting up: create your passkey
      </h2>
      <p>
        This browser is enrolled as a device of <strong>{props.client.handle}</strong>, but its passkey was not created:
        the browser&apos;s passkey prompt was cancelled, timed out or failed. Until the passkey exists this browser
        shows nothing and sends nothing, and you cannot log in with it.
      </p>
      <p>
        Select <strong>Retry: create passkey</strong> and confirm in your browser&apos;s prompt (fingerprint, face, PIN
        or security key). The server accepts the passkey only within 15 minutes of the enrollment; after that, forget
        this browser and ask your administrator for a new enrollment code.
      </p>
      <button
        type="button"
        disabled={busy}
        onClick={() => {
          setBusy(true);
          setError(null);
          finishPasskey(props.client)
            .then(props.onDone)
            .catch((e: unknown) => {
              setError(errText(e));
              setBusy(false);
            });
        }}
      >
        {busy ? "Waiting for passkey…" : "Retry: create passkey"}
      </button>
      <ErrorNote error={error ? `Passkey not created: ${error}` : null} />
      <details>
        <summary>Start over</summary>
        <button
          type="button"
          className="secondary"
          onClick={() => {
            if (confirm("Forget this browser's device? You will need a new enrollment code."))
              void forget().then(props.onForget);
          }}
        >
          Forget this browser
        </button>
      </details>
    </div>
  );
}

/**
 * On a screen that replaces the whole app (after a sign-out), focus would be left on the page itself: it goes to the
 * screen's heading instead, so the next Tab reaches its first control and a screen reader says where the user is.
 */
function useFocusIfLost(ref: { current: HTMLElement | null }): void {
  useEffect(() => {
    const a = document.activeElement;
    if (a === null || a === document.body) ref.current?.focus();
  }, [ref]);
}

function Login(props: { client: ValiseClient; onDone: () => void; onForget: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  useFocusIfLost(heading);
  return (
    <div className="card">
      <h2 tabIndex={-1} ref={heading}>
        Log in
      </h2>
      <p>
        This browser is enrolled as <strong>{props.client.handle}</strong>. Log in with your passkey.
      </p>
      <button
        type="button"
        disabled={busy}
        onClick={() => {
          setBusy(true);
          setError(null);
          login(props.client)
            .then(props.onDone)
            .catch((e: unknown) => setError(errorText(e)))
            .finally(() => setBusy(false));
        }}
      >
        {busy ? "Waiting for passkey…" : "Log in with passkey"}
      </button>
      <details>
        <summary>Not you?</summary>
        <button
          type="button"
          className="secondary"
          onClick={() => {
            if (confirm("Forget this browser's device and its history?")) void forget().then(props.onForget);
          }}
        >
          Forget this browser
        </button>
      </details>
      <ErrorNote error={error} />
    </div>
  );
}

const wsFactory = (url: string) => new WebSocket(url) as unknown as MinimalWebSocket;

/** How often a listening browser reads the directory log for changes to its own account (nothing is pushed). */
const MONITOR_MS = 15_000;

/**
 * A sign-out whose logout request did not reach the server: this browser is signed out, but the server session
 * stays valid until it expires (said with its time), unless the user signs in and out again once the server is back.
 */
export function signOutNoteText(r: { serverEnded: boolean; expiresAt: number | null }, wiped: boolean): string | null {
  if (r.serverEnded) return null;
  const when = r.expiresAt ? ` at ${fmtTime(r.expiresAt)}` : "";
  return (
    `Signed out on this device${wiped ? ", and its keys and history are erased" : ""}. The server could not be ` +
    `reached, so the session there was not ended: it stays valid until it expires${when}` +
    (wiped
      ? ". If this computer may be compromised, tell your security officer."
      : ". To end it sooner, log in again once the server is back and sign out.")
  );
}

function SignOutNote({ note }: { note: string | null }) {
  if (!note) return null;
  return (
    <div className="kt-alert" role="alert" data-testid="signout-note">
      <strong>Server session not ended.</strong> {note}
    </div>
  );
}

function Main({
  client,
  onSignOut,
}: {
  client: ValiseClient;
  onSignOut: (wiped: boolean, note: string | null) => void;
}) {
  const route = useHashRoute();
  const [me, setMe] = useState<ServerUser | null>(null);
  const [history, setHistory] = useState<History | null>(null);
  const [store, setStore] = useState<HistoryStore | null>(null);
  const [tick, setTick] = useState(0);
  const [labels, setLabels] = useState<string[]>([]);
  const [own, setOwn] = useState<OwnState | null>(null);
  /** The directory log's accepted checkpoint is stale (issue 13): said, not fatal (sends go on). */
  const [logStale, setLogStale] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  /** Membership monitoring: directory changes to this user's units and peers, newest last (this page session). */
  const [notices, setNotices] = useState<{ key: string; text: string; time: string }[]>([]);
  const refresh = useCallback(() => setTick((t) => t + 1), []);
  const histRef = useRef<History | null>(null);
  const storeRef = useRef<HistoryStore | null>(null);
  /** How much of the device history (append-only) the screens' message list holds (see history.ts). */
  const importedRef = useRef(0);
  const mainRef = useRef<HTMLElement>(null);

  const onItems = useCallback(
    (items: ReceivedItem[]) => {
      const h = histRef.current;
      if (!h) return;
      const msgs: Msg[] = [];
      const news = items
        .filter((it) => it.type === "directory")
        .map((it) => ({ key: `${it.seq}`, text: it.text, time: it.time }));
      if (news.length > 0) setNotices((n) => [...n, ...news].slice(-5));
      for (const it of items)
        if (it.type === "message" || it.type === "joined" || it.type === "document")
          msgs.push({
            conversation: it.conversation,
            seq: it.seq,
            from: it.from,
            text: it.type === "document" ? `Shared document: ${it.text}` : it.text,
            label: it.label,
            time: it.time,
            kind: it.type,
          });
      // The search index: messages, document shares and cables as they arrive (sealed, saved shortly).
      const st = storeRef.current;
      if (st && st.record(items) > 0) saveSoon(st);
      void h
        .add(msgs)
        // What the device history holds and the list lacks: a history another device of this user sent it.
        .then(async () => {
          if (st) importedRef.current = await h.importFrom(st, importedRef.current);
        })
        .then(refresh);
    },
    [refresh],
  );

  useEffect(() => {
    let closed = false;
    let sub: { close(): void } | null = null;
    (async () => {
      const m = await client.transport.me();
      const h = await History.open(client.handle);
      const st = await deviceHistory(client.handle);
      histRef.current = h;
      storeRef.current = st;
      setMe(m);
      setHistory(h);
      setStore(st);
      // The search index is built in slices now, so the first search does not wait for it (nor freeze the page).
      void st.prepareIndex();
      onItems(await client.sync());
      await client.save();
      if (closed) return;
      sub = await client.listen(
        wsFactory,
        (items) => {
          onItems(items);
          notifyFlash(items, client.handle);
          void client.save();
        },
        // Officers' sessions also get detection alerts pushed: officer screens reload (others get no such frames).
        { monitorMs: MONITOR_MS, onAlert: () => refresh() },
      );
    })().catch((e: unknown) => setError(errorText(e)));
    return () => {
      closed = true;
      sub?.close();
    };
  }, [client, onItems, refresh]);

  // Own devices and key-transparency alerts: after every sync that brought something, and on every navigation.
  useEffect(() => {
    client
      .ownDevices()
      .then((o) => {
        setOwn({ devices: o.devices, alerts: o.alerts.filter((a) => !a.acked), verified: o.verified });
        const f = client.transparency?.freshness();
        setLogStale(f?.stale ? describeStaleness("directory log", f) : null);
      })
      .catch(() => undefined);
  }, [client, tick, route]);

  // Receipts from other members' devices (pushed like any message): the thread shows the new state at once.
  useEffect(() => {
    client.receipts.onReceipts = () => refresh();
    return () => {
      client.receipts.onReceipts = null;
    };
  }, [client, refresh]);

  useUrgentTitle(client, history, tick);

  // After a route change, focus goes to the main region (the next Tab reaches the new screen's first control).
  useFocusOnChange(mainRef, route);

  const signOut = useCallback(
    async (wipe: boolean) => {
      const r = await client.signOut();
      if (wipe) {
        // Nothing this client still has in flight (a sync, a push, a directory check) may write the profile back.
        client.close();
        await wipeBrowser();
        forgetDeviceHistory();
      }
      onSignOut(wipe, signOutNoteText(r, wipe));
    },
    [client, onSignOut],
  );
  const ctx = useMemo<Ctx | null>(
    () => (me && history && store ? { client, me, history, store, tick, refresh, setLabels, signOut } : null),
    [client, me, history, store, tick, refresh, signOut],
  );
  const bannerLabel = highest(labels);
  if (!ctx) return <Shell label="UNCLASSIFIED">{error ? <ErrorNote error={error} /> : "Loading your device…"}</Shell>;

  const officer = me?.role === "officer" || me?.role === "admin";
  let screen: ReactNode;
  const [path = "", query = ""] = route.split("?");
  const [, first, second] = path.split("/");
  if (first === "cables" && second === "new") screen = <CableCompose ctx={ctx} query={query} key={query} />;
  else if (first === "cables" && second) screen = <CableInbox ctx={ctx} selected={decodeURIComponent(second)} />;
  else if (first === "conversations")
    screen = <Conversations ctx={ctx} selected={second ? decodeURIComponent(second) : null} />;
  else if (first === "documents")
    screen = <DocumentsScreen ctx={ctx} open={new URLSearchParams(query).get("open") ?? ""} />;
  else if (first === "search") {
    const p = new URLSearchParams(query);
    screen = <SearchScreen ctx={ctx} query={p.get("q") ?? ""} kind={p.get("kind") ?? ""} />;
  } else if (first === "account") screen = <Account ctx={ctx} own={own} onAck={refresh} />;
  else if (first === "officer") screen = officer ? <Officer ctx={ctx} /> : <OfficersOnly ctx={ctx} what="Officer" />;
  else if (first === "incidents")
    screen = officer ? (
      <IncidentsScreen ctx={ctx} id={second ? decodeURIComponent(second) : null} />
    ) : (
      <OfficersOnly ctx={ctx} what="Incidents" />
    );
  else screen = <CableInbox ctx={ctx} />;
  const unreadConv = history?.unreadTotal() ?? 0;
  const newDevices = (own?.alerts ?? []).filter((a) => a.kind === "device.add").length;
  return (
    <div className="shell">
      <a
        className="skip"
        href="#main"
        onClick={(e) => {
          // The app routes on the hash: "#main" would be a route. Move focus instead.
          e.preventDefault();
          mainRef.current?.focus();
        }}
      >
        Skip to main content
      </a>
      <div className="top-stack">
        <Banner label={bannerLabel} position="top" />
        {own && own.alerts.length > 0 && (
          <div className="kt-alert" role="alert" data-testid="kt-alert">
            <strong>
              Security alert:{" "}
              {newDevices > 0
                ? `${newDevices === 1 ? "a device" : `${newDevices} devices`} you did not enrol in this browser ${newDevices === 1 ? "was" : "were"} added to your account.`
                : own.alerts.some((a) => a.kind === "directory.mismatch")
                  ? "the server's directory disagrees with the witnessed log (your security officers are told)."
                  : "your account changed in the directory."}
            </strong>{" "}
            <span className="kt-detail">{own.alerts.map((a) => a.text).join(" · ")} </span>
            {first !== "account" && <a href="#/account">Review your devices now</a>}
            {first !== "account" && ctx && (
              <NewDeviceButtons
                ctx={ctx}
                alerts={own.alerts}
                compact
                onDone={refresh}
                onResult={(text) =>
                  setNotices((n) =>
                    [...n, { key: `device-${Date.now()}`, text, time: new Date().toISOString() }].slice(-5),
                  )
                }
              />
            )}
          </div>
        )}
        {logStale && (
          <div className="kt-alert" role="alert" data-testid="kt-stale">
            <strong>Directory log out of date:</strong> {logStale}. Revocations and clearance changes made since may not
            be known to this browser yet.
          </div>
        )}
        {notices.length > 0 && (
          <div className="dir-notice" role="status" data-testid="directory-notice">
            <strong>Directory:</strong> {notices.map((n) => n.text).join(" · ")}{" "}
            <button type="button" onClick={() => setNotices([])}>
              Dismiss
            </button>
          </div>
        )}
      </div>
      <header className="topbar">
        <span className="brand">Valise</span>
        <nav aria-label="Main">
          <a href="#/cables" aria-current={first === "cables" ? "page" : undefined}>
            Cables
          </a>
          <a href="#/conversations" aria-current={first === "conversations" ? "page" : undefined}>
            Conversations{unreadConv > 0 ? ` (${unreadConv})` : ""}
          </a>
          <a href="#/documents" aria-current={first === "documents" ? "page" : undefined}>
            Documents
          </a>
          <a href="#/account" aria-current={first === "account" ? "page" : undefined}>
            Account{own && own.alerts.length > 0 ? " (alert)" : ""}
          </a>
          {officer && (
            <a href="#/officer" aria-current={first === "officer" ? "page" : undefined}>
              Officer
            </a>
          )}
          {officer && (
            <a href="#/incidents" aria-current={first === "incidents" ? "page" : undefined}>
              Incidents
            </a>
          )}
        </nav>
        <SearchBox initial={first === "search" ? (new URLSearchParams(query).get("q") ?? "") : ""} />
        <span className="who">
          {me?.handle} · {me?.units.join(", ")} · cleared {me?.clearance}
        </span>
      </header>
      <main id="main" className="content" tabIndex={-1} ref={mainRef}>
        {screen}
      </main>
      <Banner label={bannerLabel} position="bottom" />
    </div>
  );
}

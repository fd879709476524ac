/**
 * HTTP transport to a Valise server, on `fetch` (browser and Node alike). Every method maps one endpoint of the wire
 * contract (@valise/core/wire); errors come back as ValiseError with the server's stable `code`. Responses are
 * server-controlled data: every JSON answer is checked against its schema in the contract (shared with the server)
 * and a malformed one is a `protocol_error` naming the endpoint and the field; notes, tiles and blobs are checked
 * cryptographically by the callers (transparency.ts, audit.ts, documents).
 *
 * The methods live in areas (transport/*.ts), each a small class over the one request core (transport/core.ts:
 * auth header, retries, error mapping, answer checking). `HttpTransport` is the composed front: one request core
 * with every area's methods under their names, so `transport.releaseCable(…)` keeps working; `transport.areas`
 * holds the areas themselves.
 */
import { AuditApi } from "./transport/audit.js";
import { AuthApi } from "./transport/auth.js";
import { CablesApi } from "./transport/cables.js";
import { ConversationsApi } from "./transport/conversations.js";
import { RequestCore } from "./transport/core.js";
import { DirectoryApi } from "./transport/directory.js";
import { DocumentsApi } from "./transport/documents.js";
import { IncidentsApi } from "./transport/incidents.js";
import { StaffApi } from "./transport/staff.js";

export * from "./transport/types.js";
export {
  DEFAULT_RETRY,
  RequestCore,
  STORE_OUTAGE_NOTICE,
  VALISE_CLIENT,
  type RequestOptions,
  type RetryNotice,
  type RetryPolicy,
} from "./transport/core.js";
export { tileIndexPath } from "./transport/directory.js";
export { AuditApi, AuthApi, CablesApi, ConversationsApi, DirectoryApi, DocumentsApi, IncidentsApi, StaffApi };

/** The areas, by name: each a class over the request core. */
const AREAS = {
  auth: AuthApi,
  directory: DirectoryApi,
  conversations: ConversationsApi,
  documents: DocumentsApi,
  cables: CablesApi,
  staff: StaffApi,
  audit: AuditApi,
  incidents: IncidentsApi,
} as const;
type Areas = { readonly [K in keyof typeof AREAS]: InstanceType<(typeof AREAS)[K]> };
/** An area's public methods (its `http` is the shared core, not part of the front). */
type Methods<T> = { [K in keyof T]: T[K] };

// The front has every area's methods (installed on the prototype below): the interface tells the compiler so.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface HttpTransport
  extends
    Methods<AuthApi>,
    Methods<DirectoryApi>,
    Methods<ConversationsApi>,
    Methods<DocumentsApi>,
    Methods<CablesApi>,
    Methods<StaffApi>,
    Methods<AuditApi>,
    Methods<IncidentsApi> {}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class HttpTransport extends RequestCore {
  /** The areas over this transport's request core (the same methods as on the front, grouped). */
  readonly areas: Areas;
  constructor(baseUrl: string, fetchImpl?: typeof fetch) {
    super(baseUrl, fetchImpl);
    this.areas = Object.fromEntries(Object.entries(AREAS).map(([k, A]) => [k, new A(this)])) as unknown as Areas;
  }
}

// Each area method becomes a front method calling the instance's area; two areas may not name the same method.
for (const [area, A] of Object.entries(AREAS)) {
  for (const name of Object.getOwnPropertyNames(A.prototype)) {
    if (name === "constructor") continue;
    if (Object.hasOwn(HttpTransport.prototype, name) || name in RequestCore.prototype)
      throw new Error(`transport: ${area}.${name} is defined twice`);
    Object.defineProperty(HttpTransport.prototype, name, {
      configurable: true,
      writable: true,
      value: function (this: HttpTransport, ...args: unknown[]): unknown {
        const target = this.areas[area as keyof Areas] as unknown as Record<string, (...a: unknown[]) => unknown>;
        return target[name]!(...args);
      },
    });
  }
}

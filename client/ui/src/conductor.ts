// The dashboard's one connection: the conductor's app websocket, opened with a token and a
// zome-call capability the node's sidecar issues for this page (POST /ui/session). Every read of
// the DHT goes to the conductor directly; the sidecar is asked only for what the DHT does not hold
// (its liveness verdicts, registry.ts).
import {
  AppWebsocket,
  CellType,
  SignalType,
  encodeHashToBase64,
  generateSigningKeyPair,
  setSigningCredentials,
  type AgentPubKey,
  type AppInfo,
  type CellId,
} from "@holochain/client";

/** What the sidecar answers to POST /ui/session. */
interface UiSession {
  /** ws://127.0.0.1:PORT, the conductor's app interface. */
  app_url: string;
  /** Single-use app authentication token. */
  token: number[];
  /** Base64 of the 64-byte cap secret granted to this page's signing key. */
  cap_secret: string;
  /** The node's name, for the title. */
  node_name: string;
}

export type RoleName = "agent_registry" | "resource_mesh" | "policy_store" | "artifact_index" | "memory_shards";

export interface ZomeSignal {
  role: RoleName;
  zome: string;
  payload: unknown;
}

export class Conductor {
  private constructor(
    private readonly ws: AppWebsocket,
    readonly me: AgentPubKey,
    readonly nodeName: string,
    private readonly roles: Map<string, RoleName>,
    /** Served by this node's sidecar (its `/ui/`), which can be asked for its verdicts. */
    readonly servedBySidecar: boolean,
  ) {}

  static async open(): Promise<Conductor> {
    // In a Holochain launcher (ripple.webhapp) the launcher provides the port, token and signer.
    if ("__HC_LAUNCHER_ENV__" in window) {
      const ws = await AppWebsocket.connect();
      return new Conductor(ws, ws.myPubKey, "this node", rolesOf(ws.cachedAppInfo), false);
    }
    const [keyPair, signingKey] = await generateSigningKeyPair();
    const response = await fetch("/ui/session", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ signing_key: encodeHashToBase64(signingKey) }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(`the node refused a dashboard session (${response.status}): ${body.error ?? "no reason given"}`);
    }
    const session = body as UiSession;
    const ws = await AppWebsocket.connect({ url: new URL(session.app_url), token: session.token });
    const capSecret = base64Bytes(session.cap_secret);
    for (const [, cellId] of provisionedCells(ws.cachedAppInfo)) {
      setSigningCredentials(cellId, { capSecret, keyPair, signingKey });
    }
    return new Conductor(ws, ws.myPubKey, session.node_name, rolesOf(ws.cachedAppInfo), true);
  }

  call<T>(role: RoleName, zome: string, fn: string, payload: unknown = null): Promise<T> {
    return this.ws.callZome<T>({ role_name: role, zome_name: zome, fn_name: fn, payload });
  }

  /**
   * Calls `handler` once things settle (`wait` ms without another) after this node commits through
   * any zome of `role`: the coordinators' `committed` signal (zomes/shared/changes).
   */
  onCommit(role: RoleName, handler: () => void, wait = 300): () => void {
    let timer: number | undefined;
    const off = this.onSignal((signal) => {
      if (signal.role !== role || (signal.payload as { type?: string } | null)?.type !== "committed") return;
      window.clearTimeout(timer);
      timer = window.setTimeout(handler, wait);
    });
    return () => {
      off();
      window.clearTimeout(timer);
    };
  }

  /** App signals from this node's cells (its own writes, and peers' remote signals re-emitted). */
  onSignal(handler: (signal: ZomeSignal) => void): () => void {
    return this.ws.on("signal", (signal) => {
      if (signal.type !== SignalType.App) return;
      const role = this.roles.get(encodeHashToBase64(signal.value.cell_id[0]));
      if (role) handler({ role, zome: signal.value.zome_name, payload: signal.value.payload });
    });
  }
}

function* provisionedCells(info: AppInfo | null | undefined): Generator<[RoleName, CellId]> {
  for (const [role, cells] of Object.entries(info?.cell_info ?? {})) {
    for (const cell of cells) {
      if (cell.type === CellType.Provisioned) yield [role as RoleName, cell.value.cell_id];
    }
  }
}

/** DNA hash (base64) → role, to tell which cell a signal came from. */
function rolesOf(info: AppInfo | null | undefined): Map<string, RoleName> {
  return new Map([...provisionedCells(info)].map(([role, cellId]) => [encodeHashToBase64(cellId[0]), role]));
}

function base64Bytes(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

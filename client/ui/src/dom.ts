// A few DOM helpers: the dashboard has no framework, so pages build their nodes with `h`.
import { encodeHashToBase64 } from "@holochain/client";

type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | ((e: Event) => void)> = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === "function") el.addEventListener(name.replace(/^on/, ""), value);
    else if (value === true) el.setAttribute(name, "");
    else if (value !== false) el.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function table(headers: string[], rows: Child[][], testId: string): HTMLTableElement {
  return h(
    "table",
    { "data-testid": testId },
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell) => h("td", {}, cell))))),
  );
}

/** "12 s ago" for a timestamp in microseconds. */
export function ago(micros: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - micros / 1000) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

export function errorBox(what: string, e: unknown): HTMLElement {
  const message = e instanceof Error ? e.message : typeof e === "string" ? e : JSON.stringify(e);
  return h("p", { class: "error", role: "alert" }, `${what}: ${message}`);
}

/** The first characters of a base64 hash or key, enough to tell them apart on a page. */
export function short(hash: Uint8Array): string {
  return `${encodeHashToBase64(hash).slice(0, 12)}…`;
}

/** A timestamp in microseconds as local date and time. */
export function when(micros: number): string {
  return new Date(micros / 1000).toLocaleString();
}

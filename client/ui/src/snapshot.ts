// Pages that show one DNA's state as read when the page opens, and read it again after each commit
// this node makes through that DNA (the coordinators' `committed` signal) or on Reload.
import { coalesced } from "./coalesce";
import type { Conductor, RoleName } from "./conductor";
import { errorBox, h } from "./dom";

export async function snapshotPage(
  conductor: Conductor,
  root: HTMLElement,
  title: string,
  role: RoleName,
  read: () => Promise<Node[]>,
): Promise<() => void> {
  const body = h("div", { "data-testid": `${role}-snapshot` });
  const status = h("span", { class: "muted" });
  const refresh = coalesced(async () => {
    try {
      body.replaceChildren(...(await read()));
      status.textContent = `read ${new Date().toLocaleTimeString()}; read again after each commit of this node`;
    } catch (e) {
      body.replaceChildren(errorBox(`reading ${title.toLowerCase()} failed`, e));
    }
  });
  const reload = h("button", { type: "button", onclick: () => void refresh() }, "Reload");
  root.replaceChildren(h("h2", {}, title), h("p", { class: "toolbar" }, reload, " ", status), body);
  const off = conductor.onCommit(role, () => void refresh());
  await refresh();
  return off;
}

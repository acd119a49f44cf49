// Pages that show one DNA's state as read when the page opens, and read it again after each commit
// this node makes through that DNA (the coordinators' `committed` signal) or on Reload.
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
  let reading = false;
  let again = false;
  const refresh = async () => {
    if (reading) {
      again = true; // one more read once this one is done, not one per signal
      return;
    }
    reading = true;
    try {
      body.replaceChildren(...(await read()));
      status.textContent = `read ${new Date().toLocaleTimeString()}; read again after each commit of this node`;
    } catch (e) {
      body.replaceChildren(errorBox(`reading ${title.toLowerCase()} failed`, e));
    } finally {
      reading = false;
      if (again) {
        again = false;
        void refresh();
      }
    }
  };
  const reload = h("button", { type: "button", onclick: () => void refresh() }, "Reload");
  root.replaceChildren(h("h2", {}, title), h("p", { class: "toolbar" }, reload, " ", status), body);
  const off = conductor.onCommit(role, () => void refresh());
  await refresh();
  return off;
}

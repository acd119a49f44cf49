// The dashboard: one conductor connection, a page per hash route.
import { Conductor } from "./conductor";
import { errorBox, h } from "./dom";
import { allocationsPage } from "./pages/allocations";
import { artifactsPage } from "./pages/artifacts";
import { meshPage } from "./pages/mesh";
import { nodePage } from "./pages/node";
import { policiesPage } from "./pages/policies";
import { shardsPage } from "./pages/shards";
import "./style.css";

type Page = (conductor: Conductor, root: HTMLElement) => Promise<() => void>;

const PAGES: Record<string, [string, Page]> = {
  mesh: ["Mesh", meshPage],
  node: ["Node", nodePage],
  allocations: ["Allocations", allocationsPage],
  artifacts: ["Artifacts", artifactsPage],
  policies: ["Policies", policiesPage],
  shards: ["Shard map", shardsPage],
};

async function start(): Promise<void> {
  const root = document.getElementById("app")!;
  const nav = document.getElementById("nav")!;
  let conductor: Conductor;
  try {
    conductor = await Conductor.open();
  } catch (e) {
    root.replaceChildren(errorBox("could not connect to this node's conductor", e));
    return;
  }
  document.title = `Ripple mesh — ${conductor.nodeName}`;
  nav.replaceChildren(...Object.entries(PAGES).map(([route, [label]]) => h("a", { href: `#/${route}` }, label)));
  let leave: (() => void) | undefined;
  const show = async () => {
    const route = location.hash.replace(/^#\//, "") || "mesh";
    const [, page] = PAGES[route] ?? PAGES.mesh;
    leave?.();
    leave = undefined;
    for (const link of nav.querySelectorAll("a")) link.classList.toggle("active", link.getAttribute("href") === `#/${route}`);
    try {
      leave = await page(conductor, root);
    } catch (e) {
      root.replaceChildren(errorBox(`the ${route} page failed`, e));
    }
  };
  window.addEventListener("hashchange", () => void show());
  await show();
}

void start();

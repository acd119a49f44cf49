// Node: this node's advert as the DHT holds it, its heartbeats as they are written (signals), and
// the sidecar's diagnostics (GET /status on the same origin).
import { encodeHashToBase64 } from "@holochain/client";

import type { Conductor } from "../conductor";
import { ago, errorBox, h, table } from "../dom";
import { gpus, type AdvertRecord, type HeartbeatSeen, type RegistrySignal } from "../registry";

const BEATS_SHOWN = 20;

export async function nodePage(conductor: Conductor, root: HTMLElement): Promise<() => void> {
  const advertBox = h("div", { "data-testid": "advert" });
  const beatsBox = h("div", { "data-testid": "heartbeats" });
  const diagnostics = h("pre", { "data-testid": "diagnostics" });
  root.replaceChildren(
    h("h2", {}, `Node ${conductor.nodeName}`),
    h("p", { class: "muted" }, `agent ${encodeHashToBase64(conductor.me)}`),
    h("h3", {}, "Advert"),
    advertBox,
    h("h3", {}, "Heartbeats"),
    beatsBox,
    h("h3", {}, "Diagnostics"),
    diagnostics,
  );
  const beats: HeartbeatSeen[] = [];

  const showAdvert = (record: AdvertRecord | null) => {
    if (!record) {
      advertBox.replaceChildren(h("p", {}, "This node has not published an advert yet."));
      return;
    }
    const a = record.advert;
    advertBox.replaceChildren(
      table(
        ["field", "value"],
        [
          ["name", a.agent_name],
          ["availability", a.availability],
          ["hardware class", a.hardware_class],
          ["CPU", `${a.compute.cpu_cores} × ${a.compute.cpu_arch}`],
          ["RAM", `${a.compute.ram_gb} GB`],
          ["GPUs", gpus(a)],
          ["storage", `SSD ${a.storage.local_ssd_gb} GB, IPFS ${a.storage.ipfs_pinned_gb} GB, S3 ${a.storage.s3_available_gb} GB`],
          ["models", a.inference.models_loaded.join(", ") || "none"],
          ["inference endpoint", a.inference.endpoint ?? "none"],
          ["region", a.network.region || "-"],
          ["version", encodeHashToBase64(record.version)],
        ],
        "advert-table",
      ),
    );
  };
  const showBeats = () => {
    const now = Date.now();
    beatsBox.replaceChildren(
      beats.length
        ? table(
            ["seq", "written", "CPU", "GPU", "memory", "availability"],
            beats.map((b) => [
              b.sample.seq,
              ago(b.at, now),
              `${b.sample.cpu_percent}%`,
              b.sample.gpu_percent === null ? "-" : `${b.sample.gpu_percent}%`,
              `${b.sample.memory_percent}%`,
              b.sample.availability,
            ]),
            "heartbeat-table",
          )
        : h("p", { class: "muted" }, "Waiting for this node's next heartbeat…"),
    );
  };
  const showDiagnostics = async () => {
    try {
      const response = await fetch("/status");
      diagnostics.textContent = JSON.stringify(await response.json(), null, 2);
    } catch (e) {
      diagnostics.replaceChildren(errorBox("the sidecar's /status failed", e));
    }
  };

  const me = encodeHashToBase64(conductor.me);
  const unsubscribe = conductor.onSignal(({ role, payload }) => {
    const signal = payload as RegistrySignal;
    if (role !== "agent_registry" || encodeHashToBase64(signal.agent) !== me) return;
    if (signal.type === "heartbeat" && signal.sample) {
      beats.unshift({ agent: signal.agent, at: signal.at, sample: signal.sample });
      beats.splice(BEATS_SHOWN);
      showBeats();
      void showDiagnostics(); // the node changed: its diagnostics did too
    } else if (signal.type === "advert") {
      void conductor.call<AdvertRecord | null>("agent_registry", "capabilities", "get_my_node_advert").then(showAdvert);
    }
  });
  try {
    showAdvert(await conductor.call<AdvertRecord | null>("agent_registry", "capabilities", "get_my_node_advert"));
  } catch (e) {
    advertBox.replaceChildren(errorBox("reading the advert failed", e));
  }
  showBeats();
  await showDiagnostics();
  const clock = window.setInterval(showBeats, 1000);
  return () => {
    unsubscribe();
    window.clearInterval(clock);
  };
}

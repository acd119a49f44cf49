// Load over time as an SVG line chart, one line per node; the page feeds it heartbeats.
const WIDTH = 720;
const HEIGHT = 180;
const PAD = 28;
const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

export interface Point {
  /** Milliseconds since the epoch. */
  t: number;
  /** Percent, 0–100. */
  v: number;
}

export class LoadChart {
  readonly element: SVGSVGElement;
  private readonly series = new Map<string, Point[]>();

  constructor(private readonly windowMs: number, private readonly maxPoints = 240) {
    this.element = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": "load over time" });
  }

  add(node: string, point: Point): void {
    const points = this.series.get(node) ?? [];
    if (points.length && points[points.length - 1].t >= point.t) return; // the same beat again
    points.push(point);
    this.series.set(node, points.slice(-this.maxPoints));
  }

  render(now = Date.now()): void {
    const from = now - this.windowMs;
    const x = (t: number) => PAD + ((t - from) / this.windowMs) * (WIDTH - 2 * PAD);
    const y = (v: number) => HEIGHT - PAD - (Math.min(100, Math.max(0, v)) / 100) * (HEIGHT - 2 * PAD);
    const parts: SVGElement[] = [];
    for (const v of [0, 50, 100]) {
      parts.push(svg("line", { x1: PAD, x2: WIDTH - PAD, y1: y(v), y2: y(v), class: "grid" }));
      parts.push(svg("text", { x: 2, y: y(v) + 4, class: "axis" }, `${v}%`));
    }
    [...this.series.entries()].forEach(([node, points], i) => {
      const shown = points.filter((p) => p.t >= from);
      const colour = COLOURS[i % COLOURS.length];
      if (shown.length) {
        const d = shown.map((p, j) => `${j ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
        parts.push(svg("path", { d, stroke: colour, fill: "none", "stroke-width": 2 }));
        const last = shown[shown.length - 1];
        parts.push(svg("circle", { cx: x(last.t), cy: y(last.v), r: 3, fill: colour }));
      }
      parts.push(svg("text", { x: PAD + i * 110, y: 14, fill: colour, class: "legend" }, node));
    });
    this.element.replaceChildren(...parts);
  }
}

function svg(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement & SVGSVGElement {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag) as SVGElement & SVGSVGElement;
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text) el.textContent = text;
  return el;
}

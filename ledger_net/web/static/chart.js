// Balance-history chart drawn as inline SVG (no library): a step line of the running
// balance after each credit-history row, one point per row that moved the balance.

const NS = "http://www.w3.org/2000/svg";
const MAX_POINTS = 600; // newest rows drawn; older ones stay in the table

function el(tag, attrs = {}, text = null) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

function niceScale(lo, hi) {
  // round bounds and a 1-2-5 step so the axis labels read well and small changes show
  if (lo === hi) { const pad = Math.abs(lo) * 0.01 || 1; lo -= pad; hi += pad; }
  const raw = (hi - lo) / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  const start = Math.floor(lo / step) * step;
  const end = Math.max(Math.ceil(hi / step) * step, start + step);
  const ticks = [];
  for (let k = 0; k <= 10 && start + k * step <= end + step / 2; k++) ticks.push(start + k * step);
  return { lo: start, hi: end, ticks };
}

/**
 * @param {Array<{offset:number, ts:number, balance_after:number, delta:number, kind:string}>} rows oldest first
 * @param {(n:number)=>string} fmt number formatter
 * @returns {SVGSVGElement}
 */
export function balanceChart(rows, fmt) {
  const points = rows.filter((r) => r.delta !== 0).slice(-MAX_POINTS);
  const W = 820, H = 260, L = 64, R = 16, T = 14, B = 34;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": "balance history", "data-points": points.length });
  if (points.length === 0) {
    svg.appendChild(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no balance changes yet"));
    return svg;
  }
  const values = points.map((p) => p.balance_after);
  const { lo, hi, ticks } = niceScale(Math.min(...values), Math.max(...values));
  const n = points.length;
  const x = (i) => L + (n === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1));
  const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));

  for (const [k, v] of ticks.entries()) {
    svg.appendChild(el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: k === 0 ? "axis" : "grid" }));
    svg.appendChild(el("text", { x: L - 8, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  let d = `M ${x(0)} ${y(values[0])}`;
  for (let i = 1; i < n; i++) d += ` H ${x(i)} V ${y(values[i])}`;
  const base = y(lo);
  svg.appendChild(el("path", { d: `${d} V ${base} H ${x(0)} Z`, class: "area" }));
  svg.appendChild(el("path", { d, class: "line" }));
  const labelEvery = Math.max(1, Math.ceil(n / 6));
  points.forEach((p, i) => {
    const c = el("circle", { cx: x(i), cy: y(p.balance_after), r: n > 150 ? 2 : 4,
      class: p.delta < 0 ? "pt down" : "pt", "data-offset": p.offset });
    c.appendChild(el("title", {}, `#${p.offset} ${p.kind}: ${p.delta > 0 ? "+" : ""}${fmt(p.delta)} → ${fmt(p.balance_after)}`
      + `\n${new Date(p.ts).toLocaleString()}`));
    svg.appendChild(c);
    if (i % labelEvery === 0 || i === n - 1) {
      svg.appendChild(el("text", { x: x(i), y: H - 12, "text-anchor": "middle" }, `#${p.offset}`));
    }
  });
  return svg;
}

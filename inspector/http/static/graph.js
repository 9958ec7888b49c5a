// The model's graph as a layered DAG in SVG: longest-path layering, dummy nodes on long edges,
// barycentric ordering, least-squares x placement; zoom (wheel), pan (drag), search.

const NODE_W = 176, NODE_H = 40, DUMMY_W = 10, GAP_X = 22, GAP_Y = 34;
const SVGNS = "http://www.w3.org/2000/svg";

const CATEGORY = [
  [/^(Conv|ConvTranspose|QLinearConv|ConvInteger)$/, "conv"],
  [/^(Gemm|MatMul|MatMulInteger|QLinearMatMul|Einsum)$/, "dense"],
  [/^(Relu|LeakyRelu|PRelu|Sigmoid|Tanh|Clip|HardSigmoid|HardSwish|Elu|Selu|Gelu|Softplus|Mish|Swish|Erf|Softmax|LogSoftmax)$/, "act"],
  [/Normalization$/, "norm"],
  [/Pool$/, "pool"],
  [/^(Add|Sub|Mul|Div|Concat|Sum|Max|Min|Mean)$/, "merge"],
  [/^(Reshape|Flatten|Transpose|Squeeze|Unsqueeze|Gather|Shape|Slice|Split|Expand|Tile|Pad|Resize|Upsample|Cast|Identity|Constant|ConstantOfShape)$/, "shape"],
];

export function category(op) {
  for (const [re, c] of CATEGORY) if (re.test(op)) return c;
  return "other";
}

export function shapeText(shape) {
  // symbolic dimensions longer than a short name (shape-inference formulas) show as "?"
  const dim = (d) => (d === null || d === undefined || (typeof d === "string" && d.length > 10) ? "?" : d);
  return shape && shape.length ? shape.map(dim).join("×") : "";
}

const compact = (n) => (n >= 1e6 ? `${+(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${Math.round(n / 1e3)}k` : n >= 1e3 ? `${+(n / 1e3).toFixed(1)}k` : String(n));
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + "…" : s);

/** Nodes, edges and positions for a model info ({inputs, outputs, layers}). */
export function layout(info) {
  const nodes = [];
  const producer = new Map();
  for (const t of info.inputs || []) {
    producer.set(t.name, nodes.length);
    nodes.push({ kind: "input", name: t.name, op: "input", shape: t.shape, params: 0 });
  }
  (info.layers || []).forEach((l, i) => {
    const n = { kind: "layer", name: l.name, op: l.op_type, shape: l.outputs?.[0]?.shape, params: l.parameter_count, layer: i };
    for (const o of l.outputs || []) producer.set(o.name, nodes.length);
    nodes.push(n);
  });
  const layerNodes = nodes.length;
  const edgeSet = new Set(), edges = [];
  const addEdge = (u, v) => {
    const key = `${u}>${v}`;
    if (u !== v && !edgeSet.has(key)) edgeSet.add(key), edges.push([u, v]);
  };
  (info.layers || []).forEach((l, i) => {
    const v = (info.inputs || []).length + i;
    for (const name of l.inputs || []) if (producer.has(name)) addEdge(producer.get(name), v);
  });
  for (const t of info.outputs || []) {
    if (!producer.has(t.name)) continue;
    const id = nodes.length;
    nodes.push({ kind: "output", name: t.name, op: "output", shape: t.shape, params: 0 });
    addEdge(producer.get(t.name), id);
  }
  const n = nodes.length;
  const succ = Array.from({ length: n }, () => []), pred = Array.from({ length: n }, () => []);
  for (const [u, v] of edges) succ[u].push(v), pred[v].push(u);

  // topological order (Kahn, stable) and longest-path ranks
  const indeg = pred.map((p) => p.length), order = [], queue = [];
  for (let i = 0; i < n; i++) if (!indeg[i]) queue.push(i);
  for (let q = 0; q < queue.length; q++) {
    const u = queue[q];
    order.push(u);
    for (const v of succ[u]) if (!--indeg[v]) queue.push(v);
  }
  for (let i = 0; i < n; i++) if (indeg[i] > 0) order.push(i); // cycles (should not happen): append
  const rank = new Array(n).fill(0);
  for (const u of order) for (const v of succ[u]) rank[v] = Math.max(rank[v], rank[u] + 1);
  // sources that are not model inputs (constants) sit just above their first consumer
  for (let i = (info.inputs || []).length; i < n; i++) {
    if (!pred[i].length && succ[i].length) rank[i] = Math.max(0, Math.min(...succ[i].map((v) => rank[v])) - 1);
  }

  // dummy nodes on edges spanning several ranks
  const all = nodes.map((nd, i) => ({ ...nd, id: i, rank: rank[i], w: NODE_W }));
  const up = all.map(() => []), down = all.map(() => []);
  const paths = [];
  for (const [u, v] of edges) {
    const chain = [u];
    for (let r = rank[u] + 1; r < rank[v]; r++) {
      const d = all.length;
      all.push({ kind: "dummy", id: d, rank: r, w: DUMMY_W });
      up.push([]), down.push([]);
      chain.push(d);
    }
    chain.push(v);
    for (let k = 0; k + 1 < chain.length; k++) down[chain[k]].push(chain[k + 1]), up[chain[k + 1]].push(chain[k]);
    paths.push({ from: u, to: v, chain });
  }
  const ranks = [];
  for (const nd of all) (ranks[nd.rank] ||= []).push(nd.id);
  for (let r = 0; r < ranks.length; r++) ranks[r] ||= [];

  // ordering: depth-first initial order, then barycentric sweeps
  const pos = new Array(all.length).fill(0), seen = new Set();
  const next = ranks.map(() => 0);
  const visit = (u) => {
    if (seen.has(u)) return;
    seen.add(u);
    pos[u] = next[all[u].rank]++;
    for (const v of down[u]) visit(v);
  };
  for (const u of order) visit(u);
  for (const nd of all) if (!seen.has(nd.id)) visit(nd.id);
  for (const row of ranks) row.sort((a, b) => pos[a] - pos[b]);
  const sweep = (row, nbrs) => {
    const bary = row.map((u, i) => {
      const ns = nbrs[u];
      return ns.length ? ns.reduce((s, v) => s + pos[v], 0) / ns.length : i;
    });
    const idx = row.map((_, i) => i).sort((a, b) => bary[a] - bary[b] || a - b);
    const sorted = idx.map((i) => row[i]);
    sorted.forEach((u, i) => (pos[u] = i));
    return sorted;
  };
  for (let it = 0; it < 6; it++) {
    for (let r = 1; r < ranks.length; r++) ranks[r] = sweep(ranks[r], up);
    for (let r = ranks.length - 2; r >= 0; r--) ranks[r] = sweep(ranks[r], down);
  }
  for (let r = 1; r < ranks.length; r++) ranks[r] = sweep(ranks[r], up);

  // x placement: each rank as close as possible to its neighbours' mean (pool adjacent violators)
  const x = new Array(all.length).fill(0);
  for (const row of ranks) {
    let cur = 0;
    for (const u of row) (x[u] = cur + all[u].w / 2), (cur += all[u].w + GAP_X);
  }
  const place = (row, want) => {
    const off = [], blocks = [];
    let o = 0;
    row.forEach((u, i) => {
      if (i) o += (all[row[i - 1]].w + all[u].w) / 2 + GAP_X;
      off.push(o);
    });
    row.forEach((u, i) => {
      let b = { start: i, end: i, sum: want[i] - off[i], count: 1 };
      while (blocks.length && blocks[blocks.length - 1].sum / blocks[blocks.length - 1].count > b.sum / b.count) {
        const p = blocks.pop();
        b = { start: p.start, end: b.end, sum: p.sum + b.sum, count: p.count + b.count };
      }
      blocks.push(b);
    });
    for (const b of blocks) for (let i = b.start; i <= b.end; i++) x[row[i]] = b.sum / b.count + off[i];
  };
  const pull = (row, nbrs) => row.map((u) => {
    const ns = nbrs[u];
    return ns.length ? ns.reduce((s, v) => s + x[v], 0) / ns.length : x[u];
  });
  for (let it = 0; it < 8; it++) {
    for (let r = 1; r < ranks.length; r++) place(ranks[r], pull(ranks[r], up));
    for (let r = ranks.length - 2; r >= 0; r--) place(ranks[r], pull(ranks[r], down));
  }
  const both = all.map((_, u) => up[u].concat(down[u]));
  for (let it = 0; it < 4; it++) for (const row of ranks) place(row, pull(row, both));

  let minX = Infinity, maxX = -Infinity;
  for (const nd of all) minX = Math.min(minX, x[nd.id] - nd.w / 2), maxX = Math.max(maxX, x[nd.id] + nd.w / 2);
  for (const nd of all) {
    nd.x = x[nd.id] - minX + 20;
    nd.y = nd.rank * (NODE_H + GAP_Y) + 20;
  }
  return {
    nodes: all.slice(0, n), all, paths, layerNodes,
    width: maxX - minX + 40, height: ranks.length * (NODE_H + GAP_Y) - GAP_Y + 40,
  };
}

function edgePath(g, p) {
  const pts = [];
  const a = g.all[p.from], b = g.all[p.to];
  pts.push([a.x, a.y + NODE_H]);
  for (const d of p.chain.slice(1, -1)) pts.push([g.all[d].x, g.all[d].y], [g.all[d].x, g.all[d].y + NODE_H]);
  pts.push([b.x, b.y]);
  let s = `M${pts[0][0].toFixed(1)},${pts[0][1]}`;
  for (let i = 1; i < pts.length; i++) {
    const [x0, y0] = pts[i - 1], [x1, y1] = pts[i];
    if (i % 2 === 1) {
      const my = (y0 + y1) / 2;
      s += `C${x0.toFixed(1)},${my} ${x1.toFixed(1)},${my} ${x1.toFixed(1)},${y1}`;
    } else s += `L${x1.toFixed(1)},${y1}`;
  }
  return s;
}

/** The graph view inside `container`: onSelect(node) when a layer node is clicked. */
export class GraphView {
  constructor(container, info, { onSelect } = {}) {
    this.container = container;
    this.onSelect = onSelect || (() => {});
    this.g = layout(info);
    this.view = { s: 1, tx: 0, ty: 0 };
    this.byName = new Map();
    for (const nd of this.g.nodes) if (nd.kind === "layer") this.byName.set(nd.name, nd);
    this.render();
    this.bind();
    this.fitWidth();
  }

  render() {
    const g = this.g;
    const parts = [];
    for (const p of g.paths) parts.push(`<path class="edge" d="${edgePath(g, p)}" marker-end="url(#arrow)"/>`);
    const nodes = [];
    for (const nd of g.nodes) {
      const left = nd.x - NODE_W / 2;
      const cls = nd.kind === "layer" ? `node op-${category(nd.op)}` : `node io`;
      const op = nd.op.replace("Normalization", "Norm").replace("Average", "Avg");
      const sub = [op, shapeText(nd.shape)].filter(Boolean).join(" · ");
      const title = `${nd.name}\n${nd.op} ${shapeText(nd.shape)}${nd.params ? `\n${nd.params.toLocaleString()} parameters` : ""}`;
      nodes.push(`<g class="${cls}" data-id="${nd.id}" transform="translate(${left.toFixed(1)},${nd.y})">` +
        `<title>${esc(title)}</title><rect width="${NODE_W}" height="${NODE_H}" rx="6"/>` +
        `<text x="8" y="16" class="n">${esc(clip(nd.name, nd.params ? 19 : 25))}</text>` +
        (nd.params ? `<text x="${NODE_W - 6}" y="16" class="p" text-anchor="end">${compact(nd.params)}</text>` : "") +
        `<text x="8" y="31" class="s">${esc(clip(sub, 29))}</text></g>`);
    }
    this.container.innerHTML =
      `<svg class="graph" xmlns="${SVGNS}"><defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" ` +
      `markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L8,4L0,8z"/></marker></defs>` +
      `<g class="viewport"><g class="edges">${parts.join("")}</g><g class="nodes">${nodes.join("")}</g></g></svg>`;
    this.svg = this.container.querySelector("svg");
    this.vp = this.svg.querySelector(".viewport");
    this.nodeEls = new Map();
    for (const el of this.svg.querySelectorAll(".node")) this.nodeEls.set(+el.dataset.id, el);
  }

  apply() {
    const { s, tx, ty } = this.view;
    this.vp.setAttribute("transform", `translate(${tx.toFixed(1)},${ty.toFixed(1)}) scale(${s.toFixed(4)})`);
  }

  size() {
    const r = this.svg.getBoundingClientRect();
    return [r.width || 600, r.height || 600];
  }

  /** Fit the graph's width (not beyond 1:1), top aligned. */
  fitWidth() {
    const [w] = this.size();
    const s = Math.min(1, Math.max(0.15, (w - 20) / this.g.width));
    this.view = { s, tx: (w - this.g.width * s) / 2, ty: 10 };
    this.apply();
  }

  /** The whole graph in view. */
  fit() {
    const [w, h] = this.size();
    const s = Math.min(1, (w - 20) / this.g.width, (h - 20) / this.g.height);
    this.view = { s, tx: (w - this.g.width * s) / 2, ty: (h - this.g.height * s) / 2 };
    this.apply();
  }

  zoom(factor, cx, cy) {
    const v = this.view;
    const s = Math.min(4, Math.max(0.05, v.s * factor));
    const k = s / v.s;
    this.view = { s, tx: cx - (cx - v.tx) * k, ty: cy - (cy - v.ty) * k };
    this.apply();
  }

  centerOn(nd) {
    const [w, h] = this.size();
    const s = Math.max(this.view.s, 0.8);
    this.view = { s, tx: w / 2 - nd.x * s, ty: h / 2 - (nd.y + NODE_H / 2) * s };
    this.apply();
  }

  bind() {
    const svg = this.svg;
    svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = svg.getBoundingClientRect();
      this.zoom(Math.exp(-e.deltaY * (e.deltaMode ? 0.05 : 0.0015)), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    let drag = null;
    svg.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, tx: this.view.tx, ty: this.view.ty, moved: false, id: e.pointerId };
    });
    svg.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) > 4) {
        drag.moved = true;
        svg.setPointerCapture(drag.id);
        svg.classList.add("panning");
      }
      if (drag.moved) {
        this.view.tx = drag.tx + dx;
        this.view.ty = drag.ty + dy;
        this.apply();
      }
    });
    const end = (e) => {
      if (!drag) return;
      const wasDrag = drag.moved;
      drag = null;
      svg.classList.remove("panning");
      if (wasDrag) return;
      const el = e.target.closest && e.target.closest(".node");
      if (el) {
        const nd = this.g.all[+el.dataset.id];
        if (nd.kind === "layer") this.onSelect(nd);
      }
    };
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", () => ((drag = null), svg.classList.remove("panning")));
  }

  /** Mark the selected node (by layer name). */
  select(name) {
    for (const el of this.svg.querySelectorAll(".node.selected")) el.classList.remove("selected");
    const nd = this.byName.get(name);
    if (nd) this.nodeEls.get(nd.id).classList.add("selected");
    return nd;
  }

  /** Highlight the layers whose name contains `q`; returns the matches (in graph order). */
  search(q) {
    q = q.trim().toLowerCase();
    const hits = [];
    for (const nd of this.g.nodes) {
      const hit = !!q && nd.kind === "layer" && nd.name.toLowerCase().includes(q);
      this.nodeEls.get(nd.id).classList.toggle("match", hit);
      if (hit) hits.push(nd);
    }
    this.svg.classList.toggle("searching", !!q);
    return hits;
  }
}

// Small SVG plots: per-channel statistics of a layer.

const fmt = (v) => {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e4)) return v.toExponential(1);
  return String(+v.toPrecision(3));
};

function ticks(lo, hi, n = 4) {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toPrecision(12));
  return out;
}

/** Per-channel min..max (line), mean ± std (box), mean (dot), and the zero fraction (bars) as SVG.
 * `order`: the channel indices to plot, in order (default all). */
export function statsPlot(stats, { width = 480, order = null } = {}) {
  const C = stats.mean.length;
  const idx = order || Array.from({ length: C }, (_, i) => i);
  const L = 46, R = 8, T = 10, H1 = 120, GAP = 30, H2 = 40, B = 26;
  const height = T + H1 + GAP + H2 + B;
  let lo = Infinity, hi = -Infinity;
  for (const c of idx) {
    for (const v of [stats.min[c], stats.max[c], stats.mean[c] - stats.std[c], stats.mean[c] + stats.std[c]]) {
      if (Number.isFinite(v)) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
    }
  }
  if (!Number.isFinite(lo)) (lo = 0), (hi = 1);
  if (hi === lo) (hi += 0.5), (lo -= 0.5);
  const pad = (hi - lo) * 0.04;
  lo -= pad;
  hi += pad;
  const pw = width - L - R, step = pw / idx.length;
  const X = (i) => L + (i + 0.5) * step;
  const Y = (v) => T + H1 - ((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * H1;
  const Z = (f) => T + H1 + GAP + H2 - f * H2;
  const out = [`<svg class="plot" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img">`];
  out.push(`<rect class="frame" x="${L}" y="${T}" width="${pw}" height="${H1}"/>`);
  out.push(`<rect class="frame" x="${L}" y="${T + H1 + GAP}" width="${pw}" height="${H2}"/>`);
  for (const t of ticks(lo, hi)) {
    const y = Y(t).toFixed(1);
    out.push(`<line class="grid" x1="${L}" x2="${L + pw}" y1="${y}" y2="${y}"/>`);
    out.push(`<text class="tick" x="${L - 4}" y="${+y + 3}" text-anchor="end">${fmt(t)}</text>`);
  }
  if (lo < 0 && hi > 0) out.push(`<line class="zero" x1="${L}" x2="${L + pw}" y1="${Y(0).toFixed(1)}" y2="${Y(0).toFixed(1)}"/>`);
  const bw = Math.max(1, Math.min(10, step * 0.7));
  idx.forEach((c, i) => {
    const x = X(i).toFixed(1), m = stats.mean[c], s = stats.std[c];
    const tip = `<title>channel ${c}: min ${fmt(stats.min[c])}, max ${fmt(stats.max[c])}, mean ${fmt(m)}, std ${fmt(s)}, zeros ${(100 * stats.zero_fraction[c]).toFixed(1)}%</title>`;
    out.push(`<g class="ch">${tip}<line class="range" x1="${x}" x2="${x}" y1="${Y(stats.max[c]).toFixed(1)}" y2="${Y(stats.min[c]).toFixed(1)}"/>`);
    out.push(`<rect class="sd" x="${(X(i) - bw / 2).toFixed(1)}" width="${bw.toFixed(1)}" y="${Y(m + s).toFixed(1)}" height="${Math.max(1, Y(m - s) - Y(m + s)).toFixed(1)}"/>`);
    out.push(`<circle class="mean" cx="${x}" cy="${Y(m).toFixed(1)}" r="${Math.min(2.5, bw / 2 + 0.5).toFixed(1)}"/>`);
    const z = stats.zero_fraction[c];
    out.push(`<rect class="zf" x="${(X(i) - bw / 2).toFixed(1)}" width="${bw.toFixed(1)}" y="${Z(z).toFixed(1)}" height="${(z * H2).toFixed(1)}"/></g>`);
  });
  const every = Math.max(1, Math.ceil(idx.length / 12));
  idx.forEach((c, i) => {
    if (i % every === 0) out.push(`<text class="tick" x="${X(i).toFixed(1)}" y="${height - B + 14}" text-anchor="middle">${c}</text>`);
  });
  out.push(`<text class="tick" x="${L - 4}" y="${T + H1 + GAP + 4}" text-anchor="end">1</text>`);
  out.push(`<text class="tick" x="${L - 4}" y="${T + H1 + GAP + H2}" text-anchor="end">0</text>`);
  out.push(`<text class="label" x="${L}" y="${T + H1 + GAP - 6}">zero fraction</text>`);
  out.push(`<text class="label" x="${L + pw}" y="${height - 2}" text-anchor="end">channel${order ? " (grid order)" : ""}</text>`);
  out.push(`<text class="label" x="${L + 4}" y="${T + 11}">min–max · mean ± std</text>`);
  out.push("</svg>");
  return out.join("");
}

export { fmt };

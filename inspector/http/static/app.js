// The inspector's browser view: the model list, and per model its graph, layer table, feature maps,
// weights, explanations and activation maximization, all over the JSON API under /api/v1.

import {
  ApiError, decodeTensor, fileBase64, getJSON, item, items, pngURL, postJSON, postStream, request, upload,
} from "./api.js";
import { NAMES as CMAPS, gradient, lut } from "./colormaps.js";
import { GraphView, shapeText } from "./graph.js";
import { fmt, statsPlot } from "./plots.js";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const main = $("#main");

// measurements the browser tests read
export const timings = (window.inspectorTimings = { clickToGrid: [] });

// ---- errors and long actions ---------------------------------------------------------------------
function showError(el, err) {
  if (!el) return;
  if (!err) {
    el.textContent = "";
    el.hidden = true;
    return;
  }
  el.hidden = false;
  if (err.name === "AbortError") {
    el.textContent = "Cancelled.";
    el.classList.add("quiet");
    return;
  }
  el.classList.remove("quiet");
  el.textContent = err instanceof ApiError ? `${err.code}: ${err.message}` : `Error: ${err.message || err}`;
  if (!(err instanceof ApiError)) console.error(err);
}

/** A long action: a progress bar (indeterminate until progress() is called), the elapsed time and a
 * Cancel button, in the `.task` element `el`. Returns {signal, progress(frac, text), done()}. */
function startTask(el, label, onCancel) {
  const controller = new AbortController();
  const mine = {};
  el._task = mine;
  el.hidden = false;
  el.innerHTML = `<progress></progress><span class="label"></span><span class="elapsed"></span><button type="button" class="cancel">Cancel</button>`;
  const bar = $("progress", el), text = $(".label", el), elapsed = $(".elapsed", el);
  text.textContent = label;
  const t0 = performance.now();
  const timer = setInterval(() => (elapsed.textContent = `${((performance.now() - t0) / 1000).toFixed(1)} s`), 100);
  $(".cancel", el).onclick = () => {
    controller.abort();
    onCancel && onCancel();
  };
  return {
    signal: controller.signal,
    abort: () => controller.abort(),
    progress(frac, msg) {
      bar.max = 1;
      bar.value = Math.max(0, Math.min(1, frac));
      if (msg !== undefined) text.textContent = msg;
    },
    done() {
      clearInterval(timer);
      if (el._task !== mine) return; // a newer action owns the element now
      el.hidden = true;
      el.innerHTML = "";
    },
  };
}

function toast(msg) {
  const t = $("#toast");
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 6000);
}

const cmapOptions = (selected) => CMAPS.map((n) => `<option${n === selected ? " selected" : ""}>${n}</option>`).join("");

// ---- routing ------------------------------------------------------------------------------------
let page = null;

async function route() {
  if (page && page.leave) page.leave();
  page = null;
  const m = location.hash.match(/^#\/model\/(.+)$/);
  if (m) page = await modelPage(decodeURIComponent(m[1]));
  else page = await listPage();
}

window.addEventListener("hashchange", route);

// ---- the model list -----------------------------------------------------------------------------
async function listPage() {
  $("#crumb").textContent = "";
  $("#crumb").title = "";
  document.title = "inspector";
  main.innerHTML = `
    <section class="models">
      <h1>Models</h1>
      <div id="drop" class="drop">
        <p>Drop an <b>.onnx</b> file here, or
          <label class="button">choose a file<input id="upload-file" type="file" accept=".onnx,application/octet-stream" hidden></label></p>
        <label>Name <input id="upload-name" placeholder="the file's name"></label>
        <label title="move the name from the model that holds it"><input id="upload-replace" type="checkbox"> replace a model of that name</label>
      </div>
      <div id="upload-task" class="task" hidden></div>
      <p id="upload-error" class="error" role="alert" hidden></p>
      <p id="list-error" class="error" role="alert" hidden></p>
      <table id="model-table" class="data"><thead><tr><th>Name</th><th>Id</th><th>Size</th><th>Inputs</th>
        <th>Outputs</th><th>Opsets</th><th></th></tr></thead><tbody></tbody></table>
      <p id="no-models" class="hint" hidden>No models yet: upload one.</p>
      <p class="hint"><a href="/api/v1/docs">API documentation</a></p>
    </section>`;
  const drop = $("#drop"), fileInput = $("#upload-file");
  const send = (file) => uploadModel(file);
  fileInput.onchange = () => fileInput.files[0] && send(fileInput.files[0]);
  drop.ondragover = (e) => (e.preventDefault(), drop.classList.add("over"));
  drop.ondragleave = () => drop.classList.remove("over");
  drop.ondrop = (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f) send(f);
  };
  await refreshModels();
  return {};
}

async function refreshModels() {
  const body = $("#model-table tbody");
  if (!body) return;
  try {
    const { models, quarantined } = await getJSON("/models");
    body.innerHTML = models.map((m) => `
      <tr data-id="${esc(m.id)}">
        <td><a href="#/model/${encodeURIComponent(m.name && !m.name.includes("/") ? m.name : m.id)}" class="open">${esc(m.name || "(unnamed)")}</a>${(m.names || [])
          .filter((n) => n !== m.name).map((n) => ` <a href="#/model/${encodeURIComponent(n)}" class="alias">${esc(n)}</a>`).join("")}</td>
        <td class="mono" title="${esc(m.id)}">${esc(m.id.slice(0, 12))}</td>
        <td class="num">${(m.size_bytes / 1024).toFixed(1)} KiB</td>
        <td class="mono">${(m.inputs || []).map((t) => `${esc(t.name)} ${esc(shapeText(t.shape))}`).join("<br>")}</td>
        <td class="mono">${(m.outputs || []).map((t) => `${esc(t.name)} ${esc(shapeText(t.shape))}`).join("<br>")}</td>
        <td class="mono">${Object.entries(m.opsets || {}).map(([d, v]) => `${esc(d)} ${v}`).join("<br>")}</td>
        <td><button type="button" class="delete">Delete</button></td>
      </tr>`).join("");
    $("#no-models").hidden = models.length > 0;
    for (const row of body.querySelectorAll("tr")) {
      $(".delete", row).onclick = async () => {
        const name = $(".open", row).textContent;
        if (!confirm(`Delete the model ${name}?`)) return;
        try {
          await request(`/models/${encodeURIComponent(row.dataset.id)}`, { method: "DELETE" });
          await refreshModels();
        } catch (e) {
          showError($("#list-error"), e);
        }
      };
    }
    if (quarantined && quarantined.length) toast(`${quarantined.length} corrupt store entries are quarantined`);
    showError($("#list-error"), null);
  } catch (e) {
    showError($("#list-error"), e);
  }
}

async function uploadModel(file) {
  const err = $("#upload-error");
  showError(err, null);
  const name = $("#upload-name").value.trim() || file.name.replace(/\.onnx$/i, "");
  let job = null;
  const task = startTask($("#upload-task"), `Uploading ${file.name}`, () => job && job.abort());
  const seen = { file: file.name, progress: [] };
  (timings.uploads ||= []).push(seen);
  const replace = $("#upload-replace").checked ? "&replace=true" : "";
  job = upload(`/models?name=${encodeURIComponent(name)}${replace}`, file, (f) => {
    seen.progress.push(f);
    task.progress(f, f < 1 ? `Uploading ${file.name}: ${(100 * f).toFixed(0)} %` : `Checking ${file.name}…`);
  });
  try {
    const info = await job.promise;
    toast(`Uploaded ${info.name || info.id.slice(0, 12)}`);
    await refreshModels();
  } catch (e) {
    showError(err, e);
  } finally {
    task.done();
    $("#upload-file").value = "";
  }
}

// ---- one model ----------------------------------------------------------------------------------
const image = { b64: null, url: null, name: "" }; // the picked image, kept across pages

async function modelPage(id) {
  const t0 = performance.now();
  main.innerHTML = `<p class="hint">Loading the model…</p><p class="error" id="page-error" hidden></p>`;
  let info;
  try {
    info = await getJSON(`/models/${encodeURIComponent(id)}`);
  } catch (e) {
    showError($("#page-error"), e);
    return {};
  }
  const tFetched = performance.now();
  const name = info.name || info.id.slice(0, 12);
  const aliases = (info.names || []).filter((n) => n !== name);
  $("#crumb").title = aliases.length ? `also known as ${aliases.join(", ")}` : "";
  document.title = `${name} · inspector`;
  $("#crumb").innerHTML = `› <span>${esc(name)}</span>`;
  main.innerHTML = `
  <div class="model-page">
    <section class="graph-pane">
      <div class="toolbar">
        <input id="search" type="search" placeholder="Find a layer by name…" autocomplete="off">
        <span id="search-count" class="hint"></span>
        <span class="grow"></span>
        <button type="button" id="zoom-out" title="Zoom out">−</button>
        <button type="button" id="zoom-in" title="Zoom in">+</button>
        <button type="button" id="fit" title="The whole graph">Fit</button>
      </div>
      <div id="graph"></div>
    </section>
    <section class="table-pane">
      <table id="layers" class="data compact"><thead><tr><th>Layer</th><th>Op</th><th>Output</th><th>Params</th></tr></thead>
      <tbody>${info.layers.map((l) => `<tr data-name="${esc(l.name)}"><td class="mono">${esc(l.name).replace(/\//g, "/<wbr>")}</td><td class="op" title="${esc(l.op_type)}">${esc(l.op_type)}</td>
        <td class="mono shape">${esc(shapeText(l.outputs?.[0]?.shape))}</td><td class="num">${l.parameter_count ? l.parameter_count.toLocaleString() : ""}</td></tr>`).join("")}</tbody></table>
    </section>
    <section class="side">
      <div class="picker">
        <img id="image-thumb" alt="" hidden>
        <div>
          <label class="button">Image…<input id="image-file" type="file" accept="image/*" hidden></label>
          <button type="button" id="sample">Sample photo</button>
          <div id="image-name" class="hint">No image yet.</div>
        </div>
        <div id="predictions"></div>
      </div>
      <div id="predict-task" class="task" hidden></div>
      <p id="image-error" class="error" hidden></p>
      <nav class="tabs">
        <button type="button" data-tab="layer" class="on">Layer</button>
        <button type="button" data-tab="explain">Explain</button>
        <button type="button" data-tab="maximize">Maximize</button>
      </nav>
      <div class="tab" id="tab-layer">
        <h2 id="layer-title">Click a node</h2>
        <p id="layer-meta" class="hint">Pick a node in the graph or the table to see its feature maps.</p>
        <div class="controls">
          <label>Colormap <select id="fm-cmap">${cmapOptions("viridis")}</select></label>
          <label>Normalize <select id="fm-norm"><option value="channel">per channel</option><option value="layer">per layer</option></select></label>
          <label>Top-k <input id="fm-topk" type="number" min="1" value="16"></label>
        </div>
        <div id="fm-task" class="task" hidden></div>
        <p id="fm-error" class="error" hidden></p>
        <figure id="fm-figure" hidden>
          <div class="grid-wrap"><img id="fm-grid" alt="feature maps"><div class="labels"></div></div>
          <div class="colorbar"><span class="lo"></span><div class="bar"></div><span class="hi"></span></div>
          <figcaption id="fm-caption"></figcaption>
        </figure>
        <div id="fm-stats"></div>
        <div id="weights"></div>
        <div id="w-task" class="task" hidden></div>
      </div>
      <div class="tab" id="tab-explain" hidden>
        <div class="controls">
          <label>Method <select id="ex-method"></select></label>
          <label>Target <select id="ex-target"><option value="">top-1 (the server's default)</option><option value="custom">custom (JSON)…</option></select></label>
          <label id="ex-target-custom" hidden>JSON <input id="ex-target-json" size="30" placeholder='{"tensor": "out", "index": [3, 7]}'></label>
          <label>Layer <select id="ex-layer"><option value="">the method's default</option></select></label>
        </div>
        <p id="ex-doc" class="hint"></p>
        <div id="ex-params" class="params"></div>
        <button type="button" id="ex-run" class="primary">Explain</button>
        <div id="ex-task" class="task" hidden></div>
        <p id="ex-error" class="error" hidden></p>
        <figure id="ex-figure" hidden>
          <div class="overlay-wrap"><img id="ex-base" alt="the image as the model sees it"><canvas id="ex-heat"></canvas></div>
          <div class="colorbar"><span class="lo">0</span><div class="bar"></div><span class="hi">1</span></div>
          <div class="controls">
            <label>Opacity <input id="ex-opacity" type="range" min="0" max="1" step="0.05" value="0.5"></label>
            <label>Colormap <select id="ex-cmap">${cmapOptions("jet")}</select></label>
          </div>
          <figcaption id="ex-caption"></figcaption>
        </figure>
        <div id="ex-eval-box" hidden>
          <div class="controls metrics">
            ${["deletion", "insertion", "road", "confidence"].map((m) => `<label><input type="checkbox" value="${m}"${m === "deletion" || m === "insertion" ? " checked" : ""}> ${m}</label>`).join("")}
            <button type="button" id="ex-eval">Faithfulness metrics</button>
          </div>
          <div id="ev-task" class="task" hidden></div>
          <p id="ev-error" class="error" hidden></p>
          <div id="ex-metrics"></div>
        </div>
      </div>
      <div class="tab" id="tab-maximize" hidden>
        <p>Layer: <b id="mx-layer" class="mono">pick a node</b></p>
        <div class="controls">
          <label>Channels <input id="mx-channels" value="0-3" size="8"></label>
          <label>Steps <input id="mx-steps" type="number" min="1" value="64"></label>
          <label>Preview every <input id="mx-preview" type="number" min="0" value="4"></label>
          <label>Size <input id="mx-size" type="number" min="8" placeholder="auto"></label>
          <label>Objective <select id="mx-objective"><option value="">channel</option><option>neuron</option><option>layer</option><option>logit</option><option>probability</option></select></label>
        </div>
        <button type="button" id="mx-run" class="primary">Maximize</button>
        <div id="mx-task" class="task" hidden></div>
        <p id="mx-error" class="error" hidden></p>
        <div id="mx-values" class="hint"></div>
        <div id="mx-images" class="previews"></div>
      </div>
    </section>
  </div>`;

  // calls go to the reference the page was opened with: a name brings its own preprocessing
  const state = { info, id: encodeURIComponent(id), selected: null, fm: null, ex: null, exResult: null, predictions: null, methods: [] };
  const layerByName = new Map(info.layers.map((l) => [l.name, l]));

  // graph
  const tLayout = performance.now();
  const graph = new GraphView($("#graph"), info, { onSelect: (nd) => select(nd.name, "graph") });
  const tDrawn = performance.now();
  await new Promise(requestAnimationFrame);
  timings.graph = {
    nodes: info.layers.length, fetchMs: tFetched - t0, layoutAndSvgMs: tDrawn - tLayout,
    pageMs: performance.now() - t0, sinceNavigationMs: performance.now(),
  };
  document.body.dataset.graphReady = info.id;

  $("#zoom-in").onclick = () => { const [w, h] = graph.size(); graph.zoom(1.25, w / 2, h / 2); };
  $("#zoom-out").onclick = () => { const [w, h] = graph.size(); graph.zoom(0.8, w / 2, h / 2); };
  $("#fit").onclick = () => graph.fit();
  let hits = [], hit = 0;
  const search = $("#search");
  search.oninput = () => {
    hits = graph.search(search.value);
    hit = 0;
    $("#search-count").textContent = search.value.trim() ? `${hits.length} found` : "";
    for (const tr of document.querySelectorAll("#layers tr.match")) tr.classList.remove("match");
    for (const nd of hits) document.querySelector(`#layers tr[data-name="${CSS.escape(nd.name)}"]`)?.classList.add("match");
    if (hits.length) show(hits[0]);
  };
  search.onkeydown = (e) => {
    if (e.key !== "Enter" || !hits.length) return;
    hit = (hit + (e.shiftKey ? hits.length - 1 : 1)) % hits.length;
    show(hits[hit]);
    $("#search-count").textContent = `${hit + 1} of ${hits.length}`;
  };
  const show = (nd) => {
    graph.centerOn(nd);
    document.querySelector(`#layers tr[data-name="${CSS.escape(nd.name)}"]`)?.scrollIntoView({ block: "nearest" });
  };
  $("#layers tbody").onclick = (e) => {
    const tr = e.target.closest("tr");
    if (tr) select(tr.dataset.name, "table");
  };

  // tabs
  for (const b of document.querySelectorAll(".tabs button")) {
    b.onclick = () => {
      for (const o of document.querySelectorAll(".tabs button")) o.classList.toggle("on", o === b);
      for (const t of document.querySelectorAll(".tab")) t.hidden = t.id !== `tab-${b.dataset.tab}`;
    };
  }

  // ---- the image and its predictions
  const setImage = async (blob, name) => {
    showError($("#image-error"), null);
    image.b64 = await fileBase64(blob);
    if (image.url) URL.revokeObjectURL(image.url);
    image.url = URL.createObjectURL(blob);
    image.name = name;
    showImage();
    onImage();
  };
  const showImage = () => {
    const thumb = $("#image-thumb");
    thumb.hidden = !image.url;
    if (image.url) thumb.src = image.url;
    $("#image-name").textContent = image.url ? image.name : "No image yet.";
  };
  $("#image-file").onchange = (e) => e.target.files[0] && setImage(e.target.files[0], e.target.files[0].name);
  $("#sample").onclick = async () => {
    try {
      const r = await fetch("sample.jpg");
      if (!r.ok) throw new ApiError(`HTTP ${r.status}`, "the sample photo is missing from the app");
      await setImage(await r.blob(), "sample.jpg (Grace Hopper)");
    } catch (e) {
      showError($("#image-error"), e);
    }
  };
  const input = () => ({ images: [image.b64] });

  let inferCtl = null;
  async function predict() {
    if (inferCtl) inferCtl.abort();
    const ctl = (inferCtl = startTask($("#predict-task"), `Predicting ${image.name}`));
    const box = $("#predictions");
    box.innerHTML = "";
    try {
      const r = await postJSON(`/models/${state.id}/infer`, { input: input() }, { signal: ctl.signal });
      const first = info.outputs?.[0]?.name;
      const out = item(r, "output", first) || items(r, "output")[0];
      const t = decodeTensor(out);
      const per = t.shape.length >= 2 ? t.shape.slice(1).reduce((a, b) => a * b, 1) : t.data.length;
      state.predictions = null;
      if (t.shape.length === 2 && per > 1) {
        const row = Array.from(t.data.slice(0, per));
        const max = Math.max(...row), exps = row.map((v) => Math.exp(v - max)), sum = exps.reduce((a, b) => a + b, 0);
        const isProb = row.every((v) => v >= 0 && v <= 1) && Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-3;
        const top = row.map((v, i) => ({ i, v, p: isProb ? v : exps[i] / sum })).sort((a, b) => b.v - a.v).slice(0, 5);
        state.predictions = top;
        box.innerHTML = `<table class="data compact preds"><thead><tr><th>${esc(out.name)}</th><th>score</th><th>p</th></tr></thead><tbody>${top
          .map((p) => `<tr><td>class ${p.i}</td><td class="num">${fmt(p.v)}</td><td><span class="pbar" style="width:${(60 * p.p).toFixed(1)}px"></span> ${(100 * p.p).toFixed(1)}%</td></tr>`)
          .join("")}</tbody></table>`;
      } else {
        box.innerHTML = `<span class="hint">${esc(out.name)} ${esc(shapeText(t.shape))}: not [N, K] class scores; ` +
          `give explanations a custom target such as {"tensor": "${esc(out.name)}", "index": [k, i]}</span>`;
      }
      const sel = $("#ex-target"), was = sel.value;
      sel.innerHTML = `<option value="">top-1 (the server's default)</option>` + (state.predictions || [])
        .map((p, k) => `<option value="${p.i}">class ${p.i} (#${k + 1}, ${(100 * p.p).toFixed(1)}%)</option>`).join("") +
        `<option value="custom">custom (JSON)…</option>`;
      if (was === "custom") sel.value = "custom";
    } catch (e) {
      if (inferCtl === ctl) showError($("#image-error"), e); // a newer prediction replaced this one: quiet
    } finally {
      ctl.done();
    }
  }

  function onImage() {
    state.exResult = state.ex = null; // an explanation of the previous image no longer applies
    $("#ex-figure").hidden = $("#ex-eval-box").hidden = true;
    predict();
    if (state.selected) featureMaps();
  }

  // ---- the selected layer: feature maps, statistics, weights
  function select(name, from) {
    const l = layerByName.get(name);
    if (!l) return;
    state.selected = l;
    const nd = graph.select(name);
    if (from !== "graph" && nd) graph.centerOn(nd);
    for (const tr of document.querySelectorAll("#layers tr.selected")) tr.classList.remove("selected");
    const tr = document.querySelector(`#layers tr[data-name="${CSS.escape(name)}"]`);
    if (tr) {
      tr.classList.add("selected");
      if (from !== "table") tr.scrollIntoView({ block: "nearest" });
    }
    const out = l.outputs?.[0];
    $("#layer-title").textContent = l.name;
    $("#layer-meta").textContent = `${l.op_type} → ${out ? `${out.name} ${shapeText(out.shape)} ${out.dtype}` : "no output"}` +
      (l.parameter_count ? ` · ${l.parameter_count.toLocaleString()} parameters` : "");
    $("#mx-layer").textContent = out ? out.name : l.name;
    const exLayer = $("#ex-layer");
    exLayer.innerHTML = `<option value="">the method's default</option>` + (out ? `<option value="${esc(out.name)}">${esc(l.name)} (selected)</option>` : "");
    state.clickedAt = performance.now();
    featureMaps();
    weights();
  }

  let fmCtl = null;
  async function featureMaps() {
    const l = state.selected;
    const out = l && l.outputs?.[0];
    if (!out) return;
    if (fmCtl) fmCtl.abort();
    showError($("#fm-error"), null);
    if (!image.b64) {
      $("#fm-error").hidden = false;
      $("#fm-error").classList.add("quiet");
      $("#fm-error").textContent = "Pick an image (or the sample photo) to see this layer's feature maps.";
      return;
    }
    const cmap = $("#fm-cmap").value, normalize = $("#fm-norm").value;
    const topK = parseInt($("#fm-topk").value, 10);
    const task = (fmCtl = startTask($("#fm-task"), `Feature maps of ${out.name}`));
    const clickedAt = state.clickedAt;
    state.clickedAt = null;
    try {
      const body = { input: input(), layers: [out.name], raw: false, png: true, stats: true, cmap, normalize };
      if (topK > 0) body.top_k = topK;
      const r = await postJSON(`/models/${state.id}/feature-maps`, body, { signal: task.signal });
      const name = r.info.tensors?.[0] || out.name;
      const png = item(r, "png", `${name}/0`);
      const stats = {};
      for (const k of ["min", "max", "mean", "std", "zero_fraction"]) {
        const s = item(r, "stats", `${name}/${k}`);
        if (s) stats[k] = decodeTensor(s).data;
      }
      const img = $("#fm-grid");
      img.src = pngURL(png);
      await img.decode();
      $("#fm-figure").hidden = false;
      const C = stats.mean ? stats.mean.length : 0;
      // the server's top-k order: channels by mean activation, descending (stable)
      const order = C ? Array.from({ length: C }, (_, i) => i) : [];
      if (C && topK > 0) order.sort((a, b) => stats.mean[b] - stats.mean[a] || a - b), order.splice(topK);
      labelGrid(img, out.shape, order);
      // "layer" scales by the whole layer's range, also when only some channels are shown
      colorbar($("#fm-figure .colorbar"), cmap, normalize === "layer" && C
        ? [fmt(Math.min(...stats.min)), fmt(Math.max(...stats.max))]
        : ["channel min", "channel max"]);
      $("#fm-caption").textContent = `${name}: ${order.length || "all"} of ${C || "?"} channels` +
        `${topK > 0 ? " with the highest mean activation" : ""}, ${normalize === "layer" ? "one scale for the layer" : "each channel scaled to its own range"}, ${cmap}.`;
      $("#fm-stats").innerHTML = C ? `<h3>Per-channel statistics (${C} channels)</h3>${statsPlot(stats)}` : "";
      if (clickedAt) await new Promise(requestAnimationFrame), timings.clickToGrid.push(performance.now() - clickedAt);
      img.dataset.rendered = String(Date.now());
    } catch (e) {
      if (fmCtl === task) showError($("#fm-error"), e); // else a newer request replaced this one
    } finally {
      task.done();
      if (fmCtl === task) fmCtl = null;
    }
  }

  // the server's grid: n tiles of h x w with 1 px gaps, cols = ceil(sqrt(n * h / w)) (imaging/grid.py)
  // A symbolic tile size can fit several ways: take the known one, else the tile aspect closest to
  // the model input's (or square).
  function gridGeometry(W, H, n, tile) {
    const fits = [];
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols), w = (W + 1) / cols - 1, h = (H + 1) / rows - 1;
      if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) continue;
      if (Math.max(1, Math.min(n, Math.ceil(Math.sqrt((n * h) / w)))) !== cols) continue;
      if (Number.isInteger(tile[0]) && Number.isInteger(tile[1]) && (h !== tile[0] || w !== tile[1])) continue;
      fits.push({ cols, rows, w, h });
    }
    const dims = (info.inputs?.[0]?.shape || []).slice(-2);
    const aspect = dims.every((d) => Number.isInteger(d) && d > 0) ? dims[1] / dims[0] : 1;
    fits.sort((a, b) => Math.abs(Math.log(a.w / a.h / aspect)) - Math.abs(Math.log(b.w / b.h / aspect)));
    return fits[0] || null;
  }

  function labelGrid(img, shape, order) {
    const box = $("#fm-figure .labels");
    box.innerHTML = "";
    if (!shape || shape.length !== 4 || !order.length) return;
    const W = img.naturalWidth, H = img.naturalHeight;
    const g = gridGeometry(W, H, order.length, shape.slice(2));
    if (!g) return;
    const { cols, w, h } = g;
    box.innerHTML = order.map((c, i) => {
      const r = Math.floor(i / cols), k = i % cols;
      return `<span style="left:${((100 * k * (w + 1)) / W).toFixed(3)}%;top:${((100 * r * (h + 1)) / H).toFixed(3)}%">${c}</span>`;
    }).join("");
  }

  function colorbar(el, cmap, [lo, hi]) {
    $(".bar", el).style.background = gradient(cmap);
    $(".lo", el).textContent = lo;
    $(".hi", el).textContent = hi;
  }

  let wCtl = null;
  async function weights() {
    const l = state.selected, box = $("#weights");
    if (wCtl) wCtl.abort();
    wCtl = null;
    box.innerHTML = "";
    if (!l || !l.weight_names || !l.weight_names.length) return;
    const ctl = (wCtl = startTask($("#w-task"), `Weights of ${l.name}`));
    try {
      const r = await postJSON(`/models/${state.id}/weights`,
        { layers: l.weight_names, raw: false, png: true, histogram: true },
        { signal: ctl.signal });
      const parts = [];
      for (const w of l.weight_names) {
        const meta = (r.info.weights || []).find((x) => x.initializer === w) || {};
        const grid = item(r, "png", w), hist = item(r, "histogram", w);
        if (!grid && !hist) continue;
        parts.push(`<div class="weight"><h4 class="mono">${esc(w)} <span class="hint">${esc(meta.role || "")}</span></h4>
          ${grid ? `<img class="pixelated filters" src="${pngURL(grid)}" alt="filters of ${esc(w)}">` : ""}
          ${hist ? `<img class="histogram" src="${pngURL(hist)}" alt="histogram of ${esc(w)}">` : ""}</div>`);
      }
      box.innerHTML = parts.length ? `<h3>Weights</h3>${parts.join("")}` : "";
    } catch (e) {
      if (wCtl !== ctl) return; // replaced by the next layer's weights
      box.innerHTML = `<h3>Weights</h3><p class="error"></p>`;
      showError($(".error", box), e);
    } finally {
      ctl.done();
    }
  }

  for (const id of ["#fm-cmap", "#fm-norm", "#fm-topk"]) $(id).onchange = () => featureMaps();

  // ---- explain
  try {
    state.methods = (await getJSON("/methods")).methods;
  } catch (e) {
    showError($("#ex-error"), e);
  }
  const methodSel = $("#ex-method");
  methodSel.innerHTML = state.methods.map((m) => `<option${m.name === "gradcam" ? " selected" : ""}>${esc(m.name)}</option>`).join("");
  const renderParams = () => {
    const m = state.methods.find((x) => x.name === methodSel.value);
    $("#ex-doc").textContent = m ? m.doc : "";
    $("#ex-params").innerHTML = m ? Object.entries(m.defaults || {}).map(([k, v]) => {
      const kind = typeof v === "boolean" ? "bool" : typeof v === "number" ? "number" : v === null || typeof v === "string" ? "text" : "json";
      const shown = kind === "json" ? JSON.stringify(v) : v === null ? "" : v;
      const field = kind === "bool"
        ? `<input type="checkbox" data-param="${esc(k)}" data-kind="bool"${v ? " checked" : ""}>`
        : `<input ${kind === "number" ? `type="number" step="any"` : `type="text"`} data-param="${esc(k)}" data-kind="${kind}" value="${esc(shown)}"${v === null ? ` placeholder="auto"` : ""}>`;
      return `<label>${esc(k)} ${field}</label>`;
    }).join("") : "";
  };
  methodSel.onchange = renderParams;
  renderParams();

  const params = () => {
    const m = state.methods.find((x) => x.name === methodSel.value);
    const out = {};
    for (const f of document.querySelectorAll("#ex-params [data-param]")) {
      const k = f.dataset.param, def = m.defaults[k];
      let v;
      if (f.dataset.kind === "bool") v = f.checked;
      else if (f.dataset.kind === "number") v = f.value === "" ? null : Number(f.value);
      else if (f.dataset.kind === "json") v = JSON.parse(f.value);
      else v = f.value === "" ? null : f.value;
      if (JSON.stringify(v) !== JSON.stringify(def)) out[k] = v; // only what differs from the server's default
    }
    return out;
  };

  const target = () => {
    const v = $("#ex-target").value;
    if (v === "") return undefined;
    if (v !== "custom") return Number(v);
    try {
      return JSON.parse($("#ex-target-json").value);
    } catch (e) {
      throw new ApiError("INVALID_ARGUMENT", `target: not JSON (${e.message})`);
    }
  };
  $("#ex-target").onchange = () => ($("#ex-target-custom").hidden = $("#ex-target").value !== "custom");

  let exTask = null;
  $("#ex-run").onclick = async () => {
    showError($("#ex-error"), null);
    if (!image.b64) return showError($("#ex-error"), new Error("pick an image first"));
    if (exTask) exTask.abort();
    const task = (exTask = startTask($("#ex-task"), `${methodSel.value}…`));
    try {
      const body = { input: input(), method: methodSel.value, params: params(), overlay: true, alpha: 0 };
      const t = target(), layer = $("#ex-layer").value;
      if (t !== undefined) body.target = t;
      if (layer) body.layers = [layer];
      const r = await postJSON(`/models/${state.id}/explain`, body, { signal: task.signal });
      state.exResult = r;
      state.ex = decodeTensor(item(r, "heatmap", "heatmap"));
      const base = $("#ex-base");
      base.src = pngURL(item(r, "overlay", "0")); // alpha 0: the image exactly as the model sees it
      await base.decode();
      $("#ex-figure").hidden = false;
      drawHeat();
      const i = r.info;
      $("#ex-caption").textContent = `${i.method} on ${(i.layers || []).join(", ") || "the input"} for ${(i.targets || []).join(", ")}` +
        (i.score ? `; score ${fmt(i.score[0])}` : "") + (i.score_after ? `, after masking ${fmt(i.score_after[0])}` : "") +
        (r.warnings && r.warnings.length ? `. Warnings: ${r.warnings.join("; ")}` : "");
      $("#ex-eval-box").hidden = false;
      $("#ex-metrics").innerHTML = "";
      $("#ex-figure").dataset.rendered = String(Date.now());
    } catch (e) {
      if (exTask === task) showError($("#ex-error"), e);
    } finally {
      task.done();
    }
  };

  function drawHeat() {
    const t = state.ex;
    if (!t) return;
    const [, h, w] = t.shape.length === 3 ? t.shape : [1, ...t.shape.slice(-2)];
    const canvas = $("#ex-heat");
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    const pixels = ctx.createImageData(w, h), table = lut($("#ex-cmap").value);
    for (let p = 0; p < w * h; p++) {
      let v = t.data[p];
      v = Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0;
      const k = Math.min(255, Math.floor(v * 256)) * 3;
      pixels.data.set([table[k], table[k + 1], table[k + 2], 255], 4 * p);
    }
    ctx.putImageData(pixels, 0, 0);
    canvas.style.opacity = $("#ex-opacity").value;
    colorbar($("#ex-figure .colorbar"), $("#ex-cmap").value, ["0", "1"]);
  }
  $("#ex-opacity").oninput = () => ($("#ex-heat").style.opacity = $("#ex-opacity").value);
  $("#ex-cmap").onchange = drawHeat;

  $("#ex-eval").onclick = async () => {
    const r = state.exResult;
    if (!r) return;
    showError($("#ev-error"), null);
    const metrics = [...document.querySelectorAll(".metrics input:checked")].map((x) => x.value);
    const task = startTask($("#ev-task"), `Faithfulness: ${metrics.join(", ")}`);
    try {
      const hm = item(r, "heatmap", "heatmap");
      const body = { input: input(), heatmap: { dtype: hm.dtype, shape: hm.shape, data: hm.data } };
      if (metrics.length) body.metrics = metrics;
      const t = target();
      if (t !== undefined) body.target = t;
      const ev = await postJSON(`/models/${state.id}/evaluate`, body, { signal: task.signal });
      $("#ex-metrics").innerHTML = `<table class="data compact"><tbody>${items(ev, "metric").map((m) => {
        const v = Array.from(decodeTensor(m).data);
        return `<tr><td>${esc(m.name)}</td><td class="num">${v.length > 4 ? sparkline(v) : v.map(fmt).join(", ")}</td></tr>`;
      }).join("")}</tbody></table>`;
    } catch (e) {
      showError($("#ev-error"), e);
    } finally {
      task.done();
    }
  };

  // ---- maximize (Server-Sent Events over a POST)
  let mxTask = null;
  $("#mx-run").onclick = async () => {
    const l = state.selected;
    showError($("#mx-error"), null);
    if (!l || !l.outputs?.[0]) return showError($("#mx-error"), new Error("pick a layer first"));
    let channels;
    try {
      channels = parseChannels($("#mx-channels").value);
    } catch (e) {
      return showError($("#mx-error"), e);
    }
    if (mxTask) mxTask.abort();
    const steps = parseInt($("#mx-steps").value, 10), every = parseInt($("#mx-preview").value, 10);
    const size = parseInt($("#mx-size").value, 10), objective = $("#mx-objective").value;
    const body = { layer: l.outputs[0].name, channels, params: {} };
    if (steps > 0) body.steps = steps;
    if (every >= 0) body.preview_every = every;
    if (size > 0) body.params.size = size;
    if (objective) body.objective = objective;
    const task = (mxTask = startTask($("#mx-task"), `Maximizing ${channels.length} channels of ${body.layer}`));
    const imgs = $("#mx-images"), values = $("#mx-values");
    imgs.innerHTML = channels.map((c) => `<figure><img class="pixelated" alt=""><figcaption>channel ${c}</figcaption></figure>`).join("");
    values.textContent = "";
    const cells = [...imgs.querySelectorAll("img")];
    try {
      const result = await postStream(`/models/${state.id}/maximize`, body, {
        signal: task.signal,
        onEvent(kind, d) {
          if (kind !== "progress") return;
          task.progress(d.step / d.total, `step ${d.step} of ${d.total}`);
          values.textContent = `objective: ${d.values.map(fmt).join(", ")}${d.message ? ` · ${d.message}` : ""}`;
          values.dataset.step = d.step;
          for (const [k, b64] of Object.entries(d.previews || {})) if (cells[+k]) cells[+k].src = `data:image/png;base64,${b64}`;
        },
      });
      items(result, "png").forEach((p) => cells[+p.name] && (cells[+p.name].src = pngURL(p)));
      const fin = item(result, "objective", "final_objective");
      if (fin) values.textContent = `final objective: ${Array.from(decodeTensor(fin).data).map(fmt).join(", ")}`;
      values.dataset.done = "1";
    } catch (e) {
      if (mxTask === task) showError($("#mx-error"), e);
    } finally {
      task.done();
    }
  };

  // start with the image picked before, else with the sample photo
  if (image.b64) showImage(), predict();
  else $("#sample").click();

  return {
    leave() {
      for (const c of [fmCtl, exTask, mxTask, inferCtl, wCtl]) c && c.abort();
    },
  };
}

/** A curve (e.g. a deletion curve) as a small SVG line from its first to its last value. */
function sparkline(v, w = 160, h = 36) {
  const lo = Math.min(...v), hi = Math.max(...v), span = hi - lo || 1;
  const pts = v.map((y, i) => `${((i / (v.length - 1)) * w).toFixed(1)},${(h - 2 - ((y - lo) / span) * (h - 4)).toFixed(1)}`);
  return `<svg class="spark" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}"><polyline points="${pts.join(" ")}"/></svg>` +
    ` <span class="hint">${fmt(v[0])} → ${fmt(v[v.length - 1])}, ${v.length} steps</span>`;
}

function parseChannels(text) {
  const out = [];
  for (const part of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = part.match(/^(\d+)(?:\s*-\s*(\d+))?$/);
    if (!m) throw new Error(`channels: "${part}" is not an index or a range like 0-7`);
    const a = +m[1], b = m[2] === undefined ? a : +m[2];
    for (let c = a; c <= b; c++) out.push(c);
  }
  if (!out.length) throw new Error("channels: give at least one channel, e.g. 0-3");
  return out;
}

route();

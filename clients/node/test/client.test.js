'use strict';
// The client against a real `inspector serve` (temp store, --no-vetting, --no-shared-memory),
// values checked against the Python client and onnxruntime on the same inputs.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { InspectorClient, InspectorError, status } = require('../lib');
const { startServer, python, writeSmallCnn, makePng, pngSize, isPng, maxAbsDiff } = require('./helpers');

const SIZE = 32;

// What the Python client (and onnxruntime) return for the same model and inputs.
const REFERENCE = `
import json, sys
import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from inspector_client import InspectorClient

target, model_path, x_path, png_path = sys.argv[1:5]
x = np.fromfile(x_path, np.float32).reshape(1, 3, ${SIZE}, ${SIZE})
flat = lambda a: np.asarray(a, np.float64).ravel().tolist()
out = {}
sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
out["ort"] = flat(sess.run(None, {"input": x})[0])
inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(model_path).graph.initializer}
out["conv1_weight"] = {"shape": list(inits["conv1.weight"].shape), "data": flat(inits["conv1.weight"])}
with InspectorClient(target, shared_memory=False, timeout=60) as c:
    out["infer"] = flat(c.infer("cnn", x)["logits"])
    out["infer_png"] = flat(c.infer("cnn", png_path)["logits"])
    fm = c.feature_maps("cnn", x, ["Relu"])
    out["fm"] = {k: {"shape": list(v.shape), "data": flat(v)} for k, v in fm.items()}
    fm16 = c.feature_maps("cnn", x, ["relu1", "relu4"], float16=True)
    out["fm16"] = {k: {"dtype": v.dtype.name, "shape": list(v.shape), "data": flat(v)} for k, v in fm16.items()}
    e = c.explain("cnn", png_path, method="gradcam")
    out["gradcam"] = {"heatmap": flat(e.heatmap), "targets": e.targets, "layers": e.layers, "score": e.score}
    g = c.gradients("cnn", x, target=3)
    out["gradients"] = {k: flat(v) for k, v in g.items()}
print(json.dumps(out))
`;

describe('InspectorClient against a real server', () => {
  let server;
  let client;
  let modelPath;
  let info;
  let ref;
  let x;
  let png;
  let pngPath;
  const uploads = [];

  before(async () => {
    server = await startServer();
    modelPath = path.join(server.dir, 'small_cnn.onnx');
    writeSmallCnn(modelPath, 1);
    client = new InspectorClient(server.target, { timeout: 60 });
    x = { dtype: 'float32', shape: [1, 3, SIZE, SIZE],
      data: Float32Array.from({ length: 3 * SIZE * SIZE }, (_, i) => Math.sin(i * 0.37) * 1.5) };
    const xPath = path.join(server.dir, 'x.f32');
    fs.writeFileSync(xPath, Buffer.from(x.data.buffer));
    png = makePng(40, 30, (px, py) => [(px * 6) % 256, (py * 8) % 256, ((px + py) * 5) % 256]);
    pngPath = path.join(server.dir, 'image.png');
    fs.writeFileSync(pngPath, png);
    info = await client.loadModel(modelPath, { name: 'cnn', chunkSize: 4096, onProgress: (sent, total) => uploads.push([sent, total]) });
    ref = python(REFERENCE, [server.target, modelPath, xPath, pngPath]);
  });

  after(async () => {
    if (client) client.close();
    if (server) await server.stop();
  });

  it('uploads a model in chunks, reporting the bytes sent', async () => {
    const size = fs.statSync(modelPath).size;
    assert.ok(uploads.length >= Math.ceil(size / 4096), `${uploads.length} progress events`);
    assert.deepEqual(uploads.at(-1), [size, size]);
    for (let i = 1; i < uploads.length; i++) assert.ok(uploads[i][0] > uploads[i - 1][0]);
    assert.match(info.id, /^[0-9a-f]{64}$/);
    assert.equal(info.name, 'cnn');
    assert.equal(info.sizeBytes, size);
    assert.deepEqual(info.inputs, [{ name: 'input', dtype: 'float32', shape: ['N', 3, SIZE, SIZE] }]);
    assert.deepEqual(info.outputs, [{ name: 'logits', dtype: 'float32', shape: ['N', 10] }]);
    assert.equal(info.differentiable, true);
    const conv1 = info.layers.find((l) => l.name === 'conv1');
    assert.equal(conv1.opType, 'Conv');
    assert.deepEqual(conv1.weightNames, ['conv1.weight', 'conv1.bias']);
    // the same bytes from a Buffer give the same model
    const again = await client.loadModel(fs.readFileSync(modelPath), { name: 'cnn-buffer' });
    assert.equal(again.id, info.id);
    assert.equal(again.name, 'cnn-buffer');
    assert.deepEqual([...again.names].sort(), ['cnn', 'cnn-buffer']);
  });

  it('moves a name from another model only with replace', async () => {
    const other = path.join(server.dir, 'other.onnx');
    writeSmallCnn(other, 4);
    await client.loadModel(modelPath, { name: 'spare' });
    await assert.rejects(client.loadModel(other, { name: 'spare' }),
      (e) => e.code === status.FAILED_PRECONDITION && /spare/.test(e.details));
    const moved = await client.loadModel(other, { name: 'spare', replace: true });
    assert.notEqual(moved.id, info.id);
    assert.deepEqual(moved.names, ['spare']);
    assert.ok(!(await client.modelInfo(info.id)).names.includes('spare'));
  });

  it('lists models and reads one by name and by id prefix', async () => {
    const models = await client.listModels();
    assert.ok(models.some((m) => m.id === info.id));
    assert.equal((await client.modelInfo('cnn')).id, info.id);
    const byPrefix = await client.modelInfo(info.id.slice(0, 12));
    assert.equal(byPrefix.id, info.id);
    assert.equal(byPrefix.layers.length, info.layers.length);
    assert.deepEqual(await client.quarantinedModels(), []);
  });

  it('infers a tensor as the Python client and onnxruntime do', async () => {
    const r = await client.infer('cnn', x);
    const logits = r.outputs.logits;
    assert.equal(logits.dtype, 'float32');
    assert.deepEqual(logits.shape, [1, 10]);
    assert.ok(logits.data instanceof Float32Array);
    assert.equal(r.modelId, info.id);
    assert.ok(r.providers.includes('CPUExecutionProvider'));
    assert.ok(maxAbsDiff(logits.data, ref.infer) <= 1e-6, 'vs the Python client');
    assert.ok(maxAbsDiff(logits.data, ref.ort) <= 1e-5, 'vs onnxruntime');
  });

  it('infers encoded images: a Buffer, a path, a batch of both; stacked tensors', async () => {
    const fromBuffer = (await client.infer('cnn', png)).outputs.logits;
    const fromPath = (await client.infer('cnn', pngPath)).outputs.logits;
    assert.deepEqual(fromBuffer.shape, [1, 10]);
    assert.ok(maxAbsDiff(fromBuffer.data, ref.infer_png) <= 1e-6);
    assert.deepEqual(fromPath.data, fromBuffer.data);
    const batch = (await client.infer('cnn', [png, pngPath])).outputs.logits;
    assert.deepEqual(batch.shape, [2, 10]);
    assert.ok(maxAbsDiff(batch.data.subarray(10), ref.infer_png) <= 1e-5);
    const one = { dtype: 'float32', shape: [3, SIZE, SIZE], data: x.data };
    const stacked = (await client.infer('cnn', [one, one])).outputs.logits;
    assert.deepEqual(stacked.shape, [2, 10]);
    assert.ok(maxAbsDiff(stacked.data.subarray(0, 10), ref.ort) <= 1e-5);
    assert.ok(maxAbsDiff(stacked.data.subarray(10), ref.ort) <= 1e-5);
  });

  it('returns feature maps with the Python client\'s names, shapes and values', async () => {
    const fm = await client.featureMaps('cnn', x, ['Relu']);
    assert.deepEqual(Object.keys(fm.tensors).sort(), Object.keys(ref.fm).sort());
    assert.deepEqual(fm.names, Object.keys(ref.fm));
    for (const [name, t] of Object.entries(fm.tensors)) {
      assert.equal(t.dtype, 'float32');
      assert.deepEqual(t.shape, ref.fm[name].shape, name);
      assert.ok(maxAbsDiff(t.data, ref.fm[name].data) <= 1e-6, name);
    }
    assert.deepEqual(fm.tensors.relu1_out.shape, [1, 8, SIZE, SIZE]);
  });

  it('reassembles items larger than one message (1 MiB chunks)', async () => {
    const one = { dtype: 'float32', shape: [3, SIZE, SIZE], data: x.data };
    const n = 40; // relu1_out: 40 x 8 x 32 x 32 floats = 1.25 MiB
    const fm = await client.featureMaps('cnn', Array(n).fill(one), ['relu1']);
    const t = fm.tensors.relu1_out;
    assert.deepEqual(t.shape, [n, 8, SIZE, SIZE]);
    const per = 8 * SIZE * SIZE;
    for (const i of [0, 17, n - 1]) {
      assert.ok(maxAbsDiff(t.data.subarray(i * per, (i + 1) * per), ref.fm.relu1_out.data) <= 1e-5, `image ${i}`);
    }
  });

  it('decodes float16 feature maps to Float32Array, equal to numpy\'s float16', async () => {
    const fm16 = await client.featureMaps('cnn', x, ['relu1', 'relu4'], { float16: true });
    const fm32 = await client.featureMaps('cnn', x, ['relu1', 'relu4']);
    assert.deepEqual(Object.keys(fm16.tensors).sort(), Object.keys(ref.fm16).sort());
    for (const [name, t] of Object.entries(fm16.tensors)) {
      assert.equal(t.dtype, 'float16');
      assert.equal(ref.fm16[name].dtype, 'float16');
      assert.ok(t.data instanceof Float32Array);
      assert.deepEqual(t.shape, ref.fm16[name].shape);
      assert.equal(maxAbsDiff(t.data, ref.fm16[name].data), 0, `${name}: the very same halves`);
      const full = fm32.tensors[name].data;
      for (let i = 0; i < full.length; i++) {
        assert.ok(Math.abs(t.data[i] - full[i]) <= Math.abs(full[i]) * 2 ** -11 + 2 ** -24, `${name}[${i}]`);
      }
    }
  });

  it('renders feature maps as PNGs and returns per-channel statistics', async () => {
    const pngs = await client.renderFeatureMaps('cnn', x, ['relu1', 'relu4'], { topK: 4, cmap: 'magma' });
    assert.deepEqual(Object.keys(pngs).sort(), ['relu1_out', 'relu4_out']);
    for (const p of Object.values(pngs)) assert.ok(isPng(p));
    const stats = await client.featureStats('cnn', x, ['relu4']);
    assert.deepEqual(Object.keys(stats), ['relu4_out']);
    const { max, mean } = stats.relu4_out;
    assert.deepEqual(max.shape, [16]);
    const relu4 = ref.fm.relu4_out;
    const hw = relu4.shape[2] * relu4.shape[3];
    for (let ch = 0; ch < 16; ch++) {
      const values = relu4.data.slice(ch * hw, (ch + 1) * hw);
      assert.ok(Math.abs(max.data[ch] - Math.max(...values)) <= 1e-5, `max of channel ${ch}`);
      const m = values.reduce((a, b) => a + b, 0) / hw;
      assert.ok(Math.abs(mean.data[ch] - m) <= 1e-4, `mean of channel ${ch}`);
    }
  });

  it('returns weights equal to the model\'s initializers, and filter PNGs', async () => {
    const w = await client.weights('cnn', ['conv1']);
    const t = w.tensors['conv1.weight'];
    assert.deepEqual(t.shape, ref.conv1_weight.shape);
    assert.equal(maxAbsDiff(t.data, ref.conv1_weight.data), 0);
    assert.equal(w.layers['conv1.weight'].layer, 'conv1');
    const pngs = await client.renderWeights('cnn', ['conv1']);
    assert.ok(isPng(pngs['conv1.weight']));
  });

  it('computes gradients as the Python client does', async () => {
    const g = await client.gradients('cnn', x, { target: 3 });
    assert.deepEqual(Object.keys(g.gradients), ['input']);
    assert.deepEqual(g.gradients.input.shape, [1, 3, SIZE, SIZE]);
    assert.deepEqual(g.targets, ['logits[3]']);
    assert.equal(g.scores.length, 1);
    assert.ok(Math.abs(g.scores[0] - ref.ort[3]) <= 1e-5);
    assert.ok(maxAbsDiff(g.gradients.input.data, ref.gradients.input) <= 1e-6);
  });

  it('explains with Grad-CAM: a heatmap in [0, 1] at input size and a PNG overlay', async () => {
    const e = await client.explain('cnn', png, { method: 'gradcam' });
    assert.equal(e.method, 'gradcam');
    assert.equal(e.heatmap.dtype, 'float32');
    assert.deepEqual(e.heatmap.shape, [1, SIZE, SIZE]);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of e.heatmap.data) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    assert.ok(lo >= 0 && hi <= 1 && hi > lo, `heatmap range [${lo}, ${hi}]`);
    assert.equal(e.layerHeatmap.shape[0], 1);
    assert.equal(e.attribution, null);
    assert.equal(e.overlayPng.length, 1);
    assert.ok(isPng(e.overlayPng[0]));
    assert.deepEqual(pngSize(e.overlayPng[0]), pngSize(png)); // drawn on the picture at its own size
    assert.ok(maxAbsDiff(e.heatmap.data, ref.gradcam.heatmap) <= 1e-5, 'vs the Python client');
    assert.deepEqual(e.targets, ref.gradcam.targets);
    assert.deepEqual(e.layers, ref.gradcam.layers);
    assert.ok(maxAbsDiff(e.score, ref.gradcam.score) <= 1e-5);
    assert.ok(e.scoreAfter === null || Array.isArray(e.scoreAfter));
    assert.equal(typeof e.params, 'object');
    assert.deepEqual(e.warnings, []);
    assert.deepEqual(e.extras, {});
  });

  it('takes the method as the third argument too', async () => {
    const e = await client.explain('cnn', x, 'saliency', { target: 1, skipOverlay: true });
    assert.equal(e.method, 'saliency');
    assert.deepEqual(e.targets, ['logits[1]']);
    assert.deepEqual(e.heatmap.shape, [1, SIZE, SIZE]);
  });

  it('passes method parameters and targets; evaluates the explanation', async () => {
    const e = await client.explain('cnn', x, { method: 'integrated_gradients', target: 2, steps: 4, skipOverlay: true });
    assert.equal(e.params.steps, 4);
    assert.deepEqual(e.targets, ['logits[2]']);
    assert.deepEqual(e.attribution.shape, [1, 3, SIZE, SIZE]);
    assert.deepEqual(e.overlayPng, []);
    const ev = await client.evaluate('cnn', x, e, { metrics: ['deletion', 'insertion'], steps: 4 });
    assert.deepEqual(ev.metrics.deletion.shape, [1]);
    assert.deepEqual(ev.metrics.insertion.shape, [1]);
    assert.ok(Number.isFinite(ev.metrics.deletion.data[0]));
  });

  it('lists the attribution methods', async () => {
    const methods = await client.methods();
    const gradcam = methods.find((m) => m.name === 'gradcam');
    assert.ok(gradcam, methods.map((m) => m.name).join(', '));
    assert.equal(gradcam.usesGradients, true);
    assert.equal(typeof gradcam.defaults, 'object');
    assert.ok(gradcam.doc.length > 0);
  });

  it('maximizes channels, reporting progress with preview PNGs', async () => {
    const events = [];
    const m = await client.maximize('cnn', 'relu4', [0, 1], { steps: 6, previewEvery: 2, onProgress: (p) => events.push(p) });
    assert.deepEqual(events.map((p) => p.step), [1, 2, 3, 4, 5, 6]);
    for (const p of events) {
      assert.equal(p.total, 6);
      assert.equal(p.values.length, 2);
      const previews = Object.keys(p.previews).sort();
      assert.deepEqual(previews, p.step % 2 === 0 ? ['0', '1'] : [], `previews of step ${p.step}`);
      for (const b of Object.values(p.previews)) assert.ok(isPng(b));
    }
    assert.equal(m.pngs.length, 2);
    for (const b of m.pngs) assert.ok(isPng(b));
    assert.deepEqual(m.objective.shape, [6, 2]);
    assert.deepEqual(m.initialObjective.shape, [2]);
    assert.deepEqual(m.finalObjective.shape, [2]);
    assert.deepEqual(m.inputs.shape, [2, 3, SIZE, SIZE]);
    assert.equal(m.layer, 'relu4_out');
    assert.deepEqual(m.channels, [0, 1]);
    assert.equal(m.steps, 6);
    assert.equal(m.kind, 'channel');
    assert.deepEqual(m.size, [SIZE, SIZE]);
    assert.equal(m.gain.length, 2);
    // the last progress values are the final objective's
    assert.ok(maxAbsDiff(events.at(-1).values, m.objective.data.subarray(10)) <= 1e-5);
  });

  it('cancels a call through an AbortSignal', async () => {
    const controller = new AbortController();
    const steps = [];
    const call = client.maximize('cnn', 'relu4', [0], {
      steps: 2000, signal: controller.signal,
      onProgress: (p) => {
        steps.push(p.step);
        if (p.step === 3) controller.abort();
      },
    });
    await assert.rejects(call, (e) => e.code === status.CANCELLED && e.codeName === 'CANCELLED');
    assert.ok(steps.length < 2000);
  });

  it('audits a stream of images into report.json with channel lists', async () => {
    const events = [];
    const a = await client.audit('cnn', [png, pngPath, png], { batchSize: 2, layers: ['relu4'], onProgress: (p) => events.push(p) });
    assert.equal(a.images, 3);
    assert.equal(a.report.images, 3);
    assert.equal(events.length, 2);
    const layer = a.report.layers.relu4_out;
    assert.ok(layer, Object.keys(a.report.layers).join(', '));
    assert.equal(layer.columns, undefined);
    assert.equal(layer.channels.length, 16);
    assert.equal(layer.channels[3].index, 3);
    assert.ok(Array.isArray(layer.channels[3].flags));
    assert.equal(typeof layer.channels[3].mean, 'number');
  });

  it('resumes an audit from a checkpoint', async () => {
    const events = [];
    const first = await client.audit('cnn', [png, png], { batchSize: 1, layers: ['relu4'], checkpointEvery: 1,
      onProgress: (p) => events.push(p) });
    assert.equal(first.images, 2);
    const state = events.at(-1).checkpoint;
    assert.ok(Buffer.isBuffer(state), 'a checkpoint with every batch');
    assert.equal(typeof JSON.parse(state.toString('utf8')), 'object');
    const resumed = await client.audit('cnn', [pngPath], { batchSize: 1, layers: ['relu4'], resumeState: state });
    assert.equal(resumed.images, 3);
    assert.equal(resumed.report.layers.relu4_out.channels.length, 16);
  });

  it('sends every input of a multi-input model by name', async () => {
    const file = path.join(server.dir, 'two_inputs.onnx');
    python(`
import json, sys
import onnx
from onnx import TensorProto, helper
img = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3, 4, 4])
nodes = [helper.make_node("Mul", ["a", "b"], ["prod"], name="mul"),
         helper.make_node("GlobalAveragePool", ["prod"], ["gap"], name="gap"),
         helper.make_node("Flatten", ["gap"], ["logits"], name="flatten")]
graph = helper.make_graph(nodes, "two", [img("a"), img("b")],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
onnx.checker.check_model(model)
open(sys.argv[1], "wb").write(model.SerializeToString())
print("{}")`, [file]);
    await client.loadModel(file, { name: 'two' });
    const a = Float32Array.from({ length: 48 }, (_, i) => i / 48);
    const b = Float32Array.from({ length: 48 }, (_, i) => 1 - i / 96);
    const r = await client.infer('two', { a: { dtype: 'float32', shape: [1, 3, 4, 4], data: a },
      b: { shape: [1, 3, 4, 4], data: b } });
    const expected = [0, 1, 2].map((c) => {
      let s = 0;
      for (let i = 0; i < 16; i++) s += a[c * 16 + i] * b[c * 16 + i];
      return s / 16;
    });
    assert.deepEqual(r.outputs.logits.shape, [1, 3]);
    assert.ok(maxAbsDiff(r.outputs.logits.data, expected) <= 1e-6);
    // a Map works as well
    const r2 = await client.infer('two', new Map([['a', { shape: [1, 3, 4, 4], data: a }], ['b', { shape: [1, 3, 4, 4], data: b }]]));
    assert.deepEqual(r2.outputs.logits.data, r.outputs.logits.data);
  });

  it('runs examples/explain.js', () => {
    const out = path.join(server.dir, 'overlay.png');
    const stdout = require('node:child_process').execFileSync(process.execPath,
      [path.join(__dirname, '..', 'examples', 'explain.js'), modelPath, pngPath, out, '--server', server.target],
      { stdio: ['ignore', 'pipe', 'ignore'] });
    const report = JSON.parse(stdout.toString());
    assert.equal(report.model, info.id);
    assert.ok(isPng(fs.readFileSync(out)));
    let best = 0;
    for (let i = 1; i < 10; i++) if (ref.infer_png[i] > ref.infer_png[best]) best = i;
    assert.equal(report.top1, best);
  });

  it('surfaces gRPC status codes and details', async () => {
    const missing = await client.modelInfo('no-such-model').then(() => null, (e) => e);
    assert.ok(missing instanceof InspectorError);
    assert.equal(missing.code, status.NOT_FOUND);
    assert.equal(missing.codeName, 'NOT_FOUND');
    assert.match(missing.details, /no-such-model/);
    assert.match(missing.message, /^NOT_FOUND: /);
    // a streaming call fails the same way
    await assert.rejects(client.infer('no-such-model', x), (e) => e.code === status.NOT_FOUND && /no-such-model/.test(e.details));
    // a bad layer is INVALID_ARGUMENT naming it
    await assert.rejects(client.featureMaps('cnn', x, ['no_such_layer']),
      (e) => e.code === status.INVALID_ARGUMENT && /no_such_layer/.test(e.details));
    // a bad input tensor
    await assert.rejects(client.infer('cnn', { dtype: 'float32', shape: [1, 3, 5, 5], data: new Float32Array(75) }),
      (e) => e.code === status.INVALID_ARGUMENT);
    // arguments refused before any call
    await assert.rejects(client.infer('cnn', 42), TypeError);
  });

  it('unloads a model', async () => {
    const id = await client.unloadModel('cnn-buffer');
    assert.equal(id, info.id);
    await assert.rejects(client.modelInfo('cnn-buffer'), (e) => e.code === status.NOT_FOUND);
  });
});

'use strict';
// InspectorClient: the Node.js client of the inspector gRPC service (inspector.v1).

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const { assemble } = require('./assemble');
const { encodeTensor, stackTensors, isTensor, toList } = require('./tensor');
const { fromStruct, toStruct } = require('./struct');
const { DEFAULT_DIR, Probe, SharedMemoryError, isLocalTarget, usableDir } = require('./shm');

const PROTO_PATH = path.join(__dirname, '..', 'proto', 'inspector.proto');
const UPLOAD_CHUNK = 1 << 20;
const STATUS_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([k, v]) => [v, k]));

let PACKAGE = null;
function inspectorPackage() {
  if (PACKAGE === null) {
    const definition = protoLoader.loadSync(PROTO_PATH, {
      keepCase: true, longs: Number, enums: String, defaults: false, arrays: true, objects: true, oneofs: true,
    });
    PACKAGE = grpc.loadPackageDefinition(definition).inspector.v1;
  }
  return PACKAGE;
}

/** A failed call: `code` is the gRPC status code (number), `codeName` its name, `details` the server's text. */
class InspectorError extends Error {
  constructor(err) {
    const code = typeof err.code === 'number' ? err.code : grpc.status.UNKNOWN;
    const codeName = STATUS_NAMES[code] || String(code);
    const details = err.details !== undefined ? err.details : err.message;
    super(`${codeName}: ${details}`);
    this.name = 'InspectorError';
    this.code = code;
    this.codeName = codeName;
    this.details = details;
    this.metadata = err.metadata;
    this.cause = err;
  }
}

function wrapError(err) {
  if (err instanceof InspectorError) return err;
  if (err && typeof err.code === 'number' && 'details' in err) return new InspectorError(err);
  return err;
}

// Options of each call that are not the method's parameters (everything else becomes params).
const CALL_OPTIONS = ['timeout', 'signal'];

class InspectorClient {
  /**
   * @param {string} target "host:port" (default 127.0.0.1:50051)
   * @param {object} [options] token, timeout (seconds), maxMessageMb, credentials, tlsCa, tlsCert,
   *   tlsKey, sharedMemory (null: offer it when the target is local and shmDir writable), shmDir
   */
  constructor(target = '127.0.0.1:50051', options = {}) {
    if (typeof target === 'object' && target !== null) {
      options = target;
      target = options.target || '127.0.0.1:50051';
    }
    const { token = null, timeout = null, maxMessageMb = 64, tlsCa = null, tlsCert = null, tlsKey = null } = options;
    let { credentials = null } = options;
    const limit = maxMessageMb * 1024 * 1024;
    const channelOptions = {
      'grpc.max_receive_message_length': limit,
      'grpc.max_send_message_length': limit,
      ...(options.channelOptions || {}),
    };
    if (credentials === null && (tlsCa || tlsCert || tlsKey)) {
      if (Boolean(tlsCert) !== Boolean(tlsKey)) {
        throw new TypeError('give both tlsCert and tlsKey for mutual TLS, or neither');
      }
      credentials = grpc.credentials.createSsl(
        tlsCa ? readPem(tlsCa) : null, tlsKey ? readPem(tlsKey) : null, tlsCert ? readPem(tlsCert) : null);
    }
    const Stub = inspectorPackage().Inspector;
    this.target = target;
    this._stub = new Stub(target, credentials || grpc.credentials.createInsecure(), channelOptions);
    this._token = token;
    this.timeout = timeout;
    this._shmDir = path.resolve(options.shmDir || DEFAULT_DIR);
    let sharedMemory = options.sharedMemory ?? null;
    if (sharedMemory === null) sharedMemory = isLocalTarget(target) && usableDir(this._shmDir);
    this._probe = sharedMemory ? new Probe(this._shmDir) : null;
    /** Items and bytes that came through shared memory so far. */
    this.sharedMemoryStats = { sharedItems: 0, sharedBytes: 0 };
  }

  /** Close the channel and remove our probe file; results already returned stay valid. */
  close() {
    this._stub.close();
    if (this._probe !== null) this._probe.close();
  }

  _metadata() {
    const md = new grpc.Metadata();
    if (this._token) md.set('authorization', `Bearer ${this._token}`);
    return md;
  }

  /** Metadata of calls returning ResultChunks: the probe's path and token when offered. */
  _streamMetadata() {
    const md = this._metadata();
    if (this._probe !== null) for (const [k, v] of this._probe.metadata()) md.set(k, v);
    return md;
  }

  _assemble(call, onProgress) {
    return assemble(call, onProgress, this._probe !== null ? this._shmDir : null, this.sharedMemoryStats);
  }

  _callOptions(opts = {}) {
    const timeout = opts.timeout !== undefined ? opts.timeout : this.timeout;
    return timeout ? { deadline: Date.now() + timeout * 1000 } : {};
  }

  _unary(method, request, opts = {}) {
    return new Promise((resolve, reject) => {
      let unwatch = () => {};
      const call = this._stub[method](request, this._metadata(), this._callOptions(opts), (err, resp) => {
        unwatch();
        if (err) reject(wrapError(err));
        else resolve(resp);
      });
      unwatch = watchSignal(call, opts.signal);
    });
  }

  async _result(method, request, opts = {}, onProgress = null) {
    const call = this._stub[method](request, this._streamMetadata(), this._callOptions(opts));
    const unwatch = watchSignal(call, opts.signal);
    try {
      return await this._assemble(call, onProgress);
    } catch (err) {
      call.cancel();
      throw wrapError(err);
    } finally {
      unwatch();
    }
  }

  // ---- models -------------------------------------------------------------------------------
  /**
   * Upload a local model file (path) or its bytes (Buffer), streamed in chunks, or ask the
   * server to read `serverPath`. onProgress(bytesSent, totalBytes) after each chunk.
   */
  async loadModel(pathOrBytes, opts = {}) {
    if (pathOrBytes !== null && typeof pathOrBytes === 'object' && !ArrayBuffer.isView(pathOrBytes) &&
        !(pathOrBytes instanceof ArrayBuffer) && !(pathOrBytes instanceof URL)) {
      opts = pathOrBytes;
      pathOrBytes = null;
    }
    const { serverPath = null, name = '', preprocess = null, providers = [], onProgress = null,
      chunkSize = UPLOAD_CHUNK, replace = false } = opts;
    const spec = preprocessMessage(preprocess);
    if (serverPath !== null) {
      if (pathOrBytes !== null && pathOrBytes !== undefined) {
        throw new TypeError('give either a model path or bytes, or serverPath, not both');
      }
      const req = { server_path: String(serverPath), name: name || '', preprocess: spec, providers: [...providers], replace: Boolean(replace) };
      return modelInfo(await this._unary('LoadModel', req, opts));
    }
    if (pathOrBytes === null || pathOrBytes === undefined) {
      throw new TypeError('give a model path, its bytes, or serverPath');
    }
    let data = null;
    let size;
    if (typeof pathOrBytes === 'string' || pathOrBytes instanceof URL) {
      size = (await fs.promises.stat(pathOrBytes)).size;
    } else {
      data = Buffer.from(pathOrBytes instanceof ArrayBuffer ? new Uint8Array(pathOrBytes) :
        new Uint8Array(pathOrBytes.buffer, pathOrBytes.byteOffset, pathOrBytes.byteLength));
      size = data.length;
    }
    return new Promise((resolve, reject) => {
      let failed = false;
      let settle;
      const settled = new Promise((r) => { settle = r; });
      const call = this._stub.UploadModel(this._metadata(), this._callOptions(opts), (err, resp) => {
        settle();
        if (err) {
          failed = true;
          reject(wrapError(err));
        } else {
          resolve(modelInfo(resp));
        }
      });
      const unwatch = watchSignal(call, opts.signal);
      const write = streamWriter(call, settled);
      (async () => {
        await write({ header: { name: name || '', preprocess: spec, providers: [...providers], size, replace: Boolean(replace) } });
        let sent = 0;
        const chunks = data !== null ? sliceChunks(data, chunkSize) :
          fs.createReadStream(pathOrBytes, { highWaterMark: chunkSize });
        for await (const chunk of chunks) {
          if (failed) break;
          await write({ chunk });
          sent += chunk.length;
          if (onProgress) onProgress(sent, size);
        }
        call.end();
      })().catch((err) => {
        call.cancel();
        reject(err);
      }).finally(unwatch);
    });
  }

  async listModels(opts = {}) {
    const resp = await this._unary('ListModels', {}, opts);
    return (resp.models || []).map(modelInfo);
  }

  /** Store entries the server found corrupt on start and moved aside ("<id>-<time>"). */
  async quarantinedModels(opts = {}) {
    const resp = await this._unary('ListModels', {}, opts);
    return [...(resp.quarantined || [])];
  }

  async modelInfo(model, opts = {}) {
    return modelInfo(await this._unary('GetModelInfo', { model }, opts));
  }

  /** Remove a model from the server's store; resolves to its id. */
  async unloadModel(model, opts = {}) {
    return (await this._unary('UnloadModel', { model }, opts)).id;
  }

  // ---- running: options left out mean the server's default ----------------------------------
  /** The model's outputs by name: {outputs: {name: tensor}, modelId, providers, warnings}. */
  async infer(model, x, opts = {}) {
    const req = { model, input: inputMessage(x, opts.preprocess) };
    const w = await this._result('Infer', req, opts);
    return { outputs: w.group('output'), ...w.meta() };
  }

  /** Raw intermediate tensors keyed by tensor name (layers: tensor/node names, op types, "all"). */
  async featureMaps(model, x, layers = null, opts = {}) {
    return this.featureMapResults(model, x, layers, { ...opts, raw: true, png: false, stats: false });
  }

  /** One PNG channel grid per tensor (a Buffer), for image `image` (default 0) of the batch. */
  async renderFeatureMaps(model, x, layers = null, opts = {}) {
    const res = await this.featureMapResults(model, x, layers, { ...opts, raw: false, png: true, stats: false });
    const image = opts.image || 0;
    const out = {};
    for (const [name, pngs] of Object.entries(res.pngs)) if (image < pngs.length) out[name] = pngs[image];
    return out;
  }

  /** Per-channel min/max/mean/std/zero_fraction tensors per tensor name. */
  async featureStats(model, x, layers = null, opts = {}) {
    return (await this.featureMapResults(model, x, layers, { ...opts, raw: false, png: false, stats: true })).stats;
  }

  /** Everything FeatureMaps can return in one call: {tensors, pngs, stats, names, ...}. */
  async featureMapResults(model, x, layers = null, opts = {}) {
    const { raw = true, png = false, stats = false, float16 = false, cmap = '', normalize = '',
      channels = [], topK = 0, preprocess = null } = opts;
    const req = {
      model, input: inputMessage(x, preprocess), layers: names(layers), raw, png, stats, float16,
      render: { cmap: cmap || '', normalize: normalize || '', channels: Array.from(channels || [], Number), top_k: topK || 0 },
    };
    const w = await this._result('FeatureMaps', req, opts);
    const pngs = {};
    for (const [name, byIndex] of Object.entries(w.nested('png'))) {
      pngs[name] = Object.keys(byIndex).sort((a, b) => a - b).map((k) => byIndex[k]);
    }
    return {
      tensors: w.group('feature'), pngs, stats: w.nested('stats'), names: [...(w.info.tensors || [])], ...w.meta(),
    };
  }

  /** Conv/Gemm weights and biases keyed by initializer name (layers: node or tensor names). */
  async weights(model, layers = null, opts = {}) {
    return this.weightResults(model, layers, { ...opts, raw: true });
  }

  /** Filter grids (or weight histograms with {histogram: true}) as PNG Buffers by initializer name. */
  async renderWeights(model, layers = null, opts = {}) {
    const histogram = Boolean(opts.histogram);
    const res = await this.weightResults(model, layers, { ...opts, raw: false, png: !histogram, histogram });
    return histogram ? res.histograms : res.pngs;
  }

  async weightStats(model, layers = null, opts = {}) {
    return (await this.weightResults(model, layers, { ...opts, raw: false, stats: true })).stats;
  }

  /** Everything Weights can return in one call: {tensors, pngs, histograms, stats, layers, ...}. */
  async weightResults(model, layers = null, opts = {}) {
    const { raw = true, png = false, histogram = false, stats = false, mode = '', cmap = '' } = opts;
    const req = { model, layers: names(layers), raw, png, histogram, stats, mode: mode || '', cmap: cmap || '' };
    const w = await this._result('Weights', req, opts);
    const layerInfo = {};
    for (const e of w.info.weights || []) {
      const { initializer, ...rest } = e;
      layerInfo[initializer] = rest;
    }
    return {
      tensors: w.group('weight'), pngs: w.group('png'), histograms: w.group('histogram'), stats: w.nested('stats'),
      layers: layerInfo, ...w.meta(),
    };
  }

  /** d(target)/d(wrt) per wrt tensor (default: the model input; target default: top-1). */
  async gradients(model, x, opts = {}) {
    const { wrt = null, target = null, policy = '', preprocess = null } = opts;
    const req = { model, input: inputMessage(x, preprocess), wrt: names(wrt), policy: policy || '' };
    if (target !== null && target !== undefined) req.target = targetMessage(target);
    const w = await this._result('Gradients', req, opts);
    const i = w.info;
    return {
      gradients: w.group('gradient'), start: i.start || '', policy: i.policy || '', targets: [...(i.targets || [])],
      scores: (i.scores || []).map(Number), wrt: [...(i.wrt || [])], ...w.meta(),
    };
  }

  /**
   * Run an attribution method (see methods()); the method may come third, before the options.
   * Options: method, target, layer (or layers),
   * overlayCmap, overlayAlpha, skipOverlay, preprocess, params; any other option is a method
   * parameter (steps, baseline, samples, ...), as the Python client's keyword arguments.
   */
  async explain(model, x, opts = {}, more = {}) {
    if (typeof opts === 'string') opts = { ...more, method: opts }; // explain(model, x, 'gradcam', {...})
    const { method = '', target = null, layer = null, layers = null, overlayCmap = '', overlayAlpha = null,
      skipOverlay = false, preprocess = null, params = {}, ...rest } = opts;
    const overlay = { cmap: overlayCmap || '', skip: Boolean(skipOverlay) };
    if (overlayAlpha !== null && overlayAlpha !== undefined) overlay.alpha = overlayAlpha;
    const req = {
      model, input: inputMessage(x, preprocess), method: method || '', layers: names(layers ?? layer),
      params: toStruct({ ...params, ...methodParams(rest) }), overlay,
    };
    if (target !== null && target !== undefined) req.target = targetMessage(target);
    const w = await this._result('Explain', req, opts);
    const i = w.info;
    const heat = w.group('heatmap');
    return {
      method: i.method || '',
      heatmap: heat.heatmap ?? null,
      layerHeatmap: w.group('layer_heatmap').layer_heatmap ?? null,
      attribution: w.group('attribution').attribution ?? null,
      overlayPng: w.byImage('overlay'),
      score: (i.score || []).map(Number),
      scoreAfter: i.score_after === undefined || i.score_after === null ? null : i.score_after.map(Number),
      layers: [...(i.layers || [])],
      targets: [...(i.targets || [])],
      params: i.params || {},
      extras: w.group('extra'),
      ...w.meta(),
    };
  }

  /**
   * Faithfulness metrics of a heatmap (an explain() result or an [N, H, W] tensor): deletion,
   * insertion, road, drop_increase, pointing_game. Other options are metric parameters.
   */
  async evaluate(model, x, explanation, opts = {}) {
    const { metrics = [], target = null, preprocess = null, params = {}, ...rest } = opts;
    const isExplanation = explanation && typeof explanation === 'object' && 'heatmap' in explanation &&
      'method' in explanation;
    const heat = isExplanation ? explanation.heatmap : explanation;
    const req = {
      model, input: inputMessage(x, preprocess), heatmap: encodeTensor(heat), metrics: [...(metrics || [])],
      params: toStruct({ ...params, ...methodParams(rest) }),
    };
    let t = target;
    if ((t === null || t === undefined) && isExplanation) t = targetFromNames(explanation.targets);
    if (t !== null && t !== undefined) req.target = targetMessage(t);
    const w = await this._result('Evaluate', req, opts);
    return { metrics: w.group('metric'), ...w.meta() };
  }

  /** The attribution methods: [{name, doc, usesGradients, defaults}]. */
  async methods(opts = {}) {
    const resp = await this._unary('ListMethods', {}, opts);
    return (resp.methods || []).map((m) => ({
      name: m.name, doc: m.doc || '', usesGradients: Boolean(m.uses_gradients), defaults: fromStruct(m.defaults),
    }));
  }

  /**
   * Activation maximization of `channels` of `layer`. Options: steps, objective, previewEvery,
   * onProgress(progress) (step, total, values, message, previews: {image: PNG Buffer}); any other
   * option is an optimizer parameter.
   */
  async maximize(model, layer, channels, opts = {}) {
    const { steps = 0, objective = '', previewEvery = 0, onProgress = null, params = {}, ...rest } = opts;
    const req = {
      model, layer: layer || '', channels: Array.from(channels || [], Number), steps: steps || 0,
      objective: objective || '', params: toStruct({ ...params, ...methodParams(rest) }),
      preview_every: previewEvery || 0,
    };
    const w = await this._result('Maximize', req, opts, onProgress);
    const i = w.info;
    const obj = w.group('objective');
    return {
      inputs: w.group('inputs').inputs ?? null,
      pngs: w.byImage('png'),
      objective: obj.objective ?? null,
      initialObjective: obj.initial_objective ?? null,
      finalObjective: obj.final_objective ?? null,
      layer: i.layer || '',
      channels: (i.channels || []).map(Number),
      steps: Number(i.steps || 0),
      kind: i.objective || '',
      size: (i.size || []).map(Number),
      gain: (i.gain || []).map(Number),
      ...w.meta(),
    };
  }

  /**
   * Aggregated activation statistics over many images (paths, Buffers, or tensors; an iterable
   * or async iterable), streamed in batches of `batchSize`. Options: layers, batchSize, labels,
   * preprocess, onProgress (one event per batch; `.checkpoint` every `checkpointEvery` batches),
   * resumeState. Resolves to {report (report.json), images, channelStats, channelFlags, ...}.
   */
  async audit(model, images, opts = {}) {
    const { layers = null, batchSize = 8, labels = [], preprocess = null, onProgress = null,
      resumeState = null, checkpointEvery = 0 } = opts;
    const call = this._stub.AuditStats(this._streamMetadata(), this._callOptions(opts));
    const unwatch = watchSignal(call, opts.signal);
    const ended = new Promise((r) => {
      call.once('status', r);
      call.once('error', r);
      call.once('close', r);
    });
    const write = streamWriter(call, ended);
    let over = false;
    ended.then(() => { over = true; });
    let writeError = null;
    const writer = (async () => {
      await write({
        header: {
          model, layers: names(layers), preprocess: preprocessMessage(preprocess), labels: Array.from(labels || [], Number),
          resume_state: resumeState ? Buffer.from(resumeState) : Buffer.alloc(0),
          checkpoint_every: checkpointEvery || 0, columnar: true,
        },
      });
      let batch = [];
      for await (const item of images) {
        if (over) break;
        if (isTensor(item)) {
          await write({ batch: inputMessage(item, null) });
          continue;
        }
        batch.push(item);
        if (batch.length === batchSize) {
          await write({ batch: inputMessage(batch, null) });
          batch = [];
        }
      }
      if (batch.length) await write({ batch: inputMessage(batch, null) });
      call.end();
    })().catch((err) => {
      writeError = err;
      call.cancel();
    });
    let w;
    try {
      w = await this._assemble(call, onProgress);
    } catch (err) {
      call.cancel();
      throw writeError || wrapError(err);
    } finally {
      unwatch();
    }
    await writer;
    if (writeError) throw writeError;
    const parts = w.group('audit');
    const report = JSON.parse(parts.audit.toString('utf8'));
    const channelStats = parts.channel_stats ?? null;
    const channelFlags = parts.channel_flags ?? null;
    return {
      report: channelStats ? expandColumns(report, channelStats, channelFlags) : report,
      images: Number(w.info.images || 0),
      channelStats,
      channelFlags,
      ...w.meta(),
    };
  }
}

if (typeof Symbol.dispose === 'symbol') {
  // `using client = new InspectorClient(...)` closes it at the end of the block
  InspectorClient.prototype[Symbol.dispose] = function dispose() {
    this.close();
  };
}

// ---- conversions ------------------------------------------------------------------------------
function readPem(v) {
  return Buffer.isBuffer(v) ? v : fs.readFileSync(v);
}

/** write(msg) for a client stream: resolves once the stream takes more (or the call is over). */
function streamWriter(call, over) {
  let finished = false;
  over.then(() => { finished = true; });
  return (msg) => new Promise((ok) => {
    if (finished || call.write(msg)) {
      ok();
      return;
    }
    call.once('drain', ok);
    over.then(ok);
  });
}

function* sliceChunks(data, size) {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

function watchSignal(call, signal) {
  if (!signal) return () => {};
  const abort = () => call.cancel();
  if (signal.aborted) abort();
  signal.addEventListener('abort', abort, { once: true });
  return () => signal.removeEventListener('abort', abort);
}

function names(v) {
  if (v === null || v === undefined) return [];
  return typeof v === 'string' ? [v] : Array.from(v, String);
}

function methodParams(rest) {
  const out = {};
  for (const [k, v] of Object.entries(rest)) if (!CALL_OPTIONS.includes(k) && v !== undefined) out[k] = v;
  return out;
}

function isImageBytes(x) {
  return Buffer.isBuffer(x) || x instanceof Uint8Array || x instanceof ArrayBuffer;
}

function readImage(x) {
  if (typeof x === 'string' || x instanceof URL) return fs.readFileSync(x);
  if (x instanceof ArrayBuffer) return Buffer.from(new Uint8Array(x));
  if (ArrayBuffer.isView(x)) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  throw new TypeError('an input is a tensor {dtype, shape, data}, image bytes (Buffer), a file path, ' +
    'an array of those, or an object of inputs by name');
}

/**
 * An input as the proto's Input: a tensor {dtype, shape, data} (used as is), encoded image
 * bytes (Buffer), a file path, an array of tensors (stacked) or of images (a batch), or an
 * object / Map of inputs by name (multi-input models).
 */
function inputMessage(x, preprocess) {
  const msg = {};
  if (x instanceof Map || (x !== null && typeof x === 'object' && !isTensor(x) && !Array.isArray(x) &&
      !isImageBytes(x) && !(x instanceof URL))) {
    msg.named = {};
    for (const [name, value] of (x instanceof Map ? x : Object.entries(x))) msg.named[String(name)] = inputMessage(value, null);
  } else if (Array.isArray(x) && x.length && x.every(isTensor)) {
    msg.tensor = stackTensors(x);
  } else if (isTensor(x)) {
    msg.tensor = encodeTensor(x);
  } else if (Array.isArray(x)) {
    msg.images = { images: x.map(readImage) };
  } else {
    msg.images = { images: [readImage(x)] };
  }
  if (preprocess) msg.preprocess = preprocessMessage(preprocess);
  return msg;
}

const PREPROCESS_FIELDS = ['resize', 'crop', 'scale', 'mean', 'std', 'channelOrder', 'layout', 'dtype'];

/** A preprocessing spec ({resize, crop, scale, mean, std, channelOrder, layout, dtype}) as the message. */
function preprocessMessage(spec) {
  const msg = {};
  if (!spec) return msg;
  const s = { ...spec };
  if ('channel_order' in s) {
    s.channelOrder = s.channel_order;
    delete s.channel_order;
  }
  const unknown = Object.keys(s).filter((k) => !PREPROCESS_FIELDS.includes(k));
  if (unknown.length) {
    throw new TypeError(`unknown preprocess fields: ${unknown.join(', ')}; known: ${PREPROCESS_FIELDS.join(', ')}`);
  }
  if (s.resize !== undefined && s.resize !== null) msg.resize = typeof s.resize === 'number' ? [s.resize] : Array.from(s.resize, Number);
  if (s.crop !== undefined && s.crop !== null) msg.crop = typeof s.crop === 'number' ? [s.crop, s.crop] : Array.from(s.crop, Number);
  if (s.scale !== undefined && s.scale !== null) msg.scale = Number(s.scale);
  if (s.mean) msg.mean = Array.from(s.mean, Number);
  if (s.std) msg.std = Array.from(s.std, Number);
  if (s.channelOrder) msg.channel_order = String(s.channelOrder);
  if (s.layout) msg.layout = String(s.layout);
  if (s.dtype) msg.dtype = String(s.dtype);
  return msg;
}

/** Only the fields the sender set (resize: a number or [H, W]). */
function preprocessFromMessage(m) {
  const out = {};
  if (!m) return out;
  if (m.resize && m.resize.length) out.resize = m.resize.length === 1 ? Number(m.resize[0]) : m.resize.map(Number);
  if (m.crop && m.crop.length) out.crop = m.crop.map(Number);
  if (m.scale !== undefined && m.scale !== null) out.scale = Number(m.scale);
  if (m.mean && m.mean.length) out.mean = m.mean.map(Number);
  if (m.std && m.std.length) out.std = m.std.map(Number);
  if (m.channel_order) out.channelOrder = m.channel_order;
  if (m.layout) out.layout = m.layout;
  if (m.dtype) out.dtype = m.dtype;
  return out;
}

const TARGET_FIELDS = ['tensor', 'index', 'classes', 'channel', 'box', 'mask', 'seed'];

/**
 * A target: a class index (number), several classes summed (array of numbers), a seed tensor,
 * or {tensor, index, classes, channel, box, mask, seed}.
 */
function targetMessage(t) {
  if (typeof t === 'number' || typeof t === 'bigint') return { index: [Number(t)] };
  if (isTensor(t)) return { seed: encodeTensor(t) };
  if (Array.isArray(t) || ArrayBuffer.isView(t)) return { classes: toList(t) };
  if (t && typeof t === 'object') {
    const unknown = Object.keys(t).filter((k) => !TARGET_FIELDS.includes(k));
    if (unknown.length) throw new TypeError(`unknown target fields: ${unknown.join(', ')}`);
    const msg = { tensor: t.tensor || '' };
    if (t.index !== undefined && t.index !== null) msg.index = typeof t.index === 'number' ? [t.index] : toList(t.index);
    if (t.classes) msg.classes = toList(t.classes);
    if (t.channel !== undefined && t.channel !== null) msg.channel = Number(t.channel);
    if (t.box) msg.box = toList(t.box);
    if (t.mask) msg.mask = encodeTensor(t.mask);
    if (t.seed) msg.seed = encodeTensor(t.seed);
    return msg;
  }
  throw new TypeError('a target is a class index, an array of classes, a seed tensor or a target object');
}

/** A class target recovered from an explanation's targets ("logits[281]") when all images share it. */
function targetFromNames(targets) {
  if (!targets || !targets.length || new Set(targets).size !== 1) return null;
  const m = /^(.*)\[([-\d, ]+)\]$/.exec(targets[0]);
  if (!m) return null;
  const index = m[2].split(',').map((s) => Number(s.trim()));
  if (index.some((v) => !Number.isInteger(v))) return null;
  return { tensor: m[1], index };
}

function tensorInfo(t) {
  let shape = null;
  if (t.rank_known) {
    shape = (t.shape || []).map((d) => {
      if (d.value === 'size' || (d.size !== undefined && d.size !== null)) return Number(d.size);
      if (d.value === 'param' || d.param) return d.param;
      return null;
    });
  }
  return { name: t.name || '', dtype: t.dtype || null, shape };
}

function modelInfo(m) {
  return {
    id: m.id || '',
    name: m.name || null,
    sizeBytes: Number(m.size_bytes || 0),
    inputs: (m.inputs || []).map(tensorInfo),
    outputs: (m.outputs || []).map(tensorInfo),
    opsets: Object.fromEntries(Object.entries(m.opsets || {}).map(([k, v]) => [k, Number(v)])),
    producer: m.producer || '',
    layers: (m.layers || []).map((l) => ({
      name: l.name || '',
      opType: l.op_type || '',
      inputs: [...(l.inputs || [])],
      outputs: (l.outputs || []).map(tensorInfo),
      parameterCount: Number(l.parameter_count || 0),
      hasWeights: Boolean(l.has_weights),
      weightNames: [...(l.weight_names || [])],
    })),
    preprocess: preprocessFromMessage(m.preprocess),
    differentiable: Boolean(m.differentiable),
    blockingOps: [...(m.blocking_ops || [])],
    created: Number(m.created || 0),
    providers: [...(m.providers || [])],
    names: [...(m.names || [])],
  };
}

// ---- audit's columnar form ------------------------------------------------------------------
const CHANNEL_FIELDS = ['mean', 'std', 'min', 'max', 'zero_fraction', 'active_fraction', 'saturation_fraction',
  'nonfinite_fraction', 'p1', 'p50', 'p99'];
const FLAGS = ['dead', 'rarely_active', 'saturated', 'range_outlier'];

/** The report.json form of a columnar report: each layer's "columns" becomes its channel objects. */
function expandColumns(report, stats, flags) {
  const total = stats.shape[1];
  for (const entry of Object.values(report.layers || {})) {
    const spec = entry.columns;
    if (!spec) continue;
    delete entry.columns;
    const channels = [];
    for (let c = 0; c < spec.count; c++) {
      const col = spec.offset + c;
      const ch = { index: c };
      for (const f of spec.fields) {
        const v = stats.data[CHANNEL_FIELDS.indexOf(f) * total + col];
        ch[f] = Number.isFinite(v) ? v : null;
      }
      const bits = flags.data[col];
      ch.flags = FLAGS.filter((_, i) => (bits >> i) & 1);
      channels.push(ch);
    }
    entry.channels = channels;
  }
  return report;
}

module.exports = {
  InspectorClient, InspectorError, SharedMemoryError, PROTO_PATH, inputMessage, targetMessage, preprocessMessage, targetFromNames,
  expandColumns, CHANNEL_FIELDS, FLAGS, status: grpc.status,
};

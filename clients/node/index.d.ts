// Type declarations of @inspector/client (hand-written; the code is lib/*.js).

import type { ChannelCredentials, Metadata } from '@grpc/grpc-js';

export type DType =
  | 'float32' | 'float64' | 'float16'
  | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'bool';

export type TypedArray =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

/**
 * A tensor as results hold it: C-order values in a TypedArray of the dtype (Float32Array for
 * float32 and for float16, whose values are decoded; BigInt64Array for int64; Uint8Array for bool).
 */
export interface Tensor<T extends TypedArray = TypedArray> {
  dtype: DType | string;
  shape: number[];
  data: T;
}

/** A tensor as an input: dtype defaults to the TypedArray's (float32 for plain arrays). */
export interface TensorInput {
  dtype?: DType | string;
  shape: ArrayLike<number>;
  /** Values (typed, plain or nested arrays), or raw little-endian bytes as a Buffer. */
  data: TypedArray | ArrayLike<number | bigint> | unknown[] | Buffer;
}

/** Encoded image bytes (PNG, JPEG, ...), or an image file path. */
export type ImageInput = Buffer | Uint8Array | ArrayBuffer | string | URL;

/**
 * A tensor (used as is), an image, an array of tensors (stacked into a batch) or of images
 * (a batch preprocessed by the model's spec), or every input of a multi-input model by name.
 */
export type Input =
  | TensorInput
  | ImageInput
  | Array<TensorInput>
  | Array<ImageInput>
  | { [inputName: string]: TensorInput | ImageInput | Array<ImageInput> | Array<TensorInput> }
  | Map<string, TensorInput | ImageInput | Array<ImageInput> | Array<TensorInput>>;

export interface Preprocess {
  /** One value: the shorter side to that size, keeping aspect. Two: [H, W]. */
  resize?: number | [number, number];
  /** [H, W] center crop (a number: square). */
  crop?: number | [number, number];
  scale?: number;
  mean?: number[];
  std?: number[];
  channelOrder?: 'RGB' | 'BGR';
  layout?: 'NCHW' | 'NHWC';
  dtype?: string;
}

/** What to differentiate or explain: a class index, several classes summed, a seed tensor, or the full form. */
export type Target =
  | number
  | number[]
  | TensorInput
  | {
    tensor?: string;
    index?: number | number[];
    classes?: number[];
    channel?: number;
    /** [y0, x0, y1, x1] */
    box?: number[];
    mask?: TensorInput;
    seed?: TensorInput;
  };

export type Dim = number | string | null;

export interface TensorInfo {
  name: string;
  dtype: string | null;
  /** null: rank unknown */
  shape: Dim[] | null;
}

export interface LayerInfo {
  name: string;
  opType: string;
  inputs: string[];
  outputs: TensorInfo[];
  parameterCount: number;
  hasWeights: boolean;
  weightNames: string[];
}

export interface ModelInfo {
  /** sha256 hex of the model bytes */
  id: string;
  name: string | null;
  sizeBytes: number;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  opsets: Record<string, number>;
  producer: string;
  /** empty in listModels() */
  layers: LayerInfo[];
  preprocess: Preprocess;
  differentiable: boolean;
  blockingOps: string[];
  /** unix time */
  created: number;
  providers: string[];
  /** every name (alias) of the model; `name` is the one asked for (servers that report them) */
  names: string[];
}

/** What every result says about how it was computed. */
export interface ResultMeta {
  modelId: string;
  providers: string[];
  warnings: string[];
}

export interface Inference extends ResultMeta {
  outputs: Record<string, Tensor>;
}

export interface FeatureMaps extends ResultMeta {
  /** raw [N, ...] tensors by tensor name */
  tensors: Record<string, Tensor>;
  /** one channel grid PNG per image */
  pngs: Record<string, Buffer[]>;
  /** per-channel statistics (min, max, mean, std, zero_fraction) */
  stats: Record<string, Record<string, Tensor>>;
  /** the tensors chosen, in order */
  names: string[];
}

export interface Weights extends ResultMeta {
  tensors: Record<string, Tensor>;
  pngs: Record<string, Buffer>;
  histograms: Record<string, Buffer>;
  stats: Record<string, Record<string, Tensor>>;
  /** initializer -> {layer, op_type, role} */
  layers: Record<string, Record<string, unknown>>;
}

export interface Gradients extends ResultMeta {
  gradients: Record<string, Tensor>;
  start: string;
  policy: string;
  /** per image, e.g. "logits[281]" */
  targets: string[];
  scores: number[];
  wrt: string[];
}

export interface Explanation extends ResultMeta {
  method: string;
  /** [N, H, W] in [0, 1] at input size */
  heatmap: Tensor<Float32Array>;
  /** [N, h, w] at layer resolution (CAMs) */
  layerHeatmap: Tensor<Float32Array> | null;
  /** input-space methods: raw signed, the input's shape */
  attribution: Tensor<Float32Array> | null;
  /** one overlay PNG per image */
  overlayPng: Buffer[];
  score: number[];
  scoreAfter: number[] | null;
  layers: string[];
  targets: string[];
  params: Record<string, unknown>;
  extras: Record<string, Tensor>;
}

export interface Evaluation extends ResultMeta {
  /** one value per image (curves [N, steps + 1]) */
  metrics: Record<string, Tensor>;
}

export interface Progress {
  step: number;
  total: number;
  values: number[];
  message: string;
  /** PNG previews by image index (maximize); "state": an audit checkpoint (JSON) */
  previews: Record<string, Buffer>;
  /** an audit's partial state, when this event carries one */
  readonly checkpoint: Buffer | null;
}

export interface Maximization extends ResultMeta {
  /** [N, ...] final images as model input tensors */
  inputs: Tensor<Float32Array>;
  /** one PNG per channel */
  pngs: Buffer[];
  /** [steps, N] */
  objective: Tensor<Float32Array>;
  initialObjective: Tensor<Float32Array>;
  finalObjective: Tensor<Float32Array>;
  layer: string;
  channels: number[];
  steps: number;
  /** the objective: channel, neuron, layer, logit, probability */
  kind: string;
  /** [H, W] */
  size: number[];
  gain: number[];
}

export interface AuditReport extends ResultMeta {
  /** report.json, every layer with its list of channel objects */
  report: Record<string, any>;
  images: number;
  /** float64 [11, channels of all layers] (CHANNEL_FIELDS rows) */
  channelStats: Tensor<Float64Array> | null;
  /** uint8 bit set per channel (FLAGS) */
  channelFlags: Tensor<Uint8Array> | null;
}

export interface MethodInfo {
  name: string;
  doc: string;
  usesGradients: boolean;
  defaults: Record<string, unknown>;
}

export interface ClientOptions {
  /** sent as "authorization: Bearer <token>" */
  token?: string | null;
  /** seconds per call (default: none) */
  timeout?: number | null;
  /** largest message either way (default 64) */
  maxMessageMb?: number;
  credentials?: ChannelCredentials | null;
  /** TLS: PEM root certificates (a path or the bytes) */
  tlsCa?: string | Buffer | null;
  /** mutual TLS: the client certificate chain and key (paths or bytes), both or neither */
  tlsCert?: string | Buffer | null;
  tlsKey?: string | Buffer | null;
  /** extra grpc-js channel options */
  channelOptions?: Record<string, unknown>;
  /**
   * Offer the shared-memory transport (large result tensors read from files in shmDir): null
   * (default) when the target is local and shmDir writable, true always, false never.
   */
  sharedMemory?: boolean | null;
  /** the server's shm directory (default /dev/shm) */
  shmDir?: string;
}

export interface CallOptions {
  /** seconds, overriding the client's */
  timeout?: number | null;
  /** cancels the call */
  signal?: AbortSignal;
}

export interface LoadModelOptions extends CallOptions {
  serverPath?: string | null;
  name?: string;
  preprocess?: Preprocess | null;
  providers?: string[];
  /** after each uploaded chunk */
  onProgress?: (bytesSent: number, totalBytes: number) => void;
  /** upload chunk size in bytes (default 1 MiB) */
  chunkSize?: number;
  /** move `name` from another model (servers with aliases; else FAILED_PRECONDITION) */
  replace?: boolean;
}

export interface InputOptions extends CallOptions {
  preprocess?: Preprocess | null;
}

export interface RenderOptions {
  cmap?: string;
  normalize?: 'channel' | 'layer';
  channels?: number[];
  topK?: number;
}

export interface FeatureMapOptions extends InputOptions, RenderOptions {
  raw?: boolean;
  png?: boolean;
  stats?: boolean;
  float16?: boolean;
}

export interface WeightOptions extends CallOptions {
  raw?: boolean;
  png?: boolean;
  histogram?: boolean;
  stats?: boolean;
  mode?: 'auto' | 'rgb' | 'mean' | 'channels';
  cmap?: string;
}

export interface GradientsOptions extends InputOptions {
  wrt?: string | string[] | null;
  target?: Target | null;
  policy?: 'standard' | 'guided_backprop' | 'deconvnet';
}

/** Any option not named here is a method parameter (steps, baseline, samples, ...). */
export interface ExplainOptions extends InputOptions {
  method?: string;
  target?: Target | null;
  layer?: string | string[] | null;
  layers?: string | string[] | null;
  overlayCmap?: string;
  overlayAlpha?: number | null;
  skipOverlay?: boolean;
  params?: Record<string, unknown>;
  [param: string]: unknown;
}

export interface EvaluateOptions extends InputOptions {
  metrics?: Array<'deletion' | 'insertion' | 'road' | 'drop_increase' | 'pointing_game' | string>;
  target?: Target | null;
  params?: Record<string, unknown>;
  [param: string]: unknown;
}

export interface MaximizeOptions extends CallOptions {
  steps?: number;
  objective?: 'channel' | 'neuron' | 'layer' | 'logit' | 'probability' | string;
  previewEvery?: number;
  onProgress?: (progress: Progress) => unknown; // a returned promise is awaited
  params?: Record<string, unknown>;
  [param: string]: unknown;
}

export interface AuditOptions extends CallOptions {
  layers?: string | string[] | null;
  batchSize?: number;
  labels?: number[];
  preprocess?: Preprocess | null;
  onProgress?: (progress: Progress) => unknown; // a returned promise is awaited
  resumeState?: Buffer | Uint8Array | null;
  checkpointEvery?: number;
}

export type Layers = string | string[] | null;

export class InspectorClient {
  constructor(target?: string, options?: ClientOptions);
  constructor(options: ClientOptions & { target?: string });
  readonly target: string;
  timeout: number | null;
  /** items and bytes that came through shared memory so far */
  readonly sharedMemoryStats: { sharedItems: number; sharedBytes: number };
  /** close the channel and remove the shared-memory probe file */
  close(): void;
  [Symbol.dispose](): void;

  loadModel(pathOrBytes: string | URL | Buffer | Uint8Array | ArrayBuffer, options?: LoadModelOptions): Promise<ModelInfo>;
  loadModel(options: LoadModelOptions & { serverPath: string }): Promise<ModelInfo>;
  listModels(options?: CallOptions): Promise<ModelInfo[]>;
  quarantinedModels(options?: CallOptions): Promise<string[]>;
  modelInfo(model: string, options?: CallOptions): Promise<ModelInfo>;
  /** resolves to the removed model's id */
  unloadModel(model: string, options?: CallOptions): Promise<string>;

  infer(model: string, x: Input, options?: InputOptions): Promise<Inference>;
  featureMaps(model: string, x: Input, layers?: Layers, options?: InputOptions & { float16?: boolean }): Promise<FeatureMaps>;
  renderFeatureMaps(model: string, x: Input, layers?: Layers,
    options?: InputOptions & RenderOptions & { image?: number }): Promise<Record<string, Buffer>>;
  featureStats(model: string, x: Input, layers?: Layers, options?: InputOptions): Promise<Record<string, Record<string, Tensor>>>;
  featureMapResults(model: string, x: Input, layers?: Layers, options?: FeatureMapOptions): Promise<FeatureMaps>;

  weights(model: string, layers?: Layers, options?: CallOptions): Promise<Weights>;
  renderWeights(model: string, layers?: Layers, options?: CallOptions & { mode?: string; cmap?: string; histogram?: boolean }): Promise<Record<string, Buffer>>;
  weightStats(model: string, layers?: Layers, options?: CallOptions): Promise<Record<string, Record<string, Tensor>>>;
  weightResults(model: string, layers?: Layers, options?: WeightOptions): Promise<Weights>;

  gradients(model: string, x: Input, options?: GradientsOptions): Promise<Gradients>;
  explain(model: string, x: Input, options?: ExplainOptions): Promise<Explanation>;
  explain(model: string, x: Input, method: string, options?: ExplainOptions): Promise<Explanation>;
  evaluate(model: string, x: Input, explanation: Explanation | TensorInput, options?: EvaluateOptions): Promise<Evaluation>;
  methods(options?: CallOptions): Promise<MethodInfo[]>;
  maximize(model: string, layer: string | null, channels: Iterable<number>, options?: MaximizeOptions): Promise<Maximization>;
  audit(model: string, images: Iterable<ImageInput | TensorInput> | AsyncIterable<ImageInput | TensorInput>,
    options?: AuditOptions): Promise<AuditReport>;
}

/** A failed call: the gRPC status code, its name and the server's details. */
export class InspectorError extends Error {
  code: number;
  /** e.g. "NOT_FOUND" */
  codeName: string;
  details: string;
  metadata?: Metadata;
  cause: unknown;
}

/** A result the server put in shared memory could not be read (sharedMemory: false avoids it). */
export class SharedMemoryError extends Error {}

/** gRPC status codes by name (grpc-js's `status`). */
export const status: Record<string, number> & {
  OK: 0; CANCELLED: 1; UNKNOWN: 2; INVALID_ARGUMENT: 3; DEADLINE_EXCEEDED: 4; NOT_FOUND: 5; ALREADY_EXISTS: 6;
  PERMISSION_DENIED: 7; RESOURCE_EXHAUSTED: 8; FAILED_PRECONDITION: 9; ABORTED: 10; OUT_OF_RANGE: 11;
  UNIMPLEMENTED: 12; INTERNAL: 13; UNAVAILABLE: 14; DATA_LOSS: 15; UNAUTHENTICATED: 16;
};

/** The path of the shipped inspector.proto. */
export const PROTO_PATH: string;
export const CHANNEL_FIELDS: readonly string[];
export const FLAGS: readonly string[];

/** A tensor as the proto's Tensor: dtype, shape and little-endian bytes. */
export function encodeTensor(t: TensorInput): { dtype: string; shape: number[]; data: Buffer };
/** Wire bytes as a tensor (float16 decoded to a Float32Array). */
export function decodeTensor(dtype: string, shape: number[], bytes: Uint8Array): Tensor;
/** float16 bits of a number (round to nearest even), and back. */
export function floatToHalf(value: number): number;
export function halfToFloat(bits: number): number;

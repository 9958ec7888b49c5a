'use strict';
// Tensors on the wire: dtype (a numpy dtype name) + shape + raw little-endian C-order bytes.

const os = require('node:os');

const LITTLE_ENDIAN = os.endianness() === 'LE';

// numpy dtype name -> the TypedArray holding its values in JS.
const ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
  float16: Float32Array, // decoded to float32 values; encoded back to half precision
};

const BYTES = {
  float32: 4, float64: 8, int8: 1, uint8: 1, int16: 2, uint16: 2, int32: 4, uint32: 4,
  int64: 8, uint64: 8, bool: 1, float16: 2,
};

// TypedArray constructor -> dtype name, for tensors given without a dtype.
const DTYPE_OF = new Map([
  [Float32Array, 'float32'], [Float64Array, 'float64'], [Int8Array, 'int8'], [Uint8Array, 'uint8'],
  [Uint8ClampedArray, 'uint8'], [Int16Array, 'int16'], [Uint16Array, 'uint16'], [Int32Array, 'int32'],
  [Uint32Array, 'uint32'], [BigInt64Array, 'int64'], [BigUint64Array, 'uint64'],
]);

function product(shape) {
  return shape.reduce((a, b) => a * Number(b), 1);
}

// ---- float16 ------------------------------------------------------------------------------
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

// Round-to-nearest-even float32 -> float16 bits (as numpy's astype(float16)).
function floatToHalf(value) {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> signed zero
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let h = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (h & 1))) h += 1;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h += 1; // may carry into the exponent: fine
  return sign | h;
}

// Lookup table for decoding: 65536 floats, built on first use.
let HALF_TABLE = null;
function halfTable() {
  if (HALF_TABLE === null) {
    HALF_TABLE = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) HALF_TABLE[i] = halfToFloat(i);
  }
  return HALF_TABLE;
}

// ---- decoding -------------------------------------------------------------------------------
/**
 * A wire tensor (dtype, shape, bytes) as {dtype, shape, data: TypedArray}; `bytes` is a
 * Uint8Array the result may share (it must start at an offset aligned for the dtype).
 */
function decodeTensor(dtype, shape, bytes) {
  shape = shape.map(Number);
  const size = BYTES[dtype];
  if (size === undefined) {
    throw new TypeError(`unsupported tensor dtype ${JSON.stringify(dtype)}`);
  }
  const count = product(shape);
  if (bytes.byteLength !== count * size) {
    throw new RangeError(`tensor ${dtype}${JSON.stringify(shape)} needs ${count * size} bytes, got ${bytes.byteLength}`);
  }
  if (dtype === 'float16') {
    const table = halfTable();
    const out = new Float32Array(count);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < count; i++) out[i] = table[view.getUint16(2 * i, true)];
    return { dtype, shape, data: out };
  }
  const Ctor = ARRAYS[dtype];
  if (size === 1 || (LITTLE_ENDIAN && bytes.byteOffset % size === 0)) {
    return { dtype, shape, data: new Ctor(bytes.buffer, bytes.byteOffset, count) };
  }
  const copy = new Uint8Array(bytes); // aligned copy
  if (!LITTLE_ENDIAN) swapBytes(copy, size);
  return { dtype, shape, data: new Ctor(copy.buffer, 0, count) };
}

function swapBytes(bytes, size) {
  for (let i = 0; i < bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

// ---- encoding -------------------------------------------------------------------------------
function isTensor(x) {
  return x !== null && typeof x === 'object' && !ArrayBuffer.isView(x) && !Array.isArray(x) &&
    'shape' in x && 'data' in x;
}

function flatten(data) {
  // nested plain arrays -> one flat array
  return Array.isArray(data) ? data.flat(Infinity) : data;
}

/** {dtype?, shape, data} -> {dtype, shape: number[], data: Buffer} (the proto's Tensor). */
function encodeTensor(t) {
  if (!isTensor(t)) throw new TypeError('a tensor is {dtype, shape, data}');
  const shape = Array.from(t.shape, Number);
  let data = t.data;
  let dtype = t.dtype;
  if (!dtype) {
    if (ArrayBuffer.isView(data) && DTYPE_OF.has(data.constructor)) dtype = DTYPE_OF.get(data.constructor);
    else dtype = 'float32';
  }
  const size = BYTES[dtype];
  if (size === undefined) throw new TypeError(`unsupported tensor dtype ${JSON.stringify(dtype)}`);
  const count = product(shape);
  if (Buffer.isBuffer(data) && !(dtype === 'uint8' || dtype === 'int8' || dtype === 'bool')) {
    // raw little-endian bytes given as they travel
    if (data.length !== count * size) {
      throw new RangeError(`tensor ${dtype}${JSON.stringify(shape)} needs ${count * size} bytes, got ${data.length}`);
    }
    return { dtype, shape, data: Buffer.from(data) };
  }
  data = flatten(data);
  if (data.length !== count) {
    throw new RangeError(`tensor of shape ${JSON.stringify(shape)} needs ${count} values, got ${data.length}`);
  }
  const out = Buffer.alloc(count * size);
  if (dtype === 'float16') {
    for (let i = 0; i < count; i++) out.writeUInt16LE(floatToHalf(Number(data[i])), 2 * i);
    return { dtype, shape, data: out };
  }
  const Ctor = ARRAYS[dtype];
  const big = Ctor === BigInt64Array || Ctor === BigUint64Array;
  if (ArrayBuffer.isView(data) && data.constructor === Ctor && LITTLE_ENDIAN) {
    Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out);
  } else {
    const view = new Ctor(out.buffer, out.byteOffset, count);
    for (let i = 0; i < count; i++) {
      const v = data[i];
      view[i] = big ? BigInt(typeof v === 'boolean' ? Number(v) : v) : Number(v);
    }
    if (!LITTLE_ENDIAN) swapBytes(out, size);
  }
  return { dtype, shape, data: out };
}

/** Stack tensors of one shape and dtype along a new first axis. */
function stackTensors(tensors) {
  const encoded = tensors.map(encodeTensor);
  const first = encoded[0];
  for (const t of encoded) {
    if (t.dtype !== first.dtype || JSON.stringify(t.shape) !== JSON.stringify(first.shape)) {
      throw new TypeError('stacked tensors need one dtype and one shape');
    }
  }
  return { dtype: first.dtype, shape: [encoded.length, ...first.shape], data: Buffer.concat(encoded.map((t) => t.data)) };
}

/** A TypedArray's values as a plain array (bigints as numbers). */
function toList(data) {
  return Array.from(data, (v) => (typeof v === 'bigint' ? Number(v) : v));
}

module.exports = {
  ARRAYS, BYTES, decodeTensor, encodeTensor, stackTensors, isTensor, floatToHalf, halfToFloat, toList, product,
};

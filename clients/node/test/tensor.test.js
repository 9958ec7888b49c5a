'use strict';
// Tensor encoding and float16 against numpy (no server).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { encodeTensor, decodeTensor, floatToHalf, halfToFloat } = require('../lib');
const { python } = require('./helpers');

test('float16 known values', () => {
  const cases = [[0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00],
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [0.1, 0x2e66], [1 / 3, 0x3555], [2 ** -24, 0x0001],
    [2 ** -25, 0x0000], [1e-5, 0x00a8], [0.5 + 2 ** -12, 0x3800]];
  for (const [v, bits] of cases) assert.equal(floatToHalf(v), bits, `floatToHalf(${v})`);
  assert.ok(Number.isNaN(halfToFloat(floatToHalf(NaN))));
  assert.equal(halfToFloat(0x3c00), 1);
  assert.equal(halfToFloat(0x0001), 2 ** -24);
  assert.equal(halfToFloat(0xfc00), -Infinity);
});

test('float16 encoding and decoding equal numpy for every half and random floats', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inspector-node-f16-'));
  try {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const values = Float32Array.from({ length: 4000 }, () => (rand() - 0.5) * 10 ** (rand() * 12 - 8));
    fs.writeFileSync(path.join(dir, 'v.f32'), Buffer.from(values.buffer));
    const ref = python(`
import json, sys, numpy as np
v = np.fromfile(sys.argv[1], np.float32)
with np.errstate(all="ignore"):
    halves = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
print(json.dumps({"bits": v.astype(np.float16).view(np.uint16).tolist(),
                  "halves": [None if not np.isfinite(h) else float(h) for h in halves],
                  "inf": [int(i) for i in np.flatnonzero(np.isinf(halves))]}))`, [path.join(dir, 'v.f32')]);
    const t = encodeTensor({ dtype: 'float16', shape: [values.length], data: values });
    const bits = Array.from({ length: values.length }, (_, i) => t.data.readUInt16LE(2 * i));
    assert.deepEqual(bits, ref.bits);
    const all = new Uint8Array(new Uint16Array(Array.from({ length: 65536 }, (_, i) => i)).buffer);
    const decoded = decodeTensor('float16', [65536], all).data;
    for (let i = 0; i < 65536; i++) {
      if (ref.halves[i] === null) assert.ok(!Number.isFinite(decoded[i]), `half ${i}`);
      else assert.equal(decoded[i], ref.halves[i], `half ${i}`);
    }
    for (const i of ref.inf) assert.ok(Math.abs(decoded[i]) === Infinity);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('tensors encode as little-endian bytes, from typed or plain (nested) arrays', () => {
  const t = encodeTensor({ shape: [2, 2], data: new Int32Array([1, -2, 3, 4]) });
  assert.equal(t.dtype, 'int32');
  assert.deepEqual(t.shape, [2, 2]);
  assert.deepEqual([...t.data], [1, 0, 0, 0, 254, 255, 255, 255, 3, 0, 0, 0, 4, 0, 0, 0]);
  const f = encodeTensor({ dtype: 'float64', shape: [2, 1], data: [[0.5], [-1]] });
  assert.deepEqual(Array.from(new Float64Array(f.data.buffer, f.data.byteOffset, 2)), [0.5, -1]);
  const i64 = encodeTensor({ dtype: 'int64', shape: [2], data: [3, -1] });
  assert.deepEqual(decodeTensor('int64', [2], new Uint8Array(i64.data)).data, new BigInt64Array([3n, -1n]));
  assert.throws(() => encodeTensor({ dtype: 'float32', shape: [3], data: [1, 2] }), /needs 3 values/);
  assert.throws(() => encodeTensor({ dtype: 'complex64', shape: [1], data: [1] }), /unsupported/);
  // decoding copies bytes at an unaligned offset instead of failing
  const buf = new Uint8Array(9);
  buf.set(new Uint8Array(new Float32Array([1.5, -3]).buffer), 1);
  assert.deepEqual(decodeTensor('float32', [2], buf.subarray(1)).data, new Float32Array([1.5, -3]));
});

'use strict';
// A real `inspector serve` for the tests, and the Python side to compare against.

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const REPO = path.resolve(__dirname, '..', '..', '..');
const BIN = process.env.INSPECTOR_BIN || path.join(REPO, '.venv', 'bin', 'inspector');
const PYTHON = process.env.INSPECTOR_PYTHON || path.join(path.dirname(BIN), 'python');

/** Start a server on a free port with a temp store (--no-shared-memory unless sharedMemory);
 * resolves to {target, stop(), dir}. */
async function startServer(extraArgs = [], { sharedMemory = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inspector-node-'));
  const store = path.join(dir, 'store');
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--store', store, '--no-vetting',
    ...(sharedMemory ? [] : ['--no-shared-memory']), '--threads', '2', ...extraArgs];
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1' } });
  let out = '';
  let err = '';
  const target = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 30 s:\n${out}\n${err}`)), 30000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /inspector serving on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.stderr.on('data', (d) => { err += d; });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before serving:\n${out}\n${err}`));
    });
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  proc.removeAllListeners('exit');
  proc.stdout.resume();
  const stop = async () => {
    if (proc.exitCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { target, stop, dir, stderr: () => err };
}

/** Run a Python snippet with `args` as sys.argv[1:] (repo root as cwd, tests/ and the Python
 * client importable); its stdout parsed as JSON. */
function python(code, args = [], input = undefined) {
  const out = execFileSync(PYTHON, ['-c', code, ...args.map(String)], {
    cwd: REPO, input, maxBuffer: 256 << 20,
    env: { ...process.env, PYTHONPATH: [path.join(REPO, 'tests'), path.join(REPO, 'clients', 'python')].join(path.delimiter) },
  });
  return JSON.parse(out.toString());
}

/** Write tests/factory.py's small_cnn(seed) to `file`. */
function writeSmallCnn(file, seed = 1) {
  execFileSync(PYTHON, ['-c',
    'import sys; sys.path.insert(0, "tests"); from factory import small_cnn; ' +
    `open(sys.argv[1], "wb").write(small_cnn(seed=${seed}).SerializeToString())`, file], { cwd: REPO });
}

// ---- a tiny PNG encoder (RGB, 8 bit) for test images -------------------------------------------
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** An RGB PNG of width x height whose pixel (x, y) is pixel(x, y) -> [r, g, b]. */
function makePng(width, height, pixel) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    raw[row] = 0;
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      raw[row + 1 + 3 * x] = r;
      raw[row + 2 + 3 * x] = g;
      raw[row + 3 + 3 * x] = b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/** Width and height from a PNG's IHDR. */
function pngSize(buf) {
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function isPng(buf) {
  return Buffer.isBuffer(buf) && buf.subarray(0, 8).equals(PNG_SIGNATURE);
}

/** The largest |a - b| over two equally long sequences. */
function maxAbsDiff(a, b) {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(Number(a[i]) - Number(b[i])));
  return m;
}

module.exports = { REPO, BIN, PYTHON, startServer, python, writeSmallCnn, makePng, pngSize, isPng, maxAbsDiff };

'use strict';
// Servers started with other options: a bearer token, shared memory allowed.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { InspectorClient, status } = require('../lib');
const { startServer, writeSmallCnn, makePng } = require('./helpers');

const SIZE = 32;

describe('a server that requires a bearer token', () => {
  let server;
  before(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inspector-node-token-'));
    const tokenFile = path.join(dir, 'tokens');
    fs.writeFileSync(tokenFile, 'sesame\n');
    server = await startServer(['--auth-token-file', tokenFile]);
    server.tokenDir = dir;
  });
  after(async () => {
    if (server) {
      await server.stop();
      fs.rmSync(server.tokenDir, { recursive: true, force: true });
    }
  });

  it('refuses calls without the token and accepts them with it', async () => {
    const anonymous = new InspectorClient(server.target);
    const wrong = new InspectorClient(server.target, { token: 'wrong' });
    const right = new InspectorClient(server.target, { token: 'sesame' });
    try {
      await assert.rejects(anonymous.listModels(), (e) => e.code === status.UNAUTHENTICATED);
      await assert.rejects(wrong.methods(), (e) => e.code === status.UNAUTHENTICATED);
      assert.deepEqual(await right.listModels(), []);
      const file = path.join(server.dir, 'm.onnx');
      writeSmallCnn(file, 2);
      const m = await right.loadModel(file, { name: 'm' });
      await assert.rejects(anonymous.infer('m', makePng(8, 8, () => [1, 2, 3])), (e) => e.code === status.UNAUTHENTICATED);
      const r = await right.infer(m.id, makePng(8, 8, () => [1, 2, 3]));
      assert.deepEqual(r.outputs.logits.shape, [1, 10]);
    } finally {
      anonymous.close();
      wrong.close();
      right.close();
    }
  });
});

describe('results through shared memory (a local server that allows it)', { skip: !fs.existsSync('/dev/shm') && 'no /dev/shm' }, () => {
  let server;
  let client;
  let streamed;
  before(async () => {
    server = await startServer([], { sharedMemory: true });
    const file = path.join(server.dir, 'm.onnx');
    writeSmallCnn(file, 3);
    client = new InspectorClient(server.target, { timeout: 60 });
    streamed = new InspectorClient(server.target, { timeout: 60, sharedMemory: false });
    await client.loadModel(file, { name: 'm' });
  });
  after(async () => {
    if (client) client.close();
    if (streamed) streamed.close();
    if (server) await server.stop();
  });

  it('reads large tensors from the server\'s files, equal to the streamed ones, and hands the files back', async () => {
    const one = { dtype: 'float32', shape: [3, SIZE, SIZE], data: Float32Array.from({ length: 3 * SIZE * SIZE }, (_, i) => Math.cos(i)) };
    const batch = [one, one, one, one]; // relu1_out: 4 x 8 x 32 x 32 floats, 128 KiB: above the server's minimum
    const viaShm = await client.featureMaps('m', batch, ['relu1', 'relu4']);
    assert.ok(client.sharedMemoryStats.sharedItems >= 1, JSON.stringify(client.sharedMemoryStats));
    assert.ok(client.sharedMemoryStats.sharedBytes >= 4 * 8 * SIZE * SIZE * 4);
    const viaGrpc = await streamed.featureMaps('m', batch, ['relu1', 'relu4']);
    assert.equal(streamed.sharedMemoryStats.sharedItems, 0);
    for (const name of ['relu1_out', 'relu4_out']) {
      assert.deepEqual(viaShm.tensors[name].shape, viaGrpc.tensors[name].shape);
      assert.deepEqual(viaShm.tensors[name].data, viaGrpc.tensors[name].data);
    }
    // a second call reuses the pages: same values again
    const again = await client.featureMaps('m', batch, ['relu1']);
    assert.deepEqual(again.tensors.relu1_out.data, viaGrpc.tensors.relu1_out.data);
    assert.ok(client.sharedMemoryStats.sharedItems >= 2);
  });

  it('removes its probe file on close', () => {
    const c = new InspectorClient(server.target);
    const probe = c._probe.metadata();
    assert.equal(probe.length, 2);
    const file = probe[0][1];
    assert.ok(fs.existsSync(file));
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    c.close();
    assert.ok(!fs.existsSync(file));
  });
});

// Compiled (never run) by test/types.test.js: index.d.ts must describe how the client is used.
import { InspectorClient, InspectorError, status, type Explanation, type Progress } from '..';

async function usage(): Promise<void> {
  const c = new InspectorClient('127.0.0.1:50051', { token: 't', timeout: 30, tlsCa: '/ca.pem' });
  const info = await c.loadModel('model.onnx', {
    name: 'r50', preprocess: { resize: 256, crop: [224, 224], channelOrder: 'RGB' },
    onProgress: (sent: number, total: number) => console.log(sent / total),
  });
  const same = await c.loadModel({ serverPath: '/models/r50.onnx', name: 'r50' });
  const inputs: string[] = info.inputs.map((t) => t.name);
  const x = { dtype: 'float32', shape: [1, 3, 224, 224], data: new Float32Array(3 * 224 * 224) };
  const logits: Float32Array | unknown = (await c.infer(same.id, x)).outputs.logits.data;
  await c.infer('r50', Buffer.from([]));
  await c.infer('r50', ['a.png', 'b.jpg']);
  await c.infer('two', { a: x, b: 'b.png' });
  const fm = await c.featureMaps('r50', 'cat.jpg', ['Relu'], { float16: true });
  const shape: number[] = fm.tensors['relu'].shape;
  const pngs: Record<string, Buffer> = await c.renderFeatureMaps('r50', 'cat.jpg', 'layer4', { topK: 16 });
  await c.featureStats('r50', x);
  await c.weights('r50', ['conv1']);
  await c.gradients('r50', x, { wrt: 'input', target: 281 });
  const e: Explanation = await c.explain('r50', 'cat.jpg', { method: 'gradcam', target: { index: [281] }, steps: 32 });
  const overlay: Buffer = e.overlayPng[0];
  await c.explain('r50', 'cat.jpg', 'saliency', { target: [1, 2] });
  await c.loadModel(Buffer.alloc(1), { name: 'r50', replace: true });
  const names: string[] = (await c.modelInfo('r50')).names;
  const shared: number = new InspectorClient('127.0.0.1:1', { sharedMemory: false, shmDir: '/dev/shm' }).sharedMemoryStats.sharedBytes;
  console.log(names, shared);
  const heat: Float32Array = e.heatmap.data;
  await c.evaluate('r50', 'cat.jpg', e, { metrics: ['deletion', 'insertion'] });
  (await c.methods()).map((m) => m.usesGradients);
  const mx = await c.maximize('r50', 'layer3', [0, 1], { steps: 64, previewEvery: 8, onProgress: (p: Progress) => p.previews });
  const first: Buffer = mx.pngs[0];
  const report = await c.audit('r50', ['a.png'], { batchSize: 4, onProgress: (p) => p.checkpoint });
  console.log(inputs, logits, shape, pngs, overlay, heat, first, report.report.layers);
  try {
    await c.modelInfo('missing');
  } catch (err) {
    if (err instanceof InspectorError && err.code === status.NOT_FOUND) console.log(err.codeName, err.details);
  }
  c.close();
}

void usage;

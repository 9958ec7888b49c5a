#!/usr/bin/env node
'use strict';
// Upload a model, classify an image, and write its Grad-CAM overlay:
//   node examples/explain.js model.onnx image.png overlay.png [--server 127.0.0.1:50051] [--token T]

const fs = require('node:fs');
const { InspectorClient } = require('..');

async function main(argv) {
  const opt = (name, fallback) => {
    const i = argv.indexOf(name);
    if (i < 0) return fallback;
    const [, value] = argv.splice(i, 2);
    return value;
  };
  const server = opt('--server', '127.0.0.1:50051');
  const token = opt('--token', process.env.INSPECTOR_TOKEN || null);
  const [modelPath, imagePath, outPath = 'overlay.png'] = argv;
  if (!modelPath || !imagePath) {
    console.error('usage: explain.js MODEL.onnx IMAGE OUT.png [--server HOST:PORT] [--token TOKEN]');
    return 2;
  }
  const client = new InspectorClient(server, { token, timeout: 300 });
  try {
    const info = await client.loadModel(modelPath, {
      onProgress: (sent, total) => process.stderr.write(`\ruploading ${sent}/${total} bytes`),
    });
    process.stderr.write('\n');
    const { outputs } = await client.infer(info.id, imagePath);
    const logits = outputs[info.outputs[0].name];
    let best = 0;
    for (let i = 1; i < logits.data.length; i++) if (logits.data[i] > logits.data[best]) best = i;
    const exp = await client.explain(info.id, imagePath, 'gradcam', { target: best });
    fs.writeFileSync(outPath, exp.overlayPng[0]);
    console.log(JSON.stringify({ model: info.id, top1: best, score: exp.score[0], layers: exp.layers, overlay: outPath }));
    return 0;
  } finally {
    client.close();
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err) => {
  console.error(err.message);
  process.exitCode = 1;
});

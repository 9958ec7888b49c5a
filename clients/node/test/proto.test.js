'use strict';
// The package ships its own copy of the service definition: it must be the repository's.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { PROTO_PATH } = require('../lib');
const { REPO } = require('./helpers');

const ORIGINAL = path.join(REPO, 'protos', 'inspector', 'v1', 'inspector.proto');

test('proto/inspector.proto equals protos/inspector/v1/inspector.proto', { skip: !fs.existsSync(ORIGINAL) && 'not in the repository' }, () => {
  const copy = fs.readFileSync(PROTO_PATH, 'utf8');
  const original = fs.readFileSync(ORIGINAL, 'utf8');
  assert.ok(copy === original,
    'clients/node/proto/inspector.proto is stale: cp protos/inspector/v1/inspector.proto clients/node/proto/');
});

test('the shipped proto loads and defines every RPC the client calls', () => {
  const grpc = require('@grpc/grpc-js');
  const loader = require('@grpc/proto-loader');
  const pkg = grpc.loadPackageDefinition(loader.loadSync(PROTO_PATH, { keepCase: true })).inspector.v1;
  const rpcs = Object.keys(pkg.Inspector.service).sort();
  assert.deepEqual(rpcs, ['AuditStats', 'Evaluate', 'Explain', 'FeatureMaps', 'GetModelInfo', 'Gradients', 'Infer',
    'ListMethods', 'ListModels', 'LoadModel', 'Maximize', 'UnloadModel', 'UploadModel', 'Weights']);
});

'use strict';
// TLS and mutual TLS against real servers, with certificates made by openssl for the test.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { InspectorClient, status } = require('../lib');
const { startServer } = require('./helpers');

function hasOpenssl() {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A CA, a server certificate for localhost / 127.0.0.1 and a client certificate, in `dir`. */
function makeCerts(dir) {
  const ssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const key = (name) => ssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
  for (const ca of ['ca', 'rogue_ca']) {
    key(ca);
    ssl('req', '-x509', '-new', '-key', `${ca}.key`, '-subj', `/CN=${ca}`, '-days', '2', '-out', `${ca}.pem`);
  }
  fs.writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  fs.writeFileSync(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, ext] of [['server', 'server.ext'], ['client', 'client.ext']]) {
    key(name);
    ssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name === 'server' ? 'localhost' : 'client'}`, '-out', `${name}.csr`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
      '-extfile', ext, '-out', `${name}.pem`);
  }
}

describe('TLS', { skip: !hasOpenssl() && 'openssl not installed' }, () => {
  let dir;
  const servers = [];
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inspector-node-tls-'));
    makeCerts(dir);
  });
  after(async () => {
    for (const s of servers) await s.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  const local = (target) => `localhost:${target.split(':').at(-1)}`;

  it('talks to a TLS server trusting its CA, and refuses a server it does not trust', async () => {
    const server = await startServer(['--tls-cert', path.join(dir, 'server.pem'), '--tls-key', path.join(dir, 'server.key')]);
    servers.push(server);
    const good = new InspectorClient(local(server.target), { tlsCa: path.join(dir, 'ca.pem'), timeout: 30 });
    const rogue = new InspectorClient(local(server.target), { tlsCa: fs.readFileSync(path.join(dir, 'rogue_ca.pem')), timeout: 10 });
    const plain = new InspectorClient(local(server.target), { timeout: 10 });
    try {
      assert.ok((await good.methods()).some((m) => m.name === 'gradcam'));
      await assert.rejects(rogue.listModels(), (e) => e.code === status.UNAVAILABLE);
      await assert.rejects(plain.listModels(), (e) => e.code === status.UNAVAILABLE);
    } finally {
      good.close();
      rogue.close();
      plain.close();
    }
  });

  it('presents a client certificate for mutual TLS', async () => {
    const server = await startServer(['--tls-cert', path.join(dir, 'server.pem'), '--tls-key', path.join(dir, 'server.key'),
      '--tls-client-ca', path.join(dir, 'ca.pem')]);
    servers.push(server);
    const ca = path.join(dir, 'ca.pem');
    assert.throws(() => new InspectorClient('localhost:1', { tlsCa: ca, tlsCert: path.join(dir, 'client.pem') }), /both tlsCert and tlsKey/);
    const mutual = new InspectorClient(local(server.target), {
      tlsCa: ca, tlsCert: path.join(dir, 'client.pem'), tlsKey: path.join(dir, 'client.key'), timeout: 30,
    });
    const anonymous = new InspectorClient(local(server.target), { tlsCa: ca, timeout: 10 });
    try {
      assert.deepEqual(await mutual.listModels(), []);
      await assert.rejects(anonymous.listModels(), (e) => e.code === status.UNAVAILABLE);
    } finally {
      mutual.close();
      anonymous.close();
    }
  });
});

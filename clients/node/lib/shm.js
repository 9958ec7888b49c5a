'use strict';
// The client's side of the shared-memory transport (the .proto's Conventions): a probe file that
// proves to a local server that we read its shm directory, and reading its result files.
//
// Node has no mmap: an item's bytes are read (one copy) into a fresh buffer, and the file is
// renamed `inspector-free-<hex>` as soon as the response is complete, for the server to reuse.

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const PROBE_HEADER = 'inspector-shm-probe';
const TOKEN_HEADER = 'inspector-shm-token';
const DEFAULT_DIR = '/dev/shm';
const RESULT_NAME = /^inspector-[0-9a-f]{32}$/;
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL } = fs.constants;
const O_NOFOLLOW = fs.constants.O_NOFOLLOW || 0;

class SharedMemoryError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SharedMemoryError';
  }
}

/** A unix socket, localhost or a loopback address ("127.0.0.1:50051", "[::1]:50051"). */
function isLocalTarget(target) {
  for (const prefix of ['dns:///', 'ipv4:', 'ipv6:']) if (target.startsWith(prefix)) target = target.slice(prefix.length);
  if (target.startsWith('unix:')) return true;
  const host = target.startsWith('[') ? target.slice(1).split(']')[0] : target.slice(0, target.lastIndexOf(':'));
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

function usableDir(dir) {
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
    return fs.statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

// Probe files of this process, removed at exit if a client was never closed.
const LIVE_PROBES = new Set();
let exitHook = false;
function removeAtExit(file) {
  LIVE_PROBES.add(file);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const f of LIVE_PROBES) {
        try {
          fs.unlinkSync(f);
        } catch {
          // gone already
        }
      }
    });
  }
}

/** Our probe file, created on first use; close() removes it. */
class Probe {
  constructor(dir) {
    this.dir = dir;
    this.path = null;
    this._metadata = null;
  }

  /** [[header, value], ...] announcing the probe; [] when it cannot be made (calls then stream). */
  metadata() {
    if (this._metadata === null) this._metadata = this._create();
    return this._metadata;
  }

  _create() {
    const file = path.join(this.dir, `inspector-probe-${crypto.randomBytes(16).toString('hex')}`);
    const token = crypto.randomBytes(16).toString('hex');
    let fd;
    try {
      fd = fs.openSync(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    } catch {
      return [];
    }
    this.path = file;
    removeAtExit(file);
    try {
      fs.writeSync(fd, token);
    } catch {
      this.close();
      return [];
    } finally {
      fs.closeSync(fd);
    }
    return [[PROBE_HEADER, file], [TOKEN_HEADER, token]];
  }

  close() {
    if (this.path !== null) {
      try {
        fs.unlinkSync(this.path);
      } catch {
        // gone already
      }
      LIVE_PROBES.delete(this.path);
      this.path = null;
    }
    this._metadata = [];
  }
}

/** The result files of one response: each opened once; release() hands them back to the server. */
class ResultFiles {
  constructor(dir) {
    this.dir = dir;
    this.fds = new Map(); // path -> {fd, size}
    this.items = 0;
    this.bytes = 0;
  }

  /** An item's bytes (ItemStart with shm set), read into a fresh aligned buffer. */
  itemBytes(start) {
    const file = start.shm.path;
    const offset = Number(start.shm.offset || 0);
    const nbytes = Number(start.nbytes || 0);
    // only our server's result files: never open (or rename) another path a server names
    if (path.dirname(file) !== this.dir || !RESULT_NAME.test(path.basename(file))) {
      throw new SharedMemoryError(`the server put item ${JSON.stringify(start.name)} in ${JSON.stringify(file)}, ` +
        `not a result file in ${this.dir}; sharedMemory: false avoids shared memory`);
    }
    let entry = this.fds.get(file);
    if (entry === undefined) {
      let fd;
      try {
        fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW);
      } catch (err) {
        throw new SharedMemoryError(`shared memory failed: cannot open the server's result file ${file} ` +
          `(${err.code || err.message}); sharedMemory: false streams results over gRPC instead`);
      }
      entry = { fd, size: fs.fstatSync(fd).size };
      this.fds.set(file, entry);
    }
    if (offset + nbytes > entry.size) {
      throw new SharedMemoryError(`item ${JSON.stringify(start.name)} lies beyond the end of ${file}`);
    }
    const buffer = new Uint8Array(new ArrayBuffer(nbytes));
    let filled = 0;
    while (filled < nbytes) {
      const n = fs.readSync(entry.fd, buffer, filled, nbytes - filled, offset + filled);
      if (n === 0) throw new SharedMemoryError(`${file} ended inside item ${JSON.stringify(start.name)}`);
      filled += n;
    }
    this.items += 1;
    this.bytes += nbytes;
    return buffer;
  }

  /** Close the files and rename each `inspector-free-<hex>` (if the server's janitor left it). */
  release() {
    for (const [file, { fd }] of this.fds) {
      try {
        fs.closeSync(fd);
      } catch {
        // closed already
      }
      try {
        fs.renameSync(file, path.join(path.dirname(file), `inspector-free-${path.basename(file).slice('inspector-'.length)}`));
      } catch {
        // removed meanwhile: nothing to hand back
      }
    }
    this.fds.clear();
  }
}

module.exports = { PROBE_HEADER, TOKEN_HEADER, DEFAULT_DIR, SharedMemoryError, isLocalTarget, usableDir, Probe, ResultFiles };

'use strict';
// Reassemble a ResultChunk stream (the .proto's Conventions) into tensors and blobs.

const { decodeTensor } = require('./tensor');
const { fromStruct } = require('./struct');
const { ResultFiles, SharedMemoryError } = require('./shm');

// Items that belong to the progress event before them (previews, audit checkpoints).
const PROGRESS_GROUPS = new Set(['preview', 'checkpoint']);
const CHECKPOINT = 'state';

class Item {
  /** `shared`: the item's bytes, already complete (read from shared memory). */
  constructor(start, shared = null) {
    this.start = start;
    this.nbytes = Number(start.nbytes || 0);
    if (shared === null) {
      this.buffer = new Uint8Array(new ArrayBuffer(this.nbytes)); // aligned for any dtype
      this.filled = 0;
    } else {
      this.buffer = shared;
      this.filled = shared.length;
    }
  }

  append(data) {
    const end = this.filled + data.length;
    if (end > this.nbytes) throw new Error(`item ${JSON.stringify(this.start.name)} received more bytes than announced`);
    this.buffer.set(data, this.filled);
    this.filled = end;
  }

  value() {
    if (this.filled !== this.nbytes) {
      throw new Error(`item ${JSON.stringify(this.start.name)} ended after ${this.filled} of ${this.nbytes} bytes`);
    }
    if (this.start.tensor) return decodeTensor(this.start.tensor.dtype, this.start.tensor.shape || [], this.buffer);
    return Buffer.from(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
  }

  mediaType() {
    return this.start.blob ? this.start.blob.media_type || '' : '';
  }
}

/** A result as it travelled: header fields, info, items in order, with group helpers. */
class Wire {
  constructor() {
    this.modelId = '';
    this.providers = [];
    this.warnings = [];
    this.info = {};
    this.items = []; // {group, name, value, mediaType}
  }

  group(group) {
    const out = {};
    for (const i of this.items) if (i.group === group) out[i.name] = i.value;
    return out;
  }

  byImage(group) {
    const values = this.group(group);
    return Object.keys(values).sort((a, b) => Number(a) - Number(b)).map((k) => values[k]);
  }

  nested(group) {
    const out = {};
    for (const [name, value] of Object.entries(this.group(group))) {
      const cut = name.lastIndexOf('/');
      const key = name.slice(0, cut);
      (out[key] ||= {})[name.slice(cut + 1)] = value;
    }
    return out;
  }

  meta() {
    return { modelId: this.modelId, providers: [...this.providers], warnings: [...this.warnings] };
  }
}

/**
 * Consume an async iterable of ResultChunk objects (keepCase field names).
 * onProgress(progress) sees each Progress event with the previews that followed it.
 * shmDir: where shared-memory items may lie (null: the client did not offer it); stats, when
 * given, counts the items and bytes read from there.
 */
async function assemble(chunks, onProgress = null, shmDir = null, stats = null) {
  const result = new Wire();
  const files = shmDir !== null ? new ResultFiles(shmDir) : null;
  let current = null;
  let lastProgress = null;

  const finish = (item) => {
    if (item === null) return;
    const { group, name } = item.start;
    const value = item.value();
    if (PROGRESS_GROUPS.has(group) && lastProgress !== null) {
      lastProgress.previews[name] = value;
      return;
    }
    result.items.push({ group, name, value, mediaType: item.mediaType() });
  };
  const emit = async () => {
    if (lastProgress !== null && onProgress) await onProgress(lastProgress);
  };

  const messages = chunks[Symbol.asyncIterator]();
  try {
    for (;;) {
      const { value: msg, done } = await messages.next();
      if (done) break;
      if (msg.header) {
        const h = msg.header;
        result.modelId = h.model_id || '';
        result.providers = [...(h.providers || [])];
        result.warnings = [...(h.warnings || [])];
        result.info = h.info ? fromStruct(h.info) : {};
      }
      if (msg.progress) {
        finish(current);
        current = null;
        await emit();
        lastProgress = makeProgress(msg.progress);
      }
      for (const start of msg.shared_items || []) {
        finish(current);
        if (files === null) {
          throw new SharedMemoryError(`the server put item ${JSON.stringify(start.name)} in shared memory, ` +
            'which this client did not offer');
        }
        try {
          current = new Item(start, files.itemBytes(start));
        } catch (err) {
          // a call that failed meanwhile (its file is gone) raises its own error
          for (;;) if ((await messages.next()).done) break;
          throw err;
        }
      }
      if (msg.item) {
        finish(current);
        current = new Item(msg.item);
      }
      if (msg.data && msg.data.length) {
        if (current === null) throw new Error('data arrived before any item started');
        current.append(msg.data);
      }
    }
    finish(current);
    await emit();
  } finally {
    if (files !== null) {
      files.release();
      if (stats) {
        stats.sharedItems += files.items;
        stats.sharedBytes += files.bytes;
      }
    }
  }
  return result;
}

function makeProgress(p) {
  return {
    step: Number(p.step || 0),
    total: Number(p.total || 0),
    values: (p.values || []).map(Number),
    message: p.message || '',
    previews: {},
    get checkpoint() {
      return this.previews[CHECKPOINT] ?? null;
    },
  };
}

module.exports = { assemble, Wire, PROGRESS_GROUPS };

'use strict';
// google.protobuf.Struct <-> plain JS (proto-loader objects). protobufjs defines the
// well-known types itself, with camelCase field names (numberValue, ...) whatever keepCase says;
// decoding accepts both spellings.

function fromValue(v) {
  if (v === null || v === undefined) return null;
  const kind = (v.kind || Object.keys(v).find((k) => /_value$|Value$/.test(k)) || '').replace(/_v/, 'V');
  const field = (camel) => (camel in v ? v[camel] : v[camel.replace(/V/, '_v')]);
  switch (kind) {
    case 'nullValue': return null;
    case 'numberValue': return Number(field('numberValue'));
    case 'stringValue': return field('stringValue');
    case 'boolValue': return Boolean(field('boolValue'));
    case 'structValue': return fromStruct(field('structValue'));
    case 'listValue': return ((field('listValue') || {}).values || []).map(fromValue);
    default: return null;
  }
}

/** A Struct message as a plain object. */
function fromStruct(s) {
  const out = {};
  for (const [k, v] of Object.entries((s && s.fields) || {})) out[k] = fromValue(v);
  return out;
}

function toValue(v) {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'bigint') return { numberValue: Number(v) };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (ArrayBuffer.isView(v) || Array.isArray(v)) return { listValue: { values: Array.from(v, toValue) } };
  if (v && typeof v === 'object' && 'shape' in v && 'data' in v && ArrayBuffer.isView(v.data)) {
    return toValue(Array.from(v.data)); // a tensor's values, flat
  }
  if (typeof v === 'object') return { structValue: toStruct(v) };
  throw new TypeError(`cannot send ${typeof v} in a Struct`);
}

/** A plain object as a Struct message. */
function toStruct(obj) {
  const fields = {};
  for (const [k, v] of Object.entries(obj || {})) if (v !== undefined) fields[k] = toValue(v);
  return { fields };
}

module.exports = { fromStruct, toStruct, fromValue, toValue };

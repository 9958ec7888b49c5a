'use strict';
// @inspector/client: the Node.js client of the inspector gRPC service.

const client = require('./client');
const tensor = require('./tensor');

module.exports = {
  InspectorClient: client.InspectorClient,
  InspectorError: client.InspectorError,
  SharedMemoryError: client.SharedMemoryError,
  status: client.status,
  PROTO_PATH: client.PROTO_PATH,
  CHANNEL_FIELDS: client.CHANNEL_FIELDS,
  FLAGS: client.FLAGS,
  encodeTensor: tensor.encodeTensor,
  decodeTensor: tensor.decodeTensor,
  floatToHalf: tensor.floatToHalf,
  halfToFloat: tensor.halfToFloat,
};

"""protos/kserve/grpc_service.proto against the protocol as tritonclient ships it: every message
we define has the same fields (numbers, types, labels, oneofs) and every RPC we serve the same
types, so the stock clients' bytes are ours; and both load into one process."""

from google.protobuf import descriptor_pb2
from tritonclient.grpc import service_pb2 as triton

from inspector.kserve import grpc_service_pb2 as ours


def _messages(f: descriptor_pb2.FileDescriptorProto) -> dict:
    out = {}

    def walk(m, prefix):
        out[prefix + m.name] = m
        for n in m.nested_type:
            walk(n, prefix + m.name + ".")
    for m in f.message_type:
        walk(m, "")
    return out


def _proto(module) -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(f)
    return f


def _fields(m) -> dict:
    return {f.name: (f.number, f.type, f.label, f.type_name, f.oneof_index if f.HasField("oneof_index") else None)
            for f in m.field}


def test_messages_and_rpcs_match_the_published_protocol():
    mine, theirs = _proto(ours), _proto(triton)
    assert mine.package == theirs.package == "inference"
    tm = _messages(theirs)
    mm = _messages(mine)
    assert len(mm) > 30
    for name, m in mm.items():
        assert name in tm, f"{name} is not in the protocol"
        assert _fields(m) == _fields(tm[name]), name
        assert [o.name for o in m.oneof_decl] == [o.name for o in tm[name].oneof_decl], name
    (svc,) = mine.service
    their_rpcs = {x.name: x for x in next(s for s in theirs.service if s.name == svc.name).method}
    for rpc in svc.method:
        t = their_rpcs[rpc.name]
        assert (rpc.input_type, rpc.output_type, rpc.client_streaming, rpc.server_streaming) == \
               (t.input_type, t.output_type, t.client_streaming, t.server_streaming), rpc.name


def test_wire_compatible_both_ways():
    req = triton.ModelInferRequest(model_name="m", id="1", raw_input_contents=[b"\1\2"])
    req.parameters["p"].double_param = 0.5
    req.inputs.add(name="x", datatype="FP16", shape=[1, 1])
    req.outputs.add(name="layer")
    back = ours.ModelInferRequest.FromString(req.SerializeToString())
    assert back.parameters["p"].double_param == 0.5 and back.inputs[0].shape == [1, 1]
    assert back.outputs[0].name == "layer" and back.raw_input_contents == [b"\1\2"]
    assert triton.ModelInferRequest.FromString(back.SerializeToString()) == req

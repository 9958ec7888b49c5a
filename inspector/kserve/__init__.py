"""The Open Inference Protocol (KServe v2 / Triton) over the inspector core: gRPC servicer and REST router.

The grpc_service_pb2* modules are generated from protos/kserve by scripts/gen_protos.py."""

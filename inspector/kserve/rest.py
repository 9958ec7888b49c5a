"""The Open Inference Protocol over HTTP/REST (KServe v2, as Triton serves it) on the HTTP edge:
JSON <-> oip.py, as a FastAPI router that inspector.http.app includes.

Tensors travel as typed `data` arrays (flat or nested, row-major) or with the binary tensor data
extension: the body is the JSON header (its length in the `Inference-Header-Content-Length`
header) followed by the inputs' bytes, each input saying its `binary_data_size`; an output asked
for with `binary_data: true` (or every output, with the request parameter `binary_data_output`)
comes back the same way. Errors are `{"error": "..."}` with 400 (a bad request), 404 (an unknown
model), 503 (an unloaded model), 401/429 as the rest of the edge.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from inspector import errors
from inspector.core import Inspector
from inspector.kserve.oip import ModelStats, Oip, TensorIn, from_raw, from_values, to_raw

log = logging.getLogger("inspector.kserve")
HEADER_LENGTH = "Inference-Header-Content-Length"
STATUS = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "UNAVAILABLE": 503, "RESOURCE_EXHAUSTED": 429,
          "PERMISSION_DENIED": 403, "FAILED_PRECONDITION": 400, "CANCELLED": 499, "UNAUTHENTICATED": 401}
OPEN_PATHS = ("/v2/health/live", "/v2/health/ready")


def _error(exc: BaseException) -> JSONResponse:
    if isinstance(exc, errors.InspectorError):
        return JSONResponse({"error": exc.message}, STATUS.get(exc.code, 500))
    request_id = uuid.uuid4().hex[:12]
    log.error("OIP REST request %s failed unexpectedly", request_id, exc_info=exc)
    return JSONResponse({"error": f"internal error (request id {request_id}); the server log has details"}, 500)


def _json(body: bytes, field: str = "body") -> dict:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.InvalidArgument(f"the request {field} is not JSON: {exc}", field=field) from None
    if not isinstance(value, dict):
        raise errors.InvalidArgument(f"the request {field} must be a JSON object", field=field)
    return value


def parse_infer(body: bytes, header_length: str | None) -> tuple[dict, list[TensorIn]]:
    """The request's JSON and its inputs (typed data or binary tensor data)."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise errors.InvalidArgument(f"{HEADER_LENGTH} {header_length!r} is not a number",
                                         field=HEADER_LENGTH) from None
        if not 0 <= n <= len(body):
            raise errors.InvalidArgument(f"{HEADER_LENGTH} {n} exceeds the body of {len(body)} bytes",
                                         field=HEADER_LENGTH)
        head, binary = _json(body[:n]), memoryview(body)[n:]
    else:
        head, binary = _json(body), memoryview(b"")
    inputs, offset = [], 0
    given = head.get("inputs")
    if not isinstance(given, list):
        raise errors.InvalidArgument("the request needs 'inputs': a list of {name, shape, datatype, data}",
                                     field="inputs")
    for i, t in enumerate(given):
        if not isinstance(t, dict):
            raise errors.InvalidArgument(f"inputs[{i}] is not an object", field=f"inputs[{i}]")
        name, datatype, shape = t.get("name", ""), t.get("datatype", ""), t.get("shape")
        field = f"inputs.{name or i}"
        if not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
            raise errors.InvalidArgument(f"input '{name}': shape must be a list of integers", field=field)
        size = (t.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise errors.InvalidArgument(f"input '{name}': binary_data_size {size} runs past the binary data "
                                             f"({len(binary) - offset} bytes left)", field=field)
            inputs.append(from_raw(name, datatype, shape, bytes(binary[offset:offset + size]), field))
            offset += size
        elif "data" in t:
            inputs.append(from_values(name, datatype, shape, t["data"], field))
        else:
            raise errors.InvalidArgument(f"input '{name}' has no data (nor binary_data_size)", field=field)
    if offset != len(binary):
        raise errors.InvalidArgument(f"{len(binary) - offset} bytes of binary data belong to no input",
                                     field="inputs")
    return head, inputs


def _data(arr: np.ndarray) -> list:
    if arr.dtype == object or arr.dtype.kind in "US":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.ravel()]
    if arr.dtype.kind == "f" or arr.dtype.name == "bfloat16":
        return arr.astype(np.float64).ravel().tolist()
    return arr.ravel().tolist()


def _stats_json(name: str, s: ModelStats) -> dict:
    def d(x):
        return {"count": x.count, "ns": x.ns}

    return {"name": name, "version": "1", "last_inference": s.last_inference, "inference_count": s.inference_count,
            "execution_count": s.execution_count,
            "inference_stats": {k: d(getattr(s, k)) for k in ("success", "fail", "queue", "compute_input",
                                                                "compute_infer", "compute_output")}
            | {"cache_hit": d(type(s.success)()), "cache_miss": d(type(s.success)())},
            "batch_stats": [{"batch_size": b, "compute_input": d(i), "compute_infer": d(f), "compute_output": d(o)}
                            for b, (i, f, o) in sorted(s.batches.items())]}


def router(core: Inspector, *, tokens: tuple[str, ...] = (), gate=None, retry_after_s: float = 1.0) -> APIRouter:
    """The /v2 routes over `core`; bearer `tokens` are required on every route but the health
    checks when given; `gate` admits inference and repository calls as the rest of the edge."""
    from inspector.service.auth import token_matches
    from inspector.service.limits import Busy

    oip = Oip.of(core)
    r = APIRouter(prefix="/v2", tags=["Open Inference Protocol (KServe v2)"])

    async def run(request: Request, fn, *args, admit: bool = False):
        if tokens and request.url.path not in OPEN_PATHS:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token_matches(token.strip(), tokens):
                return JSONResponse({"error": "missing or wrong bearer token: send 'Authorization: Bearer <token>'"},
                                    401)
        entered = False
        if admit and gate is not None:
            try:
                entered = await run_in_threadpool(gate.enter, lambda: False)
            except Busy:
                return JSONResponse({"error": "the server is busy: every slot and queue place is taken; retry later"},
                                    429, headers={"retry-after": str(max(1, round(retry_after_s)))})
        try:
            return await run_in_threadpool(fn, *args)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error body
            return _error(exc)
        finally:
            if entered:
                gate.leave()

    @r.get("/health/live")
    async def live(request: Request):
        return await run(request, lambda: {"live": True})

    @r.get("/health/ready")
    async def ready(request: Request):
        return await run(request, lambda: {"ready": True})

    @r.get("")
    async def server_metadata(request: Request):
        return await run(request, oip.server_metadata)

    def model_ready(name: str, version: str = ""):
        ok = oip.model_ready(name, version)
        return JSONResponse({"name": name, "ready": ok}, 200 if ok else 400)

    @r.get("/models/{name}/ready")
    async def model_ready_route(name: str, request: Request):
        return await run(request, model_ready, name)

    @r.get("/models/{name}/versions/{version}/ready")
    async def model_version_ready(name: str, version: str, request: Request):
        return await run(request, model_ready, name, version)

    @r.get("/models/stats")
    async def all_stats(request: Request):
        return await run(request, lambda: {"model_stats": [_stats_json(n, s) for n, s in oip.statistics()]})

    @r.get("/models/{name}/stats")
    async def model_stats(name: str, request: Request):
        return await run(request, lambda: {"model_stats": [_stats_json(n, s) for n, s in oip.statistics(name)]})

    @r.get("/models/{name}/versions/{version}/stats")
    async def model_version_stats(name: str, version: str, request: Request):
        return await run(request, lambda: {"model_stats": [_stats_json(n, s)
                                                           for n, s in oip.statistics(name, version)]})

    @r.get("/models/{name}")
    async def model_metadata(name: str, request: Request):
        return await run(request, oip.model_metadata, name)

    @r.get("/models/{name}/versions/{version}")
    async def model_version_metadata(name: str, version: str, request: Request):
        return await run(request, oip.model_metadata, name, version)

    def infer(name: str, version: str, body: bytes, header_length: str | None) -> Response:
        call = oip.start(name, version)
        ok = False
        try:
            with call.decoding():
                head, inputs = parse_infer(body, header_length)
            asked = head.get("outputs") or []
            if not isinstance(asked, list) or not all(isinstance(o, dict) and o.get("name") for o in asked):
                raise errors.InvalidArgument("'outputs' must be a list of {name, parameters}", field="outputs")
            outcome = oip.infer(call, inputs, [o["name"] for o in asked])
            with call.encoding():
                binary_all = bool((head.get("parameters") or {}).get("binary_data_output"))
                wants = {o["name"]: (o.get("parameters") or {}).get("binary_data", binary_all) for o in asked}
                outputs, blobs = [], []
                for out_name, datatype, arr in outcome.outputs:
                    entry = {"name": out_name, "datatype": datatype, "shape": list(arr.shape)}
                    if wants.get(out_name, binary_all):
                        raw = to_raw(arr)
                        entry["parameters"] = {"binary_data_size": len(raw)}
                        blobs.append(raw)
                    else:
                        entry["data"] = _data(arr)
                    outputs.append(entry)
                answer = {"model_name": outcome.model_name, "model_version": outcome.model_version, "outputs": outputs}
                if head.get("id"):
                    answer["id"] = head["id"]
                text = json.dumps(answer).encode()
                if blobs:
                    response = Response(b"".join([text, *blobs]), media_type="application/octet-stream",
                                        headers={HEADER_LENGTH: str(len(text))})
                else:
                    response = Response(text, media_type="application/json")
            ok = True
            return response
        finally:
            call.done(ok)

    @r.post("/models/{name}/infer")
    async def infer_route(name: str, request: Request):
        body = await request.body()
        return await run(request, infer, name, "", body, request.headers.get(HEADER_LENGTH), admit=True)

    @r.post("/models/{name}/versions/{version}/infer")
    async def infer_version_route(name: str, version: str, request: Request):
        body = await request.body()
        return await run(request, infer, name, version, body, request.headers.get(HEADER_LENGTH), admit=True)

    @r.post("/repository/index")
    async def index(request: Request):
        body = await request.body()
        return await run(request, lambda: JSONResponse(oip.index(bool(_json(body).get("ready")))))

    def _params(body: bytes) -> dict:
        params = _json(body).get("parameters") or {}
        if not isinstance(params, dict):
            raise errors.InvalidArgument("'parameters' must be an object", field="parameters")
        out = {}
        for k, v in params.items():
            if k.startswith("file:"):
                if not isinstance(v, str):
                    raise errors.InvalidArgument(f"parameter '{k}' must be the file's bytes as base64", field=k)
                try:
                    v = base64.b64decode(v, validate=True)
                except ValueError:
                    raise errors.InvalidArgument(f"parameter '{k}' is not valid base64", field=k) from None
            out[k] = v
        return out

    @r.post("/repository/models/{name}/load")
    async def load(name: str, request: Request):
        body = await request.body()
        return await run(request, lambda: oip.load(name, _params(body)) or {}, admit=True)

    @r.post("/repository/models/{name}/unload")
    async def unload(name: str, request: Request):
        body = await request.body()
        return await run(request, lambda: oip.unload(name, _params(body)) or {}, admit=True)

    return r

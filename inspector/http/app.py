"""The HTTP edge: a JSON API under /api/v1 over the same core as the gRPC edge (no inspection
logic here), with Server-Sent Events for the long calls.

Results travel in their wire form as JSON (`Wire.to_json`: info, then items with tensors as
dtype + shape + base64 bytes and PNGs as base64); `?item=GROUP/NAME` returns one item alone (a
PNG as image/png, a tensor as .npy). Errors are JSON `{"code", "message", "field"}` with the
gRPC status names and messages.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import queue
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from inspector_client.types import Progress, Result
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from inspector import errors
from inspector.core import Inspector
from inspector.inputs import InputData
from inspector.runtime.cancellation import cancellable

log = logging.getLogger("inspector.http")
PREFIX = "/api/v1"
STATUS = {"INVALID_ARGUMENT": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404,
          "FAILED_PRECONDITION": 412, "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "DEADLINE_EXCEEDED": 504,
          "UNAVAILABLE": 503, "INTERNAL": 500}


# ---- request bodies (the OpenAPI schema is generated from them) ------------------------------
class TensorIn(BaseModel):
    dtype: str = Field(description="numpy dtype name, e.g. float32")
    shape: list[int]
    data: str = Field(description="base64 of the raw little-endian C-order bytes")


class InputIn(BaseModel):
    tensor: TensorIn | None = Field(None, description="the input tensor, used as is")
    images: list[str] | None = Field(None, description="encoded images (PNG, JPEG, ...) as base64: a batch")
    preprocess: dict | None = Field(None, description="per-request override of the model's spec")
    named: dict[str, InputIn] | None = Field(None, description="models with several inputs: each by name")


class Inputs(BaseModel):
    input: InputIn


class FeatureMapsIn(Inputs):
    layers: list[str] | None = None
    raw: bool = True
    png: bool = False
    stats: bool = False
    float16: bool = False
    cmap: str | None = None
    normalize: str | None = None
    channels: list[int] | None = None
    top_k: int | None = None
    label: bool = False


class WeightsIn(BaseModel):
    layers: list[str] | None = None
    raw: bool = True
    png: bool = False
    histogram: bool = False
    stats: bool = False
    mode: str | None = None
    cmap: str | None = None


class GradientsIn(Inputs):
    wrt: list[str] | None = None
    target: Any = Field(None, description="an index, a list of classes, or {tensor, index, classes, channel, box}")
    policy: str | None = None


class ExplainIn(Inputs):
    method: str | None = None
    target: Any = None
    layers: list[str] | None = None
    params: dict = Field(default_factory=dict)
    overlay: bool = True
    cmap: str | None = None
    alpha: float | None = None


class EvaluateIn(Inputs):
    heatmap: TensorIn
    metrics: list[str] | None = None
    target: Any = None
    params: dict = Field(default_factory=dict)


class MaximizeIn(BaseModel):
    layer: str | None = None
    channels: list[int]
    steps: int | None = None
    objective: str | None = None
    preview_every: int | None = None
    params: dict = Field(default_factory=dict)


class AuditIn(BaseModel):
    batches: list[InputIn]
    layers: list[str] | None = None
    labels: list[int] | None = None
    preprocess: dict | None = None
    resume_state: str | None = Field(None, description="base64 of a checkpoint's state")
    checkpoint_every: int = 0
    columnar: bool = False


class LoadIn(BaseModel):
    server_path: str
    name: str | None = None
    preprocess: dict | None = None
    providers: list[str] = Field(default_factory=list)
    replace: bool = Field(False, description="move the name from another model")


# ---- conversions ------------------------------------------------------------------------------
def _b64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise errors.InvalidArgument(f"{field} is not valid base64", field=field) from None


def _tensor(t: TensorIn, field: str) -> np.ndarray:
    from inspector.service.convert import array_from_parts

    return array_from_parts(t.dtype, t.shape, _b64(t.data, f"{field}.data"), field)


def _input(i: InputIn, field: str = "input") -> InputData:
    if i.named:
        return InputData(preprocess=i.preprocess, named={k: _input(v, f"{field}.named.{k}") for k, v in i.named.items()})
    if i.tensor is not None and i.images:
        raise errors.InvalidArgument(f"give {field}.tensor or {field}.images, not both", field=field)
    if i.tensor is not None:
        return InputData(tensor=_tensor(i.tensor, f"{field}.tensor"), preprocess=i.preprocess)
    if i.images:
        return InputData(images=[_b64(m, f"{field}.images") for m in i.images], preprocess=i.preprocess)
    raise errors.InvalidArgument(f"{field} is missing: set {field}.tensor or {field}.images", field=field)


def _answer(result: Result, item: str | None) -> Response:
    """The whole result as JSON, or with `item=GROUP/NAME` that item alone."""
    wire = result.to_wire()
    if item is None:
        return JSONResponse(wire.to_json())
    for i in wire.items:
        if f"{i.group}/{i.name}" == item:
            if isinstance(i.value, bytes | bytearray):
                return Response(bytes(i.value), media_type=i.media_type or "application/octet-stream")
            buf = io.BytesIO()
            np.save(buf, np.asarray(i.value))
            return Response(buf.getvalue(), media_type="application/octet-stream")
    names = ", ".join(f"{i.group}/{i.name}" for i in wire.items)
    raise errors.NotFound(f"this result has no item {item!r}; its items: {names}")


def _next_event(events: queue.Queue, gone: threading.Event) -> bytes | None:
    """The next event; None once the call ended (or the client left)."""
    while not gone.is_set():
        try:
            return events.get(timeout=0.2)
        except queue.Empty:
            continue
    return None


def _event(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def _progress(p: Progress) -> dict:
    return {"step": p.step, "total": p.total, "values": list(p.values), "message": p.message,
            "previews": {k: base64.b64encode(v).decode() for k, v in p.previews.items()}}


def _error(exc: BaseException, request_id: str) -> tuple[int, dict]:
    if isinstance(exc, errors.InspectorError):
        body = {"code": exc.code, "message": exc.message}
        if getattr(exc, "field", None):
            body["field"] = exc.field
        return STATUS.get(exc.code, 500), body
    log.error("HTTP request %s failed unexpectedly", request_id, exc_info=exc)
    return 500, {"code": "INTERNAL", "message": f"internal error (request id {request_id}); the server log has details"}


# ---- the app ----------------------------------------------------------------------------------
def create_app(core: Inspector, *, tokens: tuple[str, ...] = (), gate=None, retry_after_s: float = 1.0) -> FastAPI:
    """The API over `core`; `tokens`: bearer tokens required on /api/v1 (none: open); `gate`: the
    gRPC server's admission gate, shared so both edges count against the same limits."""
    from inspector.service.auth import token_matches
    from inspector.service.limits import Busy

    app = FastAPI(title="inspector", version="1", openapi_url=f"{PREFIX}/openapi.json", docs_url=None,
                  redoc_url=None, description="See what any ONNX CNN sees: the JSON API of the inspector service.")
    open_paths = {f"{PREFIX}/openapi.json", f"{PREFIX}/docs", f"{PREFIX}/health"}

    @app.middleware("http")
    async def edge(request: Request, call_next):
        """Request id, bearer token and admission, in that order."""
        sent = request.headers.get("x-request-id", "")
        request_id = sent if sent.isascii() and 0 < len(sent) <= 64 and sent.isprintable() else uuid.uuid4().hex[:12]
        request.state.request_id = request_id
        path = request.url.path
        if path.startswith(PREFIX) and path not in open_paths:
            if tokens:
                scheme, _, token = request.headers.get("authorization", "").partition(" ")
                if scheme.lower() != "bearer" or not token_matches(token.strip(), tokens):
                    return JSONResponse({"code": "UNAUTHENTICATED", "message": "missing or wrong bearer token: send "
                                         "'Authorization: Bearer <token>'"}, 401, headers={"x-request-id": request_id})
            if gate is not None and request.method != "GET":
                try:
                    entered = await run_in_threadpool(gate.enter, lambda: False)
                except Busy:
                    return JSONResponse({"code": "RESOURCE_EXHAUSTED", "message": "the server is busy: every slot "
                                         "and queue place is taken; retry later"}, 429,
                                        headers={"retry-after": str(max(1, round(retry_after_s))),
                                                 "x-request-id": request_id})
                request.state.gate = gate if entered else None
        try:
            response = await call_next(request)
        finally:
            held = getattr(request.state, "gate", None)
            if held is not None and not getattr(request.state, "streaming", False):
                held.leave()
        response.headers["x-request-id"] = request_id
        return response

    @app.exception_handler(errors.InspectorError)
    async def domain_error(request: Request, exc: errors.InspectorError):
        status, body = _error(exc, request.state.request_id)
        return JSONResponse(body, status)

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"code": "INVALID_ARGUMENT", "message": f"{where or 'body'}: {first.get('msg', 'invalid')}",
                             "field": where}, 400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        status, body = _error(exc, getattr(request.state, "request_id", "-"))
        return JSONResponse(body, status)

    async def call(fn: Callable, *args, **kwargs):
        return await run_in_threadpool(fn, *args, **kwargs)

    def stream(request: Request, start: Callable[[], Iterator]) -> StreamingResponse:
        """Progress events, then the result event, over SSE. One thread drives the call and hands
        events over a queue; a client that goes away sets `gone`, which cancels the call's next
        model run, and the thread then returns the admission slot itself."""
        gone = threading.Event()
        request.state.streaming = True
        held = getattr(request.state, "gate", None)
        events: queue.Queue = queue.Queue(maxsize=64)
        request_id = request.state.request_id

        def put(event: bytes | None) -> None:
            while not gone.is_set():  # a client that left reads no more: never block on it
                try:
                    return events.put(event, timeout=0.2)
                except queue.Full:
                    continue

        def drive() -> None:
            try:
                with cancellable(gone.is_set):
                    gen = start()
                    try:
                        while True:
                            try:
                                p = next(gen)
                            except StopIteration as stop:
                                put(_event("result", stop.value.to_wire().to_json()))
                                return
                            put(_event("progress", _progress(p)))
                    finally:
                        gen.close()
            except Exception as exc:  # noqa: BLE001 - the stream ends with an error event
                status, body = _error(exc, request_id)
                put(_event("error", {**body, "status": status}))
            finally:
                put(None)
                if held is not None:
                    held.leave()

        async def watch() -> None:  # the client leaving is seen even while no event is due
            while not gone.is_set():
                if await request.is_disconnected():
                    gone.set()
                    return
                await asyncio.sleep(0.2)

        async def send():
            threading.Thread(target=drive, name="http-stream", daemon=True).start()
            watcher = asyncio.ensure_future(watch())
            try:
                while True:
                    event = await run_in_threadpool(_next_event, events, gone)
                    if event is None:
                        return
                    yield event
            finally:
                gone.set()
                watcher.cancel()

        return StreamingResponse(send(), media_type="text/event-stream", headers={"cache-control": "no-cache"})

    # ---- models ---------------------------------------------------------------------------
    @app.get(f"{PREFIX}/health")
    async def health():
        return {"status": "SERVING"}

    @app.get(f"{PREFIX}/models")
    async def list_models():
        models = await call(core.list_models)
        return {"models": [_model_json(m) for m in models], "quarantined": await call(core.quarantined)}

    @app.post(f"{PREFIX}/models", summary="Upload a model: the body is the .onnx file")
    async def upload(request: Request, name: str | None = None, preprocess: str | None = None,
                     providers: str | None = None, replace: bool = False):
        spec = _json_param(preprocess, "preprocess")
        limit = core.config.max_upload_bytes
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise errors.ResourceExhausted(f"model of more than {limit} bytes exceeds the upload limit")
                spool.write(chunk)
            spool.seek(0)
            chunks = iter(lambda: spool.read(1 << 20), b"")
            info = await call(core.upload, chunks, name=name or None, preprocess=spec,
                              providers=[p for p in (providers or "").split(",") if p], replace=replace)
        return _model_json(info)

    @app.post(f"{PREFIX}/models:load", summary="Load a model from a path under a server model root")
    async def load(body: LoadIn):
        return _model_json(await call(core.load_path, body.server_path, name=body.name,
                                      preprocess=body.preprocess, providers=body.providers, replace=body.replace))

    @app.get(f"{PREFIX}/models/{{model}}")
    async def model_info(model: str):
        return _model_json(await call(core.model_info, model))

    @app.delete(f"{PREFIX}/models/{{model}}")
    async def unload(model: str):
        return {"id": await call(core.unload, model)}

    @app.get(f"{PREFIX}/methods")
    async def methods():
        return {"methods": await call(core.methods)}

    # ---- inspection ----------------------------------------------------------------------
    @app.post(f"{PREFIX}/models/{{model}}/infer")
    async def infer(model: str, body: Inputs, item: str | None = None):
        return _answer(await call(core.infer, model, _input(body.input)), item)

    @app.post(f"{PREFIX}/models/{{model}}/feature-maps")
    async def feature_maps(model: str, body: FeatureMapsIn, item: str | None = None):
        return _answer(await call(core.feature_maps, model, _input(body.input), body.layers, raw=body.raw,
                                  png=body.png, stats=body.stats, float16=body.float16, cmap=body.cmap,
                                  normalize=body.normalize, channels=body.channels, top_k=body.top_k,
                                  label=body.label or None), item)

    @app.post(f"{PREFIX}/models/{{model}}/weights")
    async def weights(model: str, body: WeightsIn, item: str | None = None):
        return _answer(await call(core.weights, model, body.layers, raw=body.raw, png=body.png,
                                  histogram=body.histogram, stats=body.stats, mode=body.mode, cmap=body.cmap), item)

    @app.post(f"{PREFIX}/models/{{model}}/gradients")
    async def gradients(model: str, body: GradientsIn, item: str | None = None):
        return _answer(await call(core.gradients, model, _input(body.input), body.wrt, body.target, body.policy),
                       item)

    @app.post(f"{PREFIX}/models/{{model}}/explain")
    async def explain(model: str, body: ExplainIn, item: str | None = None):
        return _answer(await call(core.explain, model, _input(body.input), body.method, body.target, body.layers,
                                  body.params, overlay=body.overlay, cmap=body.cmap, alpha=body.alpha), item)

    @app.post(f"{PREFIX}/models/{{model}}/evaluate")
    async def evaluate(model: str, body: EvaluateIn, item: str | None = None):
        return _answer(await call(core.evaluate, model, _input(body.input), _tensor(body.heatmap, "heatmap"),
                                  body.metrics, body.target, body.params), item)

    @app.post(f"{PREFIX}/models/{{model}}/maximize", summary="Server-Sent Events: progress, then result")
    async def maximize(model: str, body: MaximizeIn, request: Request):
        return stream(request, lambda: core.maximize_stream(
            model, body.layer, body.channels, body.steps, body.objective, preview_every=body.preview_every,
            params=body.params))

    @app.post(f"{PREFIX}/models/{{model}}/audit", summary="Server-Sent Events: progress per batch, then result")
    async def audit(model: str, body: AuditIn, request: Request):
        batches = [_input(b, f"batches.{i}") for i, b in enumerate(body.batches)]
        state = _b64(body.resume_state, "resume_state") if body.resume_state else None
        return stream(request, lambda: core.audit_stream(
            model, batches, body.layers, labels=body.labels, preprocess=body.preprocess, resume_state=state,
            checkpoint_every=body.checkpoint_every, columnar=body.columnar))

    # ---- docs ------------------------------------------------------------------------------
    @app.get(f"{PREFIX}/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs():
        return DOCS_PAGE

    static = Path(__file__).parent / "static"
    if (static / "index.html").is_file():  # the single-page app, shipped inside the package
        app.mount("/app", StaticFiles(directory=static, html=True), name="app")

    @app.get("/", include_in_schema=False)
    async def root():
        return RedirectResponse("/app/" if (static / "index.html").is_file() else f"{PREFIX}/docs")

    from inspector.kserve.rest import router as kserve_router

    app.include_router(kserve_router(core, tokens=tokens, gate=gate, retry_after_s=retry_after_s))  # OIP: /v2
    return app


def _json_param(text: str | None, field: str):
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.InvalidArgument(f"{field} is not JSON: {exc.msg}", field=field) from None


def _model_json(info) -> dict:
    import dataclasses

    return dataclasses.asdict(info)


# A docs page built from the schema in the browser, with nothing fetched from elsewhere.
DOCS_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>inspector API</title>
<style>body{font:14px system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}
code{background:#f3f3f3;padding:1px 4px}h2{margin-top:1.5em}.op{margin:.6em 0}
.m{display:inline-block;width:4.5em;font-weight:600}</style></head><body>
<h1>inspector API <small>/api/v1</small></h1>
<p>JSON in, JSON out; the schema is <a href="openapi.json">openapi.json</a>. Results are
<code>{model_id, providers, warnings, info, items}</code>; <code>?item=GROUP/NAME</code> returns one item
(a PNG, or a tensor as .npy). Long calls stream Server-Sent Events. Send
<code>Authorization: Bearer &lt;token&gt;</code> when the server requires one.</p><div id="ops"></div>
<script>
fetch("openapi.json").then(r => r.json()).then(api => {
  const ops = document.getElementById("ops");
  for (const [path, methods] of Object.entries(api.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const div = document.createElement("div"); div.className = "op";
      const body = op.requestBody ? " (body: " + Object.keys(op.requestBody.content).join(", ") + ")" : "";
      div.innerHTML = `<span class="m">${method.toUpperCase()}</span><code></code> <span></span>`;
      div.querySelector("code").textContent = path;
      div.querySelector("span:last-child").textContent = (op.summary || "") + body;
      ops.appendChild(div);
    }
  }
});
</script></body></html>"""

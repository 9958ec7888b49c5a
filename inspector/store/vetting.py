"""Untrusted models: static checks, then a first load and one run in a child process.

Policy for onnx.checker (docs/probes.md): the checker refuses some models onnxruntime runs
(graph outputs or value_info without a type/shape, strict shape inference). Those findings
become warnings and the trial run decides; every other checker finding refuses the model.
The child runs under an address-space limit and a time limit, so a model that crashes,
hangs or balloons onnxruntime costs the server one child process, never itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import onnx

from inspector import errors
from inspector.runtime.ort_errors import clean

log = logging.getLogger(__name__)
SELF_KILL_ENV = "INSPECTOR_VETTING_SELF_KILL"  # test hook: the trial child SIGKILLs itself
COSMETIC = ("Field 'type' of 'value_info' is required", "Field 'shape' of 'type' is required",
            "Field 'elem_type' of 'type' is required")


def check_static(path: Path, *, max_ir_version: int | None = None, max_opset: int | None = None) -> list[str]:
    """IR version, opset and onnx.checker(full_check); warnings, or InvalidArgument (the size
    bound is vet_model's, which always applies)."""
    model = onnx.load(str(path), load_external_data=False)
    max_ir = max_ir_version or onnx.IR_VERSION
    if not 3 <= model.ir_version <= max_ir:
        raise errors.InvalidArgument(
            f"the model's IR version {model.ir_version} is outside the supported range 3..{max_ir}",
            field="model")
    newest = max_opset or onnx.defs.onnx_opset_version()
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx") and not 1 <= entry.version <= newest:
            raise errors.InvalidArgument(
                f"the model imports opset {entry.version} of the default domain; this server "
                f"supports 1..{newest}", field="model")
    return _checker_findings(path)


def _checker_findings(path: Path) -> list[str]:
    """onnx.checker(full_check) under the policy above; a cosmetic complaint is retried on a copy
    with the missing types filled in, so it cannot hide a real fault behind it."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
        return []
    except onnx.shape_inference.InferenceError as exc:
        return [f"onnx shape inference disagrees with the model: {clean(str(exc))}"]
    except onnx.checker.ValidationError as exc:
        text = str(exc)
        if not any(c in text for c in COSMETIC):
            raise errors.InvalidArgument(f"the model is not a valid ONNX model: {clean(text)}",
                                         field="model") from None
    warning = f"the ONNX checker wants types on outputs (onnxruntime does not): {clean(text)}"
    model = onnx.load(str(path), load_external_data=False)
    _fill_types(model)
    repaired = path.with_name(f".vet-{uuid.uuid4().hex}.onnx")  # beside it: external data resolves
    try:
        onnx.save(model, str(repaired))
        return [warning] + _checker_findings_strict(repaired)
    finally:
        repaired.unlink(missing_ok=True)


def _checker_findings_strict(path: Path) -> list[str]:
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.shape_inference.InferenceError as exc:
        return [f"onnx shape inference disagrees with the model: {clean(str(exc))}"]
    except onnx.checker.ValidationError as exc:
        raise errors.InvalidArgument(f"the model is not a valid ONNX model: {clean(str(exc))}",
                                     field="model") from None
    return []


def _fill_types(model: onnx.ModelProto) -> None:
    """Give untyped graph outputs their inferred type; drop untyped value_info entries."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
        known = {v.name: v for v in [*inferred.value_info, *inferred.output] if _typed(v)}
    except Exception:  # noqa: BLE001 - inference on untrusted graphs may fail in many ways
        known = {}
    for output in model.graph.output:
        if not _typed(output):
            if output.name in known:
                output.CopyFrom(known[output.name])
            else:
                output.type.tensor_type.elem_type = output.type.tensor_type.elem_type or 1
                output.type.tensor_type.shape.SetInParent()
    keep = [v for v in model.graph.value_info if _typed(v)]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)


def _typed(value: onnx.ValueInfoProto) -> bool:
    t = value.type
    return t.HasField("tensor_type") and t.tensor_type.elem_type != 0 and t.tensor_type.HasField("shape") \
        or (t.WhichOneof("value") not in (None, "tensor_type"))


def trial_run(path: Path, *, timeout_s: float, memory_bytes: int,
              spatial: tuple[int, int] = (64, 64)) -> list[str]:
    """Load `path` in onnxruntime and run it once on zeros in a child; warnings or an error.

    Refused: a load error, a crash (signal), a hang past `timeout_s`, running out of memory.
    A run error on the guessed dummy input is only a warning (the guess may not fit the model).
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "inspector.store.vetting", str(path), str(memory_bytes),
               str(spatial[0]), str(spatial[1])]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout_s, env=env,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise errors.InvalidArgument(
            f"onnxruntime did not finish loading and running the model on a dummy input within "
            f"{timeout_s:g} s; the model was refused", field="model") from None
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        code = done.returncode
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        log.warning("vetting child for %s ended with %s: %s", path, how, done.stderr[-2000:])
        raise errors.InvalidArgument(
            f"onnxruntime crashed ({how}) while loading or running the model; the model was refused",
            field="model")
    return _verdict(json.loads(lines[-1]), memory_bytes)


def _verdict(outcome: list[str], memory_bytes: int) -> list[str]:
    stage, code, message = outcome
    if stage == "ok":
        return []
    if code == "RESOURCE_EXHAUSTED":
        raise errors.InvalidArgument(
            f"the model needs more than {memory_bytes >> 20} MiB to load and run once; the model "
            "was refused", field="model")
    if stage == "load":
        error = errors.FailedPrecondition if code == "FAILED_PRECONDITION" else errors.InvalidArgument
        raise error(message, field="model")
    return [f"a trial run on zeros failed (the input size was guessed): {message}"]


def _child(path: str, memory_bytes: int, spatial: tuple[int, int]) -> list[str]:
    """In the child: limit memory, load, run once on zeros; (stage, error code, message)."""
    import resource

    if os.environ.get(SELF_KILL_ENV):
        os.kill(os.getpid(), signal.SIGKILL)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    import numpy as np
    import onnxruntime as ort

    from inspector.runtime.ort_errors import load_error, run_error

    stage = "load"
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        stage = "run"
        feeds = {i.name: np.zeros(_dummy_shape(i.shape, spatial), _dtype(i.type))
                 for i in session.get_inputs()}
        session.run(None, feeds)
        return ["ok", "", ""]
    except MemoryError:
        return [stage, "RESOURCE_EXHAUSTED", "out of memory"]
    except Exception as exc:  # noqa: BLE001 - every ORT failure is reported, mapped
        mapped = load_error(exc) if stage == "load" else run_error(exc)
        return [stage, mapped.code, mapped.message]


def _dtype(ort_type: str) -> str:
    """numpy dtype name of an ORT type string such as 'tensor(float)'."""
    name = ort_type.removeprefix("tensor(").removesuffix(")")
    return {"float": "float32", "double": "float64", "string": "object"}.get(name, name)


def _dummy_shape(shape: list, spatial: tuple[int, int]) -> list[int]:
    """Symbolic dims made concrete: batch 1, NCHW channels 3, the last two `spatial`, else 1."""
    out = []
    for axis, dim in enumerate(shape):
        if isinstance(dim, int) and dim > 0:
            out.append(dim)
        elif axis == 0:
            out.append(1)
        elif len(shape) == 4 and axis == 1:
            out.append(3)
        elif len(shape) >= 3 and axis >= len(shape) - 2:
            out.append(spatial[axis - len(shape) + 2])
        else:
            out.append(1)
    return out


def vet_model(path: Path, size_bytes: int, preprocess: dict | None, config) -> list[str]:
    """Every check an untrusted model passes before the server opens it (config: InspectorConfig).

    The size and version bounds always apply; the checker and the trial run only with
    `config.vetting`. Returns warnings; raises the inspector error that refuses the model.
    """
    if size_bytes > config.max_upload_bytes:
        raise errors.ResourceExhausted(
            f"the model is {size_bytes} bytes, more than the limit of {config.max_upload_bytes} "
            "bytes", field="model")
    if not config.vetting:
        return []
    warnings = check_static(path, max_ir_version=config.max_ir_version, max_opset=config.max_opset)
    return warnings + trial_run(path, timeout_s=config.vet_timeout_s,
                                memory_bytes=config.vet_memory_bytes, spatial=spatial_size(preprocess))


def spatial_size(preprocess: dict | None) -> tuple[int, int]:
    """The (H, W) a preprocess spec produces (crop, else an exact resize), else (64, 64)."""
    spec = preprocess or {}
    for key in ("crop", "resize"):
        value = spec.get(key)
        if isinstance(value, int) and value > 0:
            return value, value
        if isinstance(value, list | tuple) and len(value) == 2:
            return int(value[0]), int(value[1])
    return 64, 64


def verify_store(root: Path | None) -> list[tuple[str, str]]:
    """Move store entries whose bytes no longer match their id to root/.quarantine/.

    Run before a ModelStore opens `root` (for any --store value: `local_root(spec)` from
    inspector.store; a shared folder's entries are checked the same way). Returns (entry,
    reason) for each quarantined entry; `quarantined(root)` lists them later.
    """
    from inspector.store.model_store import ID_RE

    if root is None:  # a bucket (inspector.store.local_root): its cache is verified on use
        return []
    root = Path(root)
    if not root.is_dir():
        return []
    moved = []
    for folder in sorted(root.iterdir()):
        if not ID_RE.fullmatch(folder.name):
            continue
        reason = _entry_fault(folder)
        if reason is None:
            continue
        target = root / ".quarantine" / f"{folder.name}-{int(time.time())}"
        target.parent.mkdir(exist_ok=True)
        os.rename(folder, target)
        log.warning("quarantined store entry %s: %s (now in %s)", folder.name, reason, target)
        moved.append((folder.name, reason))
    return moved


def quarantined(root: Path) -> list[str]:
    """Names of the entries moved to root/.quarantine/ so far (id-time)."""
    folder = Path(root) / ".quarantine"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _entry_fault(folder: Path) -> str | None:
    """Why a store entry is corrupt (missing file, unreadable meta, digest mismatch), or None."""
    model = folder / "model.onnx"
    if not model.is_file():
        return "model.onnx is missing"
    try:
        json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return "meta.json is missing or unreadable"
    digest = hashlib.sha256()
    with model.open("rb") as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != folder.name:
        return "the bytes of model.onnx do not match its id (sha256)"
    return None


if __name__ == "__main__":
    outcome = _child(sys.argv[1], int(sys.argv[2]), (int(sys.argv[3]), int(sys.argv[4])))
    print(json.dumps(outcome), flush=True)

"""Map user provider names ("cpu", "cuda") to onnxruntime execution providers, CPU always last."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import onnxruntime as ort

from inspector import errors

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
ALIASES = {"cpu": CPU, "cuda": "CUDAExecutionProvider", "gpu": "CUDAExecutionProvider",
           "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider",
           "dml": "DmlExecutionProvider", "coreml": "CoreMLExecutionProvider",
           "openvino": "OpenVINOExecutionProvider", "rocm": "ROCMExecutionProvider"}


def resolve_providers(requested: Sequence[str], *, strict: bool) -> tuple[list[str], list[str]]:
    """ORT provider names in preference order ending with CPU, plus warnings for dropped ones.

    A provider this onnxruntime build lacks is dropped with a warning, or raises
    FailedPrecondition when `strict`. An unknown name raises InvalidArgument.
    """
    known = {name.lower(): name for name in ort.get_all_providers()}
    known.update(ALIASES)
    available = set(ort.get_available_providers())
    providers: list[str] = []
    warnings: list[str] = []
    for name in requested:
        provider = known.get(name.strip().lower())
        if provider is None:
            raise errors.InvalidArgument(
                f"unknown execution provider '{name}'; use 'cpu' or 'cuda' (or a full onnxruntime "
                "provider name)", field="providers")
        if provider in providers:
            continue
        if provider not in available:
            short = provider.removesuffix("ExecutionProvider")
            if strict:
                raise errors.FailedPrecondition(
                    f"{short} was requested but this server's onnxruntime cannot use it "
                    f"(available: {', '.join(sorted(available))})", field="providers")
            message = f"{short} requested but not available; using CPU"
            log.warning(message)
            warnings.append(message)
            continue
        providers.append(provider)
    if CPU in providers:
        providers.remove(CPU)
    return [*providers, CPU], warnings

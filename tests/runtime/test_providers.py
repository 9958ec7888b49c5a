"""resolve_providers against this machine's onnxruntime build."""

import logging

import onnxruntime as ort
import pytest

from inspector import errors
from inspector.runtime.providers import resolve_providers

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
HAS_CUDA = CUDA in ort.get_available_providers()


def test_cpu_names():
    assert resolve_providers(["cpu"], strict=True) == ([CPU], [])
    assert resolve_providers(["Cpu", CPU], strict=True) == ([CPU], [])
    assert resolve_providers([], strict=False) == ([CPU], [])


def test_cuda_preferred_or_dropped_with_warning(caplog):
    with caplog.at_level(logging.WARNING):
        providers, warnings = resolve_providers(["cpu", "CUDA"], strict=False)
    if HAS_CUDA:
        assert (providers, warnings) == ([CUDA, CPU], [])
    else:
        assert providers == [CPU]
        assert warnings == ["CUDA requested but not available; using CPU"]
        assert "CUDA requested but not available" in caplog.text


def test_strict_cuda():
    if HAS_CUDA:
        assert resolve_providers([CUDA], strict=True) == ([CUDA, CPU], [])
    else:
        with pytest.raises(errors.FailedPrecondition, match="CUDA"):
            resolve_providers(["cuda"], strict=True)


def test_unknown_provider():
    with pytest.raises(errors.InvalidArgument, match="'tpu'"):
        resolve_providers(["cpu", "tpu"], strict=False)

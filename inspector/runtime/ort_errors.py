"""onnxruntime exceptions in our own words (docs/probes.md section 5).

ORT exception classes share no base and their text carries absolute paths and C++ source
locations; clients get a sentence naming what went wrong, never that text verbatim.
"""

from __future__ import annotations

import re

from inspector import errors

CODE_RE = re.compile(r"\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*(\w+)\s*:\s*(.*)", re.S)
NODE_RE = re.compile(r"while running (\w+) node\. Name:'([^']*)'")
SOURCE_RE = re.compile(r"\S*\.(?:cc|cpp|cu|h|hpp):\d+\S*")
PATH_RE = re.compile(r"""(?:[A-Za-z]:)?(?:[\\/][^\s"'\\/]+){2,}""")


def clean(text: str) -> str:
    """`text` without C++ source locations or file-system paths, on one line."""
    text = SOURCE_RE.sub("", text)
    text = PATH_RE.sub("<path>", text)
    return " ".join(text.split())[:300]


def run_error(exc: Exception) -> errors.InspectorError:
    """The inspector error for an exception raised by InferenceSession.run."""
    code, detail = _split(exc)
    node = NODE_RE.search(str(exc))
    if code in ("OUT_OF_MEMORY",) or "Failed to allocate" in detail or "bad_alloc" in detail:
        return errors.ResourceExhausted("the model ran out of memory on this input; try a smaller "
                                        "batch or image")
    if node is not None:
        return errors.InvalidArgument(
            f"the model failed at node '{node.group(2)}' ({node.group(1)}) on this input; check "
            "that the input size and layout fit the model", field="input")
    if code in ("INVALID_ARGUMENT", "FAIL"):
        return errors.InvalidArgument(f"onnxruntime rejected the input: {clean(detail)}", field="input")
    if code in ("NOT_IMPLEMENTED", "EP_FAIL", "ENGINE_ERROR"):
        return errors.FailedPrecondition(
            f"this onnxruntime cannot run the model here: {clean(detail)}")
    return errors.InspectorError(f"onnxruntime failed: {clean(detail)}")


def load_error(exc: Exception) -> errors.InspectorError:
    """The inspector error for an exception raised while creating an InferenceSession."""
    code, detail = _split(exc)
    if code == "NOT_IMPLEMENTED" or "not a registered function/op" in detail:
        return errors.FailedPrecondition(
            f"the model uses an operator this onnxruntime cannot run: {clean(detail)}", field="model")
    if code == "EP_FAIL":
        return errors.FailedPrecondition(
            f"the execution provider could not take the model: {clean(detail)}", field="providers")
    return errors.InvalidArgument(f"onnxruntime cannot load the model: {clean(detail)}", field="model")


def _split(exc: Exception) -> tuple[str, str]:
    """(status code name, message after the "[ONNXRuntimeError] : N : CODE :" prefix)."""
    match = CODE_RE.search(str(exc))
    return (match.group(1), match.group(2)) if match else ("", str(exc))

"""inspector-client: the thin Python client of the inspector gRPC service."""

from .client import InspectorClient
from .shared_memory import SharedMemoryError
from .types import (
           Explanation,
           LayerInfo,
           Maximization,
           ModelInfo,
           Progress,
           StreamedResult,
           TensorInfo,
)

__all__ = ["InspectorClient", "Explanation", "LayerInfo", "Maximization", "ModelInfo", "Progress",
           "SharedMemoryError", "StreamedResult", "TensorInfo"]

"""inspector-client: the thin Python client of the inspector gRPC service.

The result types (inspector_client.types) are the ones the server's in-process API returns.
"""

from .client import InspectorClient
from .shared_memory import SharedMemoryError
from .types import (
    AuditReport,
    Evaluation,
    Explanation,
    FeatureMaps,
    Gradients,
    Inference,
    LayerInfo,
    Maximization,
    ModelInfo,
    Progress,
    StreamedResult,
    TensorInfo,
    Weights,
)

__all__ = ["AuditReport", "Evaluation", "Explanation", "FeatureMaps", "Gradients", "Inference", "InspectorClient",
           "LayerInfo", "Maximization", "ModelInfo", "Progress", "SharedMemoryError", "StreamedResult",
           "TensorInfo", "Weights"]

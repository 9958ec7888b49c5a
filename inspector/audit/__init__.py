"""Model audits: streaming activation statistics, weight health, flags and a self-contained report."""

from inspector.audit.aggregate import ActivationAggregator, LayerStats
from inspector.audit.audit import AuditRun, audit_model
from inspector.audit.behaviour import PredictionTally
from inspector.audit.flags import AuditThresholds, channel_flags
from inspector.audit.report import write_report
from inspector.audit.tensors import default_audit_tensors, saturation_bounds
from inspector.audit.weights import (
    batchnorm_health,
    batchnorm_params,
    filter_health,
    weight_tensors,
)

__all__ = [
    "ActivationAggregator", "AuditRun", "AuditThresholds", "LayerStats", "PredictionTally",
    "audit_model", "batchnorm_health", "batchnorm_params", "channel_flags", "default_audit_tensors",
    "filter_health", "saturation_bounds", "weight_tensors", "write_report",
]

"""ensemble: ask several models, several times each, and keep what they agree on.

The public surface is what this module exports; everything in modules whose name starts with
an underscore is private. The guides live in ``docs/``.
"""

from ensemble import errors
from ensemble._version import __version__
from ensemble.engine import consensus, score
from ensemble.metrics.base import (
    Metric,
    MetricScores,
    available_metrics,
    get_metric,
    register_metric,
)
from ensemble.types import (
    Alert,
    AlertEvidence,
    Consensus,
    MetricInfo,
    Sample,
    SampleError,
    Span,
    Usage,
)

__all__ = [
    "Alert",
    "AlertEvidence",
    "Consensus",
    "Metric",
    "MetricInfo",
    "MetricScores",
    "Sample",
    "SampleError",
    "Span",
    "Usage",
    "__version__",
    "available_metrics",
    "consensus",
    "errors",
    "get_metric",
    "register_metric",
    "score",
]

"""Metrics: how well each span of a text is supported by each sample. See :mod:`.base`."""

from ensemble.metrics.base import (
    Metric,
    MetricScores,
    available_metrics,
    get_metric,
    register_metric,
)

__all__ = ["Metric", "MetricScores", "available_metrics", "get_metric", "register_metric"]

"""ensemble: ask several models, several times each, and keep what they agree on.

The public surface is what this module exports; everything in modules whose name starts with
an underscore is private. The guides live in ``docs/``.
"""

from typing import TYPE_CHECKING, Any

from ensemble import errors
from ensemble._retry import RetryPolicy
from ensemble._version import __version__
from ensemble.adaptive import Escalation, SequentialStopping, Tier
from ensemble.calibration import Calibrator, expected_calibration_error
from ensemble.catalog import Catalog, ModelCard
from ensemble.diagnostics import BaselineStore, UniformityAlarm
from ensemble.engine import aconsensus, ascore, consensus, score
from ensemble.metrics.base import (
    Metric,
    MetricScores,
    available_metrics,
    get_metric,
    register_metric,
)
from ensemble.models import get_model
from ensemble.models.base import Completion, Model, Request
from ensemble.models.function import FunctionModel
from ensemble.models.scripted import ScriptedModel
from ensemble.runner import Ensemble
from ensemble.settings import Limits, VoteSettings
from ensemble.types import (
    AgreementBreakdown,
    Alert,
    AlertEvidence,
    CalibrationInfo,
    Claim,
    Consensus,
    DroppedClaim,
    FamilyAgreement,
    MetricInfo,
    ModelAgreement,
    Sample,
    SampleError,
    SamplingReport,
    Span,
    TierRun,
    Usage,
)

__all__ = [
    "AgreementBreakdown",
    "Alert",
    "AlertEvidence",
    "AnthropicModel",
    "BaselineStore",
    "CalibrationInfo",
    "Calibrator",
    "Catalog",
    "Claim",
    "Completion",
    "Consensus",
    "DroppedClaim",
    "Ensemble",
    "Escalation",
    "FamilyAgreement",
    "FunctionModel",
    "Limits",
    "LocalModel",
    "Metric",
    "MetricInfo",
    "MetricScores",
    "Model",
    "ModelAgreement",
    "ModelCard",
    "OpenAIModel",
    "Request",
    "RetryPolicy",
    "Sample",
    "SampleError",
    "SamplingReport",
    "ScriptedModel",
    "SequentialStopping",
    "Span",
    "Tier",
    "TierRun",
    "UniformityAlarm",
    "Usage",
    "VoteSettings",
    "__version__",
    "aconsensus",
    "ascore",
    "available_metrics",
    "consensus",
    "errors",
    "expected_calibration_error",
    "get_metric",
    "get_model",
    "register_metric",
    "score",
]

# The vendor SDKs take a while to import: load their adapters on first use.
_LAZY = {
    "AnthropicModel": "ensemble.models.anthropic",
    "LocalModel": "ensemble.models.local",
    "OpenAIModel": "ensemble.models.openai",
}

if TYPE_CHECKING:
    from ensemble.models.anthropic import AnthropicModel
    from ensemble.models.local import LocalModel
    from ensemble.models.openai import OpenAIModel


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ensemble' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

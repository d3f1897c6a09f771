"""ensemble: ask several models, several times each, and keep what they agree on.

The public surface is what this module exports; everything in modules whose name starts with
an underscore is private. The guides live in ``docs/``.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ensemble import errors, evaluation
from ensemble._limits import RateLimit
from ensemble._retry import RetryPolicy
from ensemble._version import __version__
from ensemble.adaptive import Escalation, SequentialStopping, Tier
from ensemble.calibration import Calibrator, expected_calibration_error, packaged_calibrations
from ensemble.catalog import Catalog, ModelCard
from ensemble.controller import Controller, ControllerResult
from ensemble.diagnostics import AgreementBaseline, BaselineStore, UniformityAlarm
from ensemble.engine import aconsensus, ascore, consensus, score
from ensemble.metrics.base import (
    Metric,
    MetricScores,
    available_metrics,
    get_metric,
    register_metric,
)
from ensemble.models import available_model_prefixes, get_model, register_model
from ensemble.models.base import Completion, Message, Model, Request
from ensemble.models.function import FunctionModel
from ensemble.models.scripted import ScriptedModel
from ensemble.runner import Ensemble
from ensemble.settings import Limits, VoteSettings
from ensemble.store import Store
from ensemble.types import (
    AgreementBreakdown,
    Alert,
    AlertEvidence,
    CalibrationInfo,
    Claim,
    Consensus,
    CostReport,
    DroppedClaim,
    FamilyAgreement,
    MetricInfo,
    ModelAgreement,
    ModelCost,
    Sample,
    SampleError,
    SamplingReport,
    Span,
    TierRun,
    Usage,
)

__all__ = [
    "AgreementBaseline",
    "AgreementBreakdown",
    "Alert",
    "AlertEvidence",
    "AnthropicModel",
    "AsyncEntailmentBackend",
    "BaselineStore",
    "BatchedEntailmentBackend",
    "CalibrationInfo",
    "Calibrator",
    "Catalog",
    "Claim",
    "CombinedMetric",
    "Completion",
    "Consensus",
    "Controller",
    "ControllerResult",
    "CostReport",
    "DroppedClaim",
    "Ensemble",
    "EntailmentBackend",
    "EntailmentMetric",
    "Escalation",
    "FamilyAgreement",
    "FunctionModel",
    "JudgeBackend",
    "Limits",
    "LocalModel",
    "Message",
    "Metric",
    "MetricInfo",
    "MetricScores",
    "Model",
    "ModelAgreement",
    "ModelCard",
    "ModelCost",
    "NLIBackend",
    "NgramMetric",
    "OpenAIModel",
    "PrefixMetric",
    "RateLimit",
    "Request",
    "RetryPolicy",
    "Sample",
    "SampleError",
    "SamplingReport",
    "ScriptedModel",
    "SemanticMetric",
    "SequentialStopping",
    "SimilarityBackend",
    "Span",
    "Store",
    "Tier",
    "TierRun",
    "UniformityAlarm",
    "Usage",
    "VoteMetric",
    "VoteSettings",
    "__version__",
    "aconsensus",
    "ascore",
    "available_metrics",
    "available_model_prefixes",
    "consensus",
    "errors",
    "evaluation",
    "expected_calibration_error",
    "get_metric",
    "get_model",
    "packaged_calibrations",
    "register_metric",
    "register_model",
    "score",
]

# Loaded on first use: the vendor SDKs and the metric backends take a while to import.
_LAZY = {
    "AnthropicModel": "ensemble.models.anthropic",
    "AsyncEntailmentBackend": "ensemble.metrics.entailment",
    "BatchedEntailmentBackend": "ensemble.metrics.entailment",
    "CombinedMetric": "ensemble.metrics.combined",
    "EntailmentBackend": "ensemble.metrics.entailment",
    "EntailmentMetric": "ensemble.metrics.entailment",
    "JudgeBackend": "ensemble.metrics.judge",
    "LocalModel": "ensemble.models.local",
    "NLIBackend": "ensemble.metrics._nli",
    "NgramMetric": "ensemble.metrics.ngram",
    "OpenAIModel": "ensemble.models.openai",
    "PrefixMetric": "ensemble.metrics.prefix",
    "SemanticMetric": "ensemble.metrics.semantic",
    "SimilarityBackend": "ensemble.metrics._similarity",
    "VoteMetric": "ensemble.metrics.vote",
}

if _TYPE_CHECKING:
    from ensemble.metrics._nli import NLIBackend
    from ensemble.metrics._similarity import SimilarityBackend
    from ensemble.metrics.combined import CombinedMetric
    from ensemble.metrics.entailment import (
        AsyncEntailmentBackend,
        BatchedEntailmentBackend,
        EntailmentBackend,
        EntailmentMetric,
    )
    from ensemble.metrics.judge import JudgeBackend
    from ensemble.metrics.ngram import NgramMetric
    from ensemble.metrics.prefix import PrefixMetric
    from ensemble.metrics.semantic import SemanticMetric
    from ensemble.metrics.vote import VoteMetric
    from ensemble.models.anthropic import AnthropicModel
    from ensemble.models.local import LocalModel
    from ensemble.models.openai import OpenAIModel


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ensemble' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

"""VoteSettings and Limits: frozen, validated once, accepted as settings=/limits= everywhere."""

from __future__ import annotations

from typing import Any

import pytest

import ensemble
from ensemble.errors import (
    CalibrationMismatchError,
    ConfigurationError,
    InvalidInputError,
    UnknownNameError,
)

SAMPLES = ["The sky is blue. Grass is green.", "The sky is blue.", "Grass is red."]


def test_vote_settings_resolve_the_metric_once_and_are_frozen() -> None:
    vs = ensemble.VoteSettings(metric="vote", weighting="sample", threshold=1)
    assert isinstance(vs.metric, ensemble.Metric) and vs.metric.name == "vote"
    assert vs.threshold == 1.0 and vs.alarm is not None and vs.calibration is None
    with pytest.raises(ConfigurationError, match="immutable"):
        vs.threshold = 0.2  # type: ignore[misc]
    again = vs.replace(threshold=0.25)
    assert again.metric is vs.metric and again.threshold == 0.25 and vs.threshold == 1.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "0.5"}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"weighting": "nope"}, "weighting"),
        ({"alarm": "loud"}, "alarm"),
    ],
)
def test_bad_vote_settings_are_configuration_errors(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"VoteSettings\.{field}"):
        ensemble.VoteSettings(**kwargs)


def test_names_and_calibrations_are_checked_at_construction() -> None:
    with pytest.raises(UnknownNameError, match="'ngram'"):
        ensemble.VoteSettings(metric="nope")
    with pytest.raises(CalibrationMismatchError):
        ensemble.VoteSettings(metric="vote", calibration="ngram-wikibio")
    vs = ensemble.VoteSettings(calibration="ngram-wikibio")
    assert vs.calibration is not None and vs.calibration.name == "ngram-wikibio"
    # the names of what the settings resolved agree with them
    assert ensemble.consensus(SAMPLES, settings=vs, calibration="ngram-wikibio").calibration


def test_consensus_and_score_accept_settings() -> None:
    vs = ensemble.VoteSettings(metric="prefix", weighting="sample", threshold=0.3, alarm=None)
    by_settings = ensemble.consensus(SAMPLES, settings=vs)
    by_keywords = ensemble.consensus(
        SAMPLES, metric="prefix", weighting="sample", threshold=0.3, alarm=None
    )
    assert by_settings == by_keywords and by_settings.threshold == 0.3
    scored = ensemble.score(text=SAMPLES[0], samples=SAMPLES, settings=vs)
    assert scored == ensemble.score(
        text=SAMPLES[0],
        samples=SAMPLES,
        metric="prefix",
        weighting="sample",
        threshold=0.3,
        alarm=None,
    )
    # a keyword that agrees with the settings is fine; one that disagrees is an error
    assert ensemble.consensus(SAMPLES, settings=vs, metric="prefix") == by_settings
    with pytest.raises(ConfigurationError, match="threshold"):
        ensemble.consensus(SAMPLES, settings=vs, threshold=0.9)
    with pytest.raises(ConfigurationError, match="metric"):
        ensemble.score(text="x", samples=SAMPLES, settings=vs, metric="vote")
    # a bad keyword without settings stays a bad argument of the call
    with pytest.raises(InvalidInputError, match="threshold"):
        ensemble.consensus(SAMPLES, threshold=2.0)


def test_ensemble_accepts_settings_and_limits() -> None:
    model = ensemble.ScriptedModel(name="m", default="Rome.")
    vs = ensemble.VoteSettings(metric="vote", threshold=0.5)
    limits = ensemble.Limits(timeout=5, deadline=None, max_concurrency=2, max_per_provider=1)
    ens = ensemble.Ensemble(models=[model], repeats=2, settings=vs, limits=limits)
    assert ens.settings is vs and ens.limits is limits
    assert (ens.timeout, ens.deadline, ens.max_concurrency, ens.max_per_provider) == (
        5.0,
        None,
        2,
        1,
    )
    result = ens.run("Capital of Italy?")
    assert result.metric.name == "vote" and result.threshold == 0.5
    shorthand = ensemble.Ensemble(
        models=[model], timeout=5, deadline=None, max_concurrency=2, max_per_provider=1
    )
    assert shorthand.limits == limits
    with pytest.raises(ConfigurationError, match="deadline"):
        ensemble.Ensemble(models=[model], limits=limits, deadline=10.0)
    with pytest.raises(ConfigurationError, match="metric"):
        ensemble.Ensemble(models=[model], settings=vs, metric="ngram-typo")
    with pytest.raises(ConfigurationError, match="settings must be"):
        ensemble.Ensemble(models=[model], settings={"metric": "vote"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"timeout": -1.0},
        {"deadline": float("inf")},
        {"deadline": "10"},
        {"timeout": 10**400},  # an int no float holds: not an OverflowError
        {"deadline": -(10**400)},
        {"max_concurrency": 0},
        {"max_per_provider": 2.0},
        {"max_concurrency": True},
    ],
)
def test_bad_limits_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=r"Limits\."):
        ensemble.Limits(**kwargs)


def test_the_judge_takes_limits() -> None:
    from ensemble.metrics.judge import JudgeBackend

    limits = ensemble.Limits(timeout=1.0, deadline=2.0, max_concurrency=3, max_per_provider=2)
    judge = JudgeBackend(ensemble.ScriptedModel(name="j"), limits=limits)
    assert judge.limits is limits and judge.max_concurrency == 3
    with pytest.raises(ConfigurationError):
        JudgeBackend(ensemble.ScriptedModel(name="j"), timeout=0)

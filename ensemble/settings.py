"""The settings vocabulary: frozen value objects validated once, when they are built.

* :class:`VoteSettings`: what a vote needs (metric, weighting, threshold, alarm, calibration,
  method),
  accepted as ``settings=`` by :func:`ensemble.consensus`, :func:`ensemble.score`,
  :class:`ensemble.Ensemble` and :class:`ensemble.Escalation`;
* :class:`Limits`: how long and how wide a run may go (timeout, deadline, concurrency),
  accepted as ``limits=`` by :class:`ensemble.Ensemble`.

The loose keyword arguments of those functions (``metric=``, ``threshold=``, ``timeout=``,
...) stay as shorthand: they build the same object. A keyword left at its default defers to
the object; a keyword set to another value *and* an object that says something else is a
:class:`~ensemble.errors.ConfigurationError` (there would be two answers to one question).

Invalid values raise :class:`~ensemble.errors.ConfigurationError` naming every bad field
(pydantic's ``ValidationError`` never reaches the user); an unknown metric name raises
:class:`~ensemble.errors.UnknownNameError`, a calibration fitted for another metric
:class:`~ensemble.errors.CalibrationMismatchError`, both at construction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field

from ensemble._limits import RateLimit, rate_limit_from
from ensemble._validate import Settings
from ensemble.calibration import Calibrator, load_calibration
from ensemble.diagnostics import DEFAULT_ALARM, INTRA_FAMILY_WEIGHT, UniformityAlarm
from ensemble.errors import ConfigurationError
from ensemble.metrics.base import Metric, get_metric

__all__ = ["Limits", "VoteSettings"]

Weighting = Literal["sample", "model"]
#: How :func:`ensemble.consensus` builds the text: pick one sample, or fuse the sentences
#: most samples state (``docs/fuse.md``).
Method = Literal["select", "fuse"]


class _Settings(Settings):
    """The library's settings base (:class:`ensemble._validate.Settings`), strict throughout."""

    model_config = ConfigDict(strict=True)

    def __init__(self, /, **data: Any) -> None:
        super().__init__(**data)

    def _merge(self, given: Mapping[str, object], defaults: Mapping[str, object]) -> None:
        """Refuse keywords that are not at their default and disagree with this object."""
        clashes = sorted(
            name
            for name, value in given.items()
            if not _same(value, defaults[name]) and not _same(value, getattr(self, name))
        )
        if clashes:
            raise ConfigurationError(
                f"{', '.join(clashes)} given both as keyword(s) and in the {type(self).__name__} "
                "passed as settings=/limits= with another value; give one of the two"
            )


def _same(a: object, b: object) -> bool:
    if a is b:
        return True
    if isinstance(b, (Metric, Calibrator)):  # a name matches the resolved object's name
        return isinstance(a, str) and a == b.name
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    try:
        return bool(a == b)
    except Exception:  # e.g. an array, whose == is not one truth value
        return False


class VoteSettings(_Settings):
    """What a vote needs, resolved and checked once.

    - ``metric``: a metric name or :class:`~ensemble.Metric` (a name is resolved here, once:
      every vote with these settings uses the same instance);
    - ``weighting``: ``"model"`` (each model's samples share one vote) or ``"sample"``;
    - ``threshold``: keep only spans with at least this confidence (``None``: all);
    - ``alarm``: the :class:`~ensemble.UniformityAlarm` settings (``None`` turns it off);
    - ``calibration``: a :class:`~ensemble.Calibrator`, a packaged name (``"ngram-wikibio"``)
      or a file, resolved here and checked against ``metric``;
    - ``method``: ``"select"`` (the text is the sample the others agree with most) or
      ``"fuse"`` (the sentences a majority of the models states; ``docs/fuse.md``). It is how
      a consensus builds its text; :func:`ensemble.score` scores the text it is given;
    - ``intra_family_weight``: with samples of two or more families, how much a candidate's
      agreement with its own family counts in the candidate choice, against 1 for each other
      family (:data:`ensemble.diagnostics.INTRA_FAMILY_WEIGHT` by default; 0 to 1).
    """

    metric: Metric
    weighting: Weighting = "model"
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    alarm: UniformityAlarm | None = DEFAULT_ALARM
    calibration: Calibrator | None = None
    method: Method = "select"
    intra_family_weight: float = Field(default=INTRA_FAMILY_WEIGHT, ge=0.0, le=1.0)

    def __init__(
        self,
        *,
        metric: str | Metric = "ngram",
        weighting: Weighting = "model",
        threshold: float | None = None,
        alarm: UniformityAlarm | None = DEFAULT_ALARM,
        calibration: Calibrator | str | Path | None = None,
        method: Method = "select",
        intra_family_weight: float = INTRA_FAMILY_WEIGHT,
    ) -> None:
        resolved = get_metric(metric)  # UnknownNameError lists the known names
        cal = load_calibration(calibration)
        if cal is not None:
            cal.check(resolved.info)  # CalibrationMismatchError before any work
        if isinstance(threshold, int) and not isinstance(threshold, bool):
            threshold = float(threshold)
        super().__init__(
            metric=resolved,
            weighting=weighting,
            threshold=threshold,
            alarm=alarm,
            calibration=cal,
            method=method,
            intra_family_weight=intra_family_weight,
        )

    @classmethod
    def resolve(
        cls,
        settings: VoteSettings | None,
        *,
        metric: str | Metric = "ngram",
        weighting: Weighting = "model",
        threshold: float | None = None,
        alarm: UniformityAlarm | None = DEFAULT_ALARM,
        calibration: Calibrator | str | Path | None = None,
        method: Method = "select",
    ) -> VoteSettings:
        """``settings`` checked against the shorthand keywords, or built from them."""
        given: dict[str, object] = {
            "metric": metric,
            "weighting": weighting,
            "threshold": threshold,
            "alarm": alarm,
            "calibration": calibration,
            "method": method,
        }
        if settings is None:
            return cls(
                metric=metric,
                weighting=weighting,
                threshold=threshold,
                alarm=alarm,
                calibration=calibration,
                method=method,
            )
        if not isinstance(settings, VoteSettings):
            raise ConfigurationError(
                f"settings must be an ensemble.VoteSettings, not {type(settings).__name__}"
            )
        settings._merge(given, _VOTE_DEFAULTS)
        return settings

    def replace(self, **changes: Any) -> VoteSettings:
        """A copy with ``changes`` (validated like a new object)."""
        current = {
            "metric": self.metric,
            "weighting": self.weighting,
            "threshold": self.threshold,
            "alarm": self.alarm,
            "calibration": self.calibration,
            "method": self.method,
            "intra_family_weight": self.intra_family_weight,
        }
        return VoteSettings(**{**current, **changes})


_VOTE_DEFAULTS: dict[str, object] = {
    "metric": "ngram",
    "weighting": "model",
    "threshold": None,
    "alarm": DEFAULT_ALARM,
    "calibration": None,
    "method": "select",
}


class Limits(_Settings):
    """How long and how wide a run may go (all times in seconds).

    - ``timeout``: one attempt of one call (``None``: no limit of ours);
    - ``deadline``: the whole run (``None``: none); calls still running then are cancelled and
      what came back is kept;
    - ``max_concurrency`` / ``max_per_provider``: attempts in flight overall / per endpoint;
    - ``rate_limit``: requests per second per endpoint, or a :class:`~ensemble.RateLimit`
      (also tokens per minute), shared with every run in the process on that endpoint
      (``None``: unpaced; ``docs/durable.md``).
    """

    timeout: float | None = Field(default=30.0, gt=0.0)
    deadline: float | None = Field(default=120.0, gt=0.0)
    max_concurrency: int = Field(default=16, ge=1)
    max_per_provider: int = Field(default=8, ge=1)
    rate_limit: RateLimit | None = None

    def __init__(
        self,
        *,
        timeout: float | None = 30.0,
        deadline: float | None = 120.0,
        max_concurrency: int = 16,
        max_per_provider: int = 8,
        rate_limit: float | RateLimit | None = None,
    ) -> None:
        # Strict mode refuses bools and strings; whole seconds may be given as ints.
        def seconds(v: object) -> object:
            if not isinstance(v, int) or isinstance(v, bool):
                return v
            try:
                return float(v)
            except OverflowError:  # an int beyond any float: refused as not finite
                return math.inf if v > 0 else -math.inf

        super().__init__(
            timeout=seconds(timeout),
            deadline=seconds(deadline),
            max_concurrency=max_concurrency,
            max_per_provider=max_per_provider,
            rate_limit=rate_limit_from(rate_limit),
        )

    @classmethod
    def resolve(
        cls,
        limits: Limits | None,
        *,
        timeout: float | None = 30.0,
        deadline: float | None = 120.0,
        max_concurrency: int = 16,
        max_per_provider: int = 8,
        rate_limit: float | RateLimit | None = None,
    ) -> Limits:
        """``limits`` checked against the shorthand keywords, or built from them."""
        if limits is None:
            return cls(
                timeout=timeout,
                deadline=deadline,
                max_concurrency=max_concurrency,
                max_per_provider=max_per_provider,
                rate_limit=rate_limit,
            )
        if not isinstance(limits, Limits):
            raise ConfigurationError(f"limits must be an ensemble.Limits, not {type(limits)}")
        limits._merge(
            {
                "timeout": timeout,
                "deadline": deadline,
                "max_concurrency": max_concurrency,
                "max_per_provider": max_per_provider,
                "rate_limit": rate_limit_from(rate_limit),
            },
            {
                "timeout": 30.0,
                "deadline": 120.0,
                "max_concurrency": 16,
                "max_per_provider": 8,
                "rate_limit": None,
            },
        )
        return limits

"""Spend samples only where risk needs them: sequential stopping and escalation tiers.

Two ideas, one small API (``docs/adaptive.md`` has the long version), one file each:

* ``_statistics.py``: the posterior probabilities (leader, predictive, Dirichlet, majority);
* ``_stopping.py``: answer counts and :class:`SequentialStopping`, when to stop sampling within
  a tier (its module docstring states the rules);
* ``_escalation.py``: :class:`Tier` and :class:`Escalation`, running cheap tiers first and
  escalating while the result is weak or alarming.
"""

from __future__ import annotations

from ensemble.adaptive._escalation import Escalation, Tier
from ensemble.adaptive._statistics import (
    DIRICHLET_PRIOR as DIRICHLET_PRIOR,
)
from ensemble.adaptive._statistics import (
    dirichlet_probability,
    leader_probability,
    majority_probability,
    predictive_probability,
)
from ensemble.adaptive._stopping import (
    DEFAULT_STOPPING as DEFAULT_STOPPING,
)
from ensemble.adaptive._stopping import SequentialStopping
from ensemble.adaptive._stopping import answer_counts as answer_counts

__all__ = [
    "Escalation",
    "SequentialStopping",
    "Tier",
    "dirichlet_probability",
    "leader_probability",
    "majority_probability",
    "predictive_probability",
]

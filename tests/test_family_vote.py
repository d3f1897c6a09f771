"""The own-family weight of the candidate choice is a setting, passed to the engine per call."""

from __future__ import annotations

import pytest

import ensemble
from ensemble.diagnostics import INTRA_FAMILY_WEIGHT


def _samples() -> list[ensemble.Sample]:
    # Family A repeats "x" three times and says "y" once; family B says "y" and "z". Weighing
    # A's agreement with itself fully, "x" wins; not at all (or half), "y", which the other
    # family also gives, wins.
    texts = [("x", "a"), ("x", "a"), ("x", "a"), ("y", "a"), ("y", "b"), ("z", "b")]
    return [ensemble.Sample(text=t, model=m, repeat=i) for i, (t, m) in enumerate(texts)]


@pytest.mark.parametrize(("weight", "winner"), [(1.0, "x"), (0.5, "y"), (0.0, "y")])
def test_intra_family_weight_decides_between_own_and_other_family_support(
    weight: float, winner: str
) -> None:
    settings = ensemble.VoteSettings(metric="vote", alarm=None, intra_family_weight=weight)
    families = {"a": "A", "b": "B"}
    r = ensemble.consensus(_samples(), settings=settings, families=families)
    assert r.text == winner


def test_intra_family_weight_defaults_to_the_library_constant_and_is_checked() -> None:
    assert ensemble.VoteSettings().intra_family_weight == INTRA_FAMILY_WEIGHT
    assert ensemble.VoteSettings().replace(intra_family_weight=0).intra_family_weight == 0.0
    with pytest.raises(ensemble.errors.ConfigurationError, match="intra_family_weight"):
        ensemble.VoteSettings(intra_family_weight=1.5)
    with pytest.raises(ensemble.errors.ConfigurationError, match="intra_family_weight"):
        ensemble.VoteSettings(intra_family_weight="half")  # type: ignore[arg-type]

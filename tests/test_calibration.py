"""Calibration: isotonic (PAV vs its pure-Python twin and scikit-learn), Platt, ECE, JSON,
metric-signature checks and the ``calibration=`` option of score/consensus."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ensemble
from ensemble.calibration import (
    Calibrator,
    expected_calibration_error,
    fit_logistic,
    isotonic_reference,
    load_calibration,
    packaged_calibrations,
    pav,
)
from ensemble.errors import CalibrationMismatchError, InvalidInputError, UnknownNameError
from ensemble.types import metric_part

scores_and_labels = st.integers(min_value=2, max_value=25).flatmap(
    lambda n: st.tuples(
        st.lists(
            # Coarse values make ties; fine ones make many blocks. (scikit-learn pools x values
            # closer than float resolution, so subnormal differences are left out.)
            st.sampled_from([i / 10 for i in range(11)])
            | st.integers(0, 10**6).map(lambda i: i / 10**6),
            min_size=n,
            max_size=n,
        ),
        st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, deadline=None)
@given(scores_and_labels)
def test_pav_matches_pure_python_reference(data: tuple[list[float], list[float]]) -> None:
    x, y = data
    cal = Calibrator.fit(x, y, method="isotonic")
    fast = cal(np.asarray(x))
    ref = isotonic_reference(x, y)
    np.testing.assert_allclose(fast, ref, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(scores_and_labels)
def test_isotonic_is_monotone_and_a_probability(data: tuple[list[float], list[float]]) -> None:
    x, y = data
    cal = Calibrator.fit(x, y, method="isotonic")
    grid = np.linspace(-0.5, 1.5, 201)
    out = cal(grid)
    assert np.all(np.diff(out) >= -1e-12)
    assert np.all((out >= 0) & (out <= 1))


@settings(max_examples=60, deadline=None)
@given(scores_and_labels)
def test_pav_matches_scikit_learn(data: tuple[list[float], list[float]]) -> None:
    sklearn_isotonic = pytest.importorskip("sklearn.isotonic")
    x, y = data
    ours = Calibrator.fit(x, y, method="isotonic")
    theirs = sklearn_isotonic.IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
    theirs.fit(x, y)
    grid = np.linspace(0, 1, 101)
    np.testing.assert_allclose(ours(grid), theirs.predict(grid), atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(scores_and_labels)
def test_centered_isotonic_passes_through_block_means(
    data: tuple[list[float], list[float]],
) -> None:
    x, y = data
    ref = isotonic_reference(x, y)
    cal = Calibrator.fit(x, y, method="centered-isotonic")
    grid = np.linspace(-0.5, 1.5, 201)
    assert np.all(np.diff(cal(grid)) >= -1e-12)
    # At the mean score of each block of equal fitted values, it takes the block's value.
    for value in set(ref):
        members = [xi for xi, r in zip(x, ref, strict=True) if r == value]
        assert float(cal(float(np.mean(members)))) == pytest.approx(value, abs=1e-9)


def test_pav_pools_a_violation_into_its_mean() -> None:
    kx, ky = pav([0.1, 0.2, 0.3], [1.0, 0.0, 1.0])
    # The first two violate order and pool to 0.5; the third stays at 1.
    assert kx.tolist() == [0.1, 0.2, 0.3]
    assert ky.tolist() == [0.5, 0.5, 1.0]


def test_isotonic_learns_a_known_step() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 4000)
    truth = np.where(x < 0.5, 0.2, 0.8)
    y = (rng.uniform(0, 1, x.size) < truth).astype(float)
    cal = Calibrator.fit(x, y)
    assert abs(float(cal(0.25)) - 0.2) < 0.05
    assert abs(float(cal(0.75)) - 0.8) < 0.05


def test_platt_recovers_a_logistic_truth() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 20000)
    p = 1 / (1 + np.exp(-(4.0 * x - 2.0)))
    y = (rng.uniform(0, 1, x.size) < p).astype(float)
    cal = Calibrator.fit(x, y, method="platt")
    grid = np.linspace(0, 1, 11)
    np.testing.assert_allclose(cal(grid), 1 / (1 + np.exp(-(4.0 * grid - 2.0))), atol=0.03)


def test_fit_logistic_matches_scikit_learn_without_penalty() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 3))
    y = (rng.uniform(size=500) < 1 / (1 + np.exp(-(X @ [1.0, -2.0, 0.5] + 0.3)))).astype(float)
    b, w = fit_logistic(X, y, ridge=0.0)
    ref = linear_model.LogisticRegression(C=1e12, max_iter=10000, tol=1e-12).fit(X, y)
    np.testing.assert_allclose(w, ref.coef_[0], atol=1e-4)
    assert b == pytest.approx(ref.intercept_[0], abs=1e-4)


def test_platt_never_inverts_the_order() -> None:
    # A metric that ranks the wrong way gets the base rate, not a decreasing map.
    cal = Calibrator.fit([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0], method="platt")
    out = cal(np.array([0.0, 1.0]))
    assert out[0] == pytest.approx(out[1])
    assert out[0] == pytest.approx(0.5)


def test_platt_separable_data_stays_finite() -> None:
    cal = Calibrator.fit([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], method="platt")
    out = cal(np.array([0.0, 0.5, 1.0]))
    assert np.isfinite(out).all()
    assert out[0] < out[1] < out[2]


def test_ece_by_hand() -> None:
    # Bin [0.2, 0.3): probs 0.2, 0.2 with labels 0, 1 -> |0.2 - 0.5| * 2/4;
    # bin [0.9, 1.0]: probs 1.0, 0.9 with labels 1, 1 -> |0.95 - 1| * 2/4.
    ece = expected_calibration_error([0.2, 0.2, 1.0, 0.9], [0, 1, 1, 1], bins=10)
    assert ece == pytest.approx(0.3 * 0.5 + 0.05 * 0.5)


def test_ece_is_zero_when_calibrated_and_large_when_not() -> None:
    probs = np.repeat([0.05, 0.35, 0.65, 0.95], 20)
    labels = np.concatenate([np.r_[np.ones(k), np.zeros(20 - k)] for k in (1, 7, 13, 19)])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(np.ones(10), np.zeros(10)) == pytest.approx(1.0)


def test_ece_rejects_bad_input() -> None:
    with pytest.raises(InvalidInputError):
        expected_calibration_error([0.5, 1.5], [0, 1])
    with pytest.raises(InvalidInputError):
        expected_calibration_error([0.5], [0, 1])
    with pytest.raises(InvalidInputError):
        expected_calibration_error([0.5], [1], bins=0)


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="one label per score"):
        Calibrator.fit([0.1, 0.2], [1])
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        Calibrator.fit([0.1, 0.2], [1, 2])
    with pytest.raises(InvalidInputError, match="finite"):
        Calibrator.fit([0.1, math.nan], [1, 0])
    with pytest.raises(InvalidInputError, match="method"):
        Calibrator.fit([0.1, 0.2], [1, 0], method="magic")  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_json_round_trip_is_exact(method: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(size=200)
    y = (rng.uniform(size=200) < x).astype(float)
    cal = Calibrator.fit(x, y, method=method, metric="ngram|n:1|version:1", name="mine")  # type: ignore[arg-type]
    again = Calibrator.from_json(cal.to_json())
    assert again == cal
    grid = np.linspace(0, 1, 57)
    assert np.array_equal(again(grid), cal(grid))
    path = tmp_path / "cal.json"
    cal.save(path)
    loaded = Calibrator.load(path)
    assert loaded == cal
    assert loaded.metric == "ngram|n:1|version:1"
    assert json.loads(path.read_text())["method"] == method


def test_from_json_rejects_other_files() -> None:
    with pytest.raises(InvalidInputError, match="not a calibration file"):
        Calibrator.from_json('{"hello": 1}')
    with pytest.raises(InvalidInputError, match="not a calibration file"):
        Calibrator.from_json("not json")
    with pytest.raises(InvalidInputError, match="version"):
        Calibrator.from_json('{"format": "ensemble-calibration", "format_version": 99}')
    with pytest.raises(InvalidInputError, match="knots"):
        Calibrator.from_json(
            '{"format": "ensemble-calibration", "format_version": 1, "method": "isotonic",'
            ' "params": {"knots_x": [0.5, 0.1], "knots_y": [0.1, 0.2]}}'
        )


def test_load_unknown_name_lists_packaged_ones() -> None:
    with pytest.raises(UnknownNameError, match="ngram-wikibio"):
        Calibrator.load("no-such-calibration")
    with pytest.raises(InvalidInputError):
        load_calibration(3.5)  # type: ignore[arg-type]


def test_refuses_another_metric_unless_forced() -> None:
    cal = Calibrator.fit([0.1, 0.9], [0, 1], metric="ngram|n:1|version:1")
    with pytest.raises(CalibrationMismatchError, match="force"):
        cal.apply([0.5], metric="prefix|version:1")
    assert cal.apply([0.5], metric="ngram|n:1|version:1").shape == (1,)
    assert cal.apply([0.5], metric="prefix|version:1", force=True).shape == (1,)
    assert cal.forced().apply([0.5], metric="prefix|version:1").shape == (1,)
    assert cal.forced().is_forced and not cal.is_forced


def _samples() -> list[str]:
    return [
        "Ada Lovelace was born in London in 1815. She worked with Charles Babbage.",
        "Ada Lovelace was born in London in 1815. She wrote the first program.",
        "Ada Lovelace was born in 1815 in London. She worked on the Analytical Engine.",
        "Ada Lovelace, born in Paris in 1820, was a painter.",
    ]


def test_score_applies_calibration_and_records_it() -> None:
    samples = _samples()
    text = "Ada Lovelace was born in London in 1815. She was a famous painter in Rome."
    raw = ensemble.score(text=text, samples=samples, metric="ngram")
    sig = raw.metric.signature
    # A calibrator that maps every confidence c to (c + 1) / 2 between 0 and 1.
    cal = Calibrator(method="isotonic", metric=sig, knots_x=[0.0, 1.0], knots_y=[0.5, 1.0])
    out = ensemble.score(text=text, samples=samples, metric="ngram", calibration=cal)
    assert [s.confidence for s in out.spans] == pytest.approx(
        [(s.confidence + 1) / 2 for s in raw.spans]
    )
    # Per-sample support stays raw.
    assert [s.support for s in out.spans] == [s.support for s in raw.spans]
    assert out.calibration is not None
    assert out.calibration.metric == sig and not out.calibration.forced
    assert raw.calibration is None
    again = ensemble.Consensus.model_validate_json(out.model_dump_json())
    assert again == out


def test_threshold_applies_to_calibrated_confidence() -> None:
    samples = _samples()
    text = "Ada Lovelace was born in London in 1815. She was a famous painter in Rome."
    sig = ensemble.get_metric("ngram").info.signature
    flat = Calibrator(method="isotonic", metric=sig, knots_x=[0.0, 1.0], knots_y=[0.9, 0.9])
    out = ensemble.score(
        text=text, samples=samples, metric="ngram", calibration=flat, threshold=0.85
    )
    assert len(out.spans) == 2
    assert all(s.confidence == pytest.approx(0.9) for s in out.spans)


def test_consensus_refuses_a_calibration_for_another_metric() -> None:
    cal = Calibrator(method="platt", metric="vote|version:1", slope=1.0, intercept=0.0)
    with pytest.raises(CalibrationMismatchError, match="vote"):
        ensemble.consensus(_samples(), metric="ngram", calibration=cal)
    forced = ensemble.consensus(_samples(), metric="ngram", calibration=cal.forced())
    assert forced.calibration is not None and forced.calibration.forced
    raw = ensemble.consensus(_samples(), metric="ngram")
    expected = 1 / (1 + np.exp(-np.array([s.confidence for s in raw.spans])))
    assert [s.confidence for s in forced.spans] == pytest.approx(expected.tolist())


def test_packaged_calibration_loads_by_name_and_fits_ngram() -> None:
    assert "ngram-wikibio" in packaged_calibrations()
    cal = Calibrator.load("ngram-wikibio")
    assert cal.name == "ngram-wikibio"
    # fitted before signatures named the library version: it matches the metric part
    assert cal.metric == metric_part(ensemble.get_metric("ngram").info.signature), (
        "the shipped calibration is stale: re-run benchmarks/calibrate_ngram.py --write"
    )
    assert "CC-BY-SA-3.0" in cal.description
    grid = np.linspace(0, 1, 101)
    out = cal(grid)
    assert np.all(np.diff(out) >= 0)
    assert out[-1] > out[0]
    result = ensemble.score(text=_samples()[0], samples=_samples()[1:], calibration="ngram-wikibio")
    assert result.calibration is not None and result.calibration.name == "ngram-wikibio"


def test_ensemble_applies_calibration_to_its_vote() -> None:
    from ensemble.models.scripted import ScriptedModel

    answers = _samples()[:3]
    model = ScriptedModel(*answers, name="fake")
    ens = ensemble.Ensemble(models=[model], repeats=3, calibration="ngram-wikibio")
    result = ens.run("Who was Ada Lovelace?")
    assert result.calibration is not None and result.calibration.name == "ngram-wikibio"
    raw = ensemble.consensus(list(result.samples), metric="ngram")
    cal = Calibrator.load("ngram-wikibio")
    assert [s.confidence for s in result.spans] == pytest.approx(
        cal(np.array([s.confidence for s in raw.spans])).tolist()
    )
    with pytest.raises(CalibrationMismatchError):
        ensemble.Ensemble(models=[model], metric="vote", calibration="ngram-wikibio")


def test_prior_keeps_probabilities_off_0_and_1_and_monotone() -> None:
    rng = np.random.default_rng(4)
    x = rng.uniform(size=300)
    y = (x > 0.5).astype(float)  # separable: plain isotonic says exactly 0 and 1
    plain = Calibrator.fit(x, y, method="centered-isotonic")
    assert float(plain(0.0)) == 0.0 and float(plain(1.0)) == 1.0
    smooth = Calibrator.fit(x, y, method="centered-isotonic", prior=2)
    grid = np.linspace(0, 1, 101)
    out = smooth(grid)
    assert 0.0 < out.min() < 0.02 and 0.98 < out.max() < 1.0
    assert np.all(np.diff(out) >= 0)
    # A huge prior pulls everything to the base rate.
    flat = Calibrator.fit(x, y, method="isotonic", prior=1e9)
    assert np.allclose(flat(grid), y.mean(), atol=1e-6)
    with pytest.raises(InvalidInputError, match="prior"):
        Calibrator.fit(x, y, prior=-1)

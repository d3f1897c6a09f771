"""One local Ray instance for a test module: loopback only, no dashboard, no usage statistics,
and the workers import this checkout of ``ensemble`` and take the module's functions by value
(they cannot import a test module)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def local_ray(module: str, *, num_cpus: int) -> Iterator[Any]:
    import ray

    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")  # nothing phones home
        path = os.environ.get("PYTHONPATH")
        env.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *([path] if path else [])]))
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            ignore_reinit_error=True,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",  # loopback only
        )
        ray.cloudpickle.register_pickle_by_value(sys.modules[module])
        try:
            yield ray
        finally:
            ray.shutdown()

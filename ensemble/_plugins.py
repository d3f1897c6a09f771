"""What the metric and model registries share: entry points and ``"module:attr"`` targets."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any


def entry_point_targets(group: str) -> dict[str, str]:
    """``{name: "module:attr"}`` of every installed entry point in ``group``."""
    return {ep.name: ep.value for ep in entry_points(group=group)}


def load_target(target: str) -> Callable[..., Any]:
    """Import ``"module:attr.sub"`` and return the callable it names (imported only now)."""
    module, _, attr = target.partition(":")
    obj: object = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj

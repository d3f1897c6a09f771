"""The public surface: sorted __all__, every name importable, the names API.md promises."""

from __future__ import annotations

import ensemble


def test_all_is_sorted_and_unique() -> None:
    assert list(ensemble.__all__) == sorted(set(ensemble.__all__))


def test_every_exported_name_exists() -> None:
    missing = [name for name in ensemble.__all__ if not hasattr(ensemble, name)]
    assert missing == []


def test_stable_names_from_api_md() -> None:
    for name in ("score", "consensus", "get_metric", "Consensus", "Span", "Sample"):
        assert name in ensemble.__all__, name


def test_version_is_a_string() -> None:
    assert isinstance(ensemble.__version__, str)
    assert ensemble.__version__[0].isdigit()

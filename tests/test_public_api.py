"""The public surface: sorted __all__, every name importable, the names API.md promises."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

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


# --- the public surface is what it says ---------------------------------------------------------


ROOT = Path(__file__).resolve().parent.parent
#: Public submodules that are namespaces of their own, exported as modules at top level.
NAMESPACES = {"ensemble.errors", "ensemble.evaluation"}
#: The console-script module: the entry point in pyproject.toml and its exit statuses
#: (documented in the CLI reference by value).
ENTRY_POINTS = {
    "ensemble.cli": {"main", "EXIT_OK", "EXIT_USAGE", "EXIT_FAILED", "EXIT_INTERRUPTED"}
}


def _docs() -> str:
    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").rglob("*.md"))]
    return "\n".join([*texts, (ROOT / "README.md").read_text(encoding="utf-8")])


def _public_modules() -> list[str]:
    out = []
    for info in pkgutil.walk_packages(ensemble.__path__, "ensemble."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            out.append(info.name)
    return sorted(out)


def test_dir_shows_only_the_public_names() -> None:
    shown = dir(ensemble)
    for leaked in ("Any", "TYPE_CHECKING", "annotations", "importlib"):
        assert leaked not in shown
    assert set(ensemble.__all__) <= set(shown)


def test_every_public_module_has_an_all_of_top_level_or_documented_names() -> None:
    top = set(ensemble.__all__)
    docs = _docs()
    problems = []
    for name in _public_modules():
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            problems.append(f"{name} has no __all__")
            continue
        for item in exported:
            if not hasattr(module, item):
                problems.append(f"{name}.{item} is in __all__ but does not exist")
            elif item in ENTRY_POINTS.get(name, ()):
                continue
            elif name in NAMESPACES:
                if not re.search(rf"\b{re.escape(item)}\b", docs):
                    problems.append(f"{name}.{item} is exported but not documented")
            elif item not in top and f"{name}.{item}" not in docs:
                problems.append(
                    f"{name}.{item} is exported but neither top level nor documented as such"
                )
    assert problems == []


def test_top_level_names_are_documented() -> None:
    docs = _docs()
    missing = [
        n for n in ensemble.__all__ if n != "__version__" and not re.search(rf"\b{n}\b", docs)
    ]
    assert missing == []


def test_docs_do_not_send_users_into_private_modules() -> None:
    docs = _docs()
    private = sorted(set(re.findall(r"\bensemble(?:\.[a-z_]+)*\._[a-z][a-z_]*\b", docs)))
    assert private == []
    # the import lines of docs use top-level names (or a documented namespace)
    imports = re.findall(r"^\s*from (ensemble\.[\w.]+) import", docs, re.M)
    allowed = NAMESPACES | {"ensemble.ray"}
    assert sorted(set(imports) - allowed) == []


def test_lazy_names_resolve_to_their_classes() -> None:
    from ensemble.metrics.entailment import EntailmentMetric
    from ensemble.metrics.judge import JudgeBackend
    from ensemble.metrics.ngram import NgramMetric

    assert ensemble.NgramMetric is NgramMetric
    assert ensemble.EntailmentMetric is EntailmentMetric
    assert ensemble.JudgeBackend is JudgeBackend
    assert issubclass(ensemble.VoteMetric, ensemble.Metric)

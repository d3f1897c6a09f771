"""NLTK's Porter stemmer without importing the whole of NLTK.

``import nltk`` runs ``nltk/__init__.py``, which imports most of NLTK and, when scipy is
installed, ``scipy.stats``: about 1.5 s of a fresh process, for a stemmer that needs three
small modules. :func:`porter_stemmer` loads ``nltk.stem.porter`` (and the few modules it
imports) under placeholder parent packages, then removes every ``nltk`` module it added from
``sys.modules``, so a later ``import nltk`` by anyone still gets the full, normal package. If
NLTK is already imported, its own stemmer is used.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Protocol

__all__ = ["Stemmer", "porter_stemmer"]


class Stemmer(Protocol):
    def stem(self, word: str) -> str: ...


_LOCK = threading.Lock()


def porter_stemmer() -> Stemmer:
    """A fresh ``nltk.stem.porter.PorterStemmer()`` (the default NLTK_EXTENSIONS mode)."""
    with _LOCK:
        if "nltk" in sys.modules:
            from nltk.stem.porter import PorterStemmer

            return PorterStemmer()  # type: ignore[no-any-return]
        spec = importlib.util.find_spec("nltk")  # locates the package; runs nothing
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("nltk is not installed")
        root = list(spec.submodule_search_locations)
        before = set(sys.modules)
        try:
            for name, path in (("nltk", root), ("nltk.stem", [f"{root[0]}/stem"])):
                placeholder = types.ModuleType(name)
                placeholder.__path__ = path
                sys.modules[name] = placeholder
            porter = importlib.import_module("nltk.stem.porter")
            return porter.PorterStemmer()  # type: ignore[no-any-return]
        finally:
            for name in set(sys.modules) - before:
                if name == "nltk" or name.startswith("nltk."):
                    del sys.modules[name]

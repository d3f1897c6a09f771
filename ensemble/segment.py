"""Split text into sentences and tokens, with exact character offsets, fully offline.

Sentences come from NLTK's Punkt algorithm run with a built-in set of abbreviations (no
trained model, nothing downloaded), after first breaking the text at line breaks, which LLM
output uses for lists and paragraphs. Tokens are words (letters and digits, with inner
``.,'-`` kept, so ``3.5``, ``1,000`` and ``don't`` are one token) and single punctuation marks.

Both functions return ``(start, end)`` pairs such that ``text[start:end]`` is the piece.
Pieces never overlap, appear in order, never start or end with white space, and every
character of the text that is not white space lies inside exactly one piece.

Known limits: a single capital letter followed by a period is read as an initial
(``J. R. R. Tolkien``), so "Plan B. Then" stays one sentence; "U.S." before a new sentence
does not end it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nltk.tokenize.punkt import PunktSentenceTokenizer

__all__ = ["sentences", "tokens"]

#: Lower-case abbreviations (without the final period) that never end a sentence on their own.
ABBREVIATIONS: frozenset[str] = frozenset(
    """
    mr mrs ms mx dr prof rev fr sr jr st mt ft hon gov gen col lt capt cmdr sgt maj adm pres
    rep sen supt insp
    e.g i.e etc vs cf al approx ca est dept univ assn bros inc ltd co corp plc llc
    no nos vol vols ed eds p pp fig figs ch sec art
    jan feb mar apr jun jul aug sep sept oct nov dec
    mon tue tues wed thu thur thurs fri sat sun
    u.s u.s.a u.k u.n e.u d.c a.m p.m b.c a.d ph.d m.d b.a m.a b.sc m.sc
    ave blvd rd ln
    """.split()
) | frozenset("abcdefghijklmnopqrstuvwxyz")

_LINE = re.compile(r"[^\n\r]+")
_TOKEN = re.compile(r"\w+(?:[.,'\u2019\-]\w+)*|[^\w\s]")


@lru_cache(maxsize=1)
def _punkt() -> PunktSentenceTokenizer:
    # Imported here: importing nltk takes seconds, and only sentence splitting needs it.
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    params = PunktParameters()
    params.abbrev_types = set(ABBREVIATIONS)
    return PunktSentenceTokenizer(params)


def _strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def sentences(text: str) -> list[tuple[int, int]]:
    """Sentence offsets of ``text``: ``[(start, end), ...]`` with ``text[start:end]`` a sentence."""
    punkt = _punkt()
    out: list[tuple[int, int]] = []
    for line in _LINE.finditer(text):
        base = line.start()
        chunk = line.group()
        pieces = punkt.span_tokenize(chunk) if chunk.strip() else ()
        covered = 0
        for a, b in pieces:
            # Punkt drops nothing but white space between sentences; attach any stray
            # non-space characters it skipped to the next sentence so none are lost.
            a = covered if chunk[covered:a].strip() else a
            covered = b
            piece = _strip(text, base + a, base + b)
            if piece is not None:
                out.append(piece)
        if chunk[covered:].strip():
            piece = _strip(text, base + covered, base + len(chunk))
            if piece is not None:
                out.append(piece)
    return out


def tokens(text: str) -> list[tuple[int, int]]:
    """Token offsets of ``text``: words (with inner ``.,'-``) and single punctuation marks."""
    return [m.span() for m in _TOKEN.finditer(text)]

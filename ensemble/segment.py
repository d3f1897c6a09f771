"""Split text into sentences and tokens, with exact character offsets, fully offline.

Sentences: the text is first broken at line breaks (LLM output uses them for lists and
paragraphs); each line is then split after ``. ! ? …`` followed by white space, and after the
CJK marks (``。`` and full-width ``!`` and ``?``; also ``… ! ?`` directly before CJK text),
closing quotes and brackets staying with the sentence they close. Whether a period ends a
sentence is decided by what follows it, not by a list of common words:

- a lower-case next word continues the sentence (``e.g. this``, ``approx. five``), unless the
  text is in lower case: a plain lower-case word, a period and a common sentence start
  (``london. he was``) end it;
- a capitalised next word that commonly starts a sentence (``He``, ``The``, ``In``...) ends it,
  so "He got a C. She got an A." and "a museum of art. It is" are two sentences;
- otherwise the sentence continues after a known title before a name (``Dr. Smith``,
  ``St. Louis``), after initials in a name (``J. R. R. Tolkien``, ``John F. Kennedy``) and
  after dotted abbreviations (``U.S. Army``, ``Ph.D. Thesis``);
- before a number it continues only after a word that introduces one (``No. 5``,
  ``Jan. 3``, ``p. 12``).

The scan is one pass of a regular expression with bounded look-around, so a line of any
length is split in linear time (no regular-expression timeouts, nothing lost).

Tokens are words (letters and digits, with inner ``.,'-`` kept, so ``3.5``, ``1,000`` and
``don't`` are one token) and single punctuation marks.

Both functions return ``(start, end)`` pairs such that ``text[start:end]`` is the piece.
Pieces never overlap, appear in order, never start or end with white space, and every
character of the text that is not white space lies inside exactly one piece.

Known limits: a dotted abbreviation or title before a capitalised word that is not a common
sentence start does not end a sentence ("in the U.S. Soon after" stays one); a single capital
letter after a capitalised word reads as an initial ("Plan B. Smith said" stays one).
"""

from __future__ import annotations

import re

__all__ = ["sentences", "tokens"]

#: Capitalised words (here lower-cased) that a sentence commonly starts with: after a
#: period, they mark a new sentence even after an initial or an abbreviation.
STARTERS: frozenset[str] = frozenset(
    """
    a after also although an and another as at because before both but by during each even
    every for from he her here his how however i if in it its later many meanwhile more most
    moreover no not now of on one once other our over she since so some such that the their
    then there these they this those though thus to today two under unlike until we what when
    where whether which while who why with within without yet you your
    additionally afterwards although born despite following furthermore nevertheless
    throughout
    """.split()
)

#: Titles that, capitalised and before a capitalised word, abbreviate (``Dr. Smith``).
TITLES: frozenset[str] = frozenset(
    """
    Mr Mrs Ms Mx Dr Prof Rev Fr Sr St Mt Ft Hon Gov Gen Col Lt Capt Cmdr Sgt Maj Adm Pres Rep
    Sen Supt Insp Messrs Mme Mlle Msgr Sir Jr
    """.split()
)

#: Words (lower-cased) that abbreviate before a number (``No. 5``, ``Jan. 3``, ``p. 12``).
NUMBER_WORDS: frozenset[str] = frozenset(
    """
    no nos nr vol vols p pp fig figs ch chap sec art ed eds op ca c approx est ver v vs
    jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()
)

#: Lower-case abbreviations that a common sentence start may follow ("etc. the"): the only
#: words after which a period before such a word does not end a sentence in lower-case text.
LOWER_ABBREVIATIONS: frozenset[str] = frozenset("etc vs cf approx ca incl esp viz al resp".split())

_LINE = re.compile(r"[^\n\r]+")
_CLOSE = "\"'\u201d\u2019\u00bb)\\]}\u300d\u300f\u3011\uff09\u300b"
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_END = re.compile(
    rf"[\u3002\uff01\uff1f\uff61]+[{_CLOSE}]*"  # CJK marks: always an end
    rf"|[.!?\u2026\u061f]+[{_CLOSE}]*(?=\s|$|[{_CJK}])"  # Latin marks: before space, end or CJK
)
_OPEN = "\"'\u201c\u2018\u00ab([{\u300c\u300e"
_NEXT_WORD = re.compile(rf"\s*[{_OPEN}]*(\w+)(\.?)")
_INITIAL = re.compile(r"[A-Z]")
_DOTTED = re.compile(r"(?:[^\W\d_]{1,3}\.)+[^\W\d_]{1,3}")
_TOKEN = re.compile(r"\w+(?:[.,'\u2019\-]\w+)*|[^\w\s]")
_LOOK = 64  # characters looked at on either side of a period: bounds the work per period


def _previous_words(line: str, at: int) -> list[str]:
    """The last two white-space-separated words before ``at`` (bounded look-back)."""
    words = line[max(0, at - _LOOK) : at].split()
    return [w.lstrip(_OPEN) for w in words[-2:]]


def _ends_sentence(line: str, start: int, end: int) -> bool:
    """Whether the terminator ``line[start:end]`` (followed by white space) ends a sentence."""
    mark = line[start:end].rstrip(_CLOSE)
    window = line[end : end + _LOOK]
    nxt = _NEXT_WORD.match(window)
    if nxt is None:  # end of line, or only punctuation follows
        return True
    word = nxt.group(1)
    first = word[0]
    if first.islower():
        # Continues ("e.g. this", "approx. five") unless the text is written in lower case:
        # a plain word, then a word that commonly starts a sentence ("london. he was").
        if word not in STARTERS or mark != ".":
            return False
        before = _previous_words(line, start)
        prev = before[-1] if before else ""
        return (
            len(prev) > 1 and prev.islower() and prev.isalpha() and prev not in LOWER_ABBREVIATIONS
        )
    if mark != ".":  # ! ? ... and …: any non-lower-case word starts a new sentence
        return True
    before = _previous_words(line, start)
    if not before:
        return True
    prev = before[-1]
    if not prev or prev.endswith(tuple(_CLOSE)):
        return True
    if first.isdigit():
        return prev.lower() not in NUMBER_WORDS
    if not first.isupper():
        return True
    if word.lower() in STARTERS and not (len(word) == 1 and nxt.group(2)):
        return True
    if prev in TITLES or _DOTTED.fullmatch(prev):
        return False
    if _INITIAL.fullmatch(prev):
        # An initial: the next word is one too, or the name continues from a capitalised word
        # (or the line's start) before it.
        if len(word) == 1 and nxt.group(2):
            return False
        earlier = before[0] if len(before) == 2 else ""
        at_line_start = len(before) == 1 and not line[max(0, start - _LOOK) : start - 1].strip()
        return not (at_line_start or (earlier[:1].isupper() and earlier[-1:] not in ",;:"))
    return True


def _strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def sentences(text: str) -> list[tuple[int, int]]:
    """Sentence offsets of ``text``: ``[(start, end), ...]`` with ``text[start:end]`` a sentence."""
    out: list[tuple[int, int]] = []
    for line_match in _LINE.finditer(text):
        base = line_match.start()
        line = line_match.group()
        start = 0
        for m in _END.finditer(line):
            a, b = m.span()
            if line[a] in "\u3002\uff01\uff1f\uff61" or _ends_sentence(line, a, b):
                piece = _strip(text, base + start, base + b)
                if piece is not None:
                    out.append(piece)
                start = b
        piece = _strip(text, base + start, base + len(line))
        if piece is not None:
            out.append(piece)
    return out


def tokens(text: str) -> list[tuple[int, int]]:
    """Token offsets of ``text``: words (with inner ``.,'-``) and single punctuation marks."""
    return [m.span() for m in _TOKEN.finditer(text)]

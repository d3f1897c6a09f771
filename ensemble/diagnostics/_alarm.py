"""The uniformity alarm: different models that agree beyond what is plausible.

**Uniformity alarm.** Different models that agree beyond what is plausible (long verbatim
runs, identical rare strings such as URLs, code or long numbers, inter-model agreement above
intra-model agreement, agreement far above a pair's history) raise an ``Alert`` of kind
``"uniformity"``. Models are compared by family: lock-step agreement between two names of
one family is expected, across families it is the signal. The alarm never changes a
confidence or the consensus text.

Pure computation; the alarm only *reads* a baseline (:mod:`ensemble.diagnostics._baseline`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import numpy.typing as npt
from pydantic import Field

from ensemble._validate import Int, Number, Settings
from ensemble.diagnostics._baseline import AgreementBaseline
from ensemble.diagnostics._breakdown import (
    PairAgreement,
    _by_family,
    _clip,
    _model,
    _sym,
    agreement_breakdown,
)
from ensemble.metrics.base import FloatArray
from ensemble.types import (
    AgreementBreakdown,
    Alert,
    AlertEvidence,
    Sample,
)

# --- 3. the uniformity alarm -----------------------------------------------------------------

_URL = r"(?:https?://|www\.)[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]"
_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_CODE = r"`[^`\n]{3,}`"
_TOKEN = re.compile(rf"{_URL}|{_EMAIL}|{_CODE}|[^\W_]+(?:[.,'\u2019\-/_][^\W_]+)*", re.UNICODE)
_RARE_URL = re.compile(rf"^(?:{_URL}|{_EMAIL})$", re.IGNORECASE)
_RARE_CODE = re.compile(rf"^{_CODE}$|[(){{}}\[\];=<>]|::|[a-z]_[a-z]|[a-z][A-Z]")
_DIGITS = re.compile(r"\d")


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group().casefold(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _rare_kind(token: str) -> str | None:
    """``"url"``, ``"code"`` or ``"number"`` for a token that two models rarely share by chance."""
    if _RARE_URL.match(token):
        return "url"
    if token.startswith("`") or _RARE_CODE.search(token):
        return "code"
    if len(_DIGITS.findall(token)) >= 6:
        return "number"
    return None


def rare_strings(text: str) -> list[tuple[str, str, int, int]]:
    """The rare strings of ``text`` as ``(kind, string, start, end)``: URLs and e-mail
    addresses, inline code, and numbers with at least six digits (``1,234,567``)."""
    out = []
    for m in _TOKEN.finditer(text):
        kind = _rare_kind(m.group())
        if kind is not None:
            out.append((kind, m.group(), m.start(), m.end()))
    return out


class UniformityAlarm(Settings):
    """Settings of the uniformity alarm (see ``docs/diagnostics.md`` for the rules).

    - ``min_run``: a verbatim run of this many words, shared by samples of different models
      and not found in the prompt, scores 0.5 (fires); the score grows to 1 at
      ``min_run + 4`` and falls to 0 at ``min_run - 4``.
    - A rare string (URL, e-mail, inline code, a number of 6+ digits) shared by different
      models scores 0.7 when only some of three or more models produce it, and 0.35 otherwise
      (so with two models it fires only together with a shared run around it).
    - ``margin``: inter-model agreement at least this much above *both* models' own
      intra-model agreement (each with 2+ samples, inter at least 0.5), and unlikely under a
      permutation test of the model labels (p at most ``p_value``), scores 0.5 and up. With
      few samples the test cannot reach ``p_value`` (3 + 3 samples: p >= 0.1), so this rule
      needs about five samples per model.
    - ``baseline`` with ``z`` and ``min_history``: agreement ``z`` standard deviations above
      the pair's history (and at least ``margin`` above its mean) scores 0.5 and up.
    - ``twin_share`` and ``twins``: two families (3+ samples each) whose replies are the
      *same replies* (whole texts after :func:`~ensemble.metrics.vote.normalize_answer`):
      at least ``twin_share`` of the smaller family's samples have an identical twin in the
      other (a one-to-one matching), spread over at least ``twins`` different replies, score
      0.5 and up (``twins=2``, ``twin_share=0.8`` were chosen on the even question ids of
      ``benchmarks/families.py``). Independent families agree on answers, not on the
      wording of different sentences; one that copies another's replies (the same weights behind two
      names, a cache, a relay) does. Unanimous identical replies are not enough (``twins``).

    An alert is raised for each group of models whose best score reaches ``fire_at``.
    Keyword-only and frozen; out-of-range settings raise
    :class:`~ensemble.errors.ConfigurationError`.
    """

    min_run: Int = Field(default=12, ge=1, le=10_000)
    margin: Number = Field(default=0.15, gt=0.0, le=1.0)
    p_value: Number = Field(default=0.01, gt=0.0, le=1.0)
    baseline: AgreementBaseline | None = None
    z: Number = Field(default=3.0, gt=0.0, le=1000.0)
    min_history: Int = Field(default=5, ge=1, le=1_000_000)
    fire_at: Number = Field(default=0.5, gt=0.0, le=1.0)
    prompt_ngram: Int = Field(default=4, ge=1, le=10_000)
    max_evidence: Int = Field(default=12, ge=0, le=10_000)
    twin_share: Number = Field(default=0.8, gt=0.0, le=1.0)
    twins: Int = Field(default=2, ge=0, le=10_000)

    def check(
        self,
        samples: Sequence[Sample],
        *,
        agreement: PairAgreement = (),
        breakdown: AgreementBreakdown | None = None,
        prompt: str | None = None,
    ) -> tuple[Alert, ...]:
        """The uniformity alerts for these samples (empty when nothing is suspicious).

        Models are grouped by family (:func:`family_key`): the rules compare families, and
        an alert's ``models`` are the model names of the families involved.
        """
        by_family = _by_family(samples)
        if any(a.model != b.model for a, b in zip(samples, by_family, strict=True)):
            names: dict[str, set[str]] = {}
            for a, b in zip(samples, by_family, strict=True):
                if a.model is not None and b.model is not None:
                    names.setdefault(b.model, set()).add(a.model)
            fam_breakdown = agreement_breakdown(by_family, agreement) if agreement else None
            alerts = _check(self, by_family, agreement, fam_breakdown, prompt)
            return tuple(_name_models(a, names) for a in alerts)
        return _check(self, samples, agreement, breakdown, prompt)


DEFAULT_ALARM = UniformityAlarm()


def _name_models(alert: Alert, names: Mapping[str, set[str]]) -> Alert:
    """An alert found on families, with the families' model names in ``models``."""
    fams = alert.models
    models = tuple(sorted({m for f in fams for m in names.get(f, {f})}))
    if models == fams:
        return alert
    message = alert.message.replace(
        f"models {', '.join(fams)} ", f"model families {', '.join(fams)} ({', '.join(models)}) ", 1
    )
    return alert.model_copy(update={"models": models, "message": message})


@dataclass
class _Finding:
    score: float
    reasons: list[str] = field(default_factory=list)
    runs: list[tuple[tuple[str, ...], float]] = field(default_factory=list)


def _prompt_cover(
    tokens: list[tuple[str, int, int]], prompt_grams: set[tuple[str, ...]], n: int
) -> list[bool]:
    covered = [False] * len(tokens)
    if not prompt_grams:
        return covered
    words = [t[0] for t in tokens]
    for p in range(len(words) - n + 1):
        if tuple(words[p : p + n]) in prompt_grams:
            for q in range(p, p + n):
                covered[q] = True
    return covered


def _shared_runs(a: list[str], b: list[str], min_len: int) -> list[tuple[int, int]]:
    """Maximal runs ``(start, length)`` in ``a`` that also occur contiguously in ``b``."""
    where: dict[str, list[int]] = {}
    for q, w in enumerate(b):
        where.setdefault(w, []).append(q)
    best: dict[int, int] = {}
    for p, w in enumerate(a):
        for q in where.get(w, ()):
            if p and q and a[p - 1] == b[q - 1]:
                continue  # not the start of a maximal run
            k = 1
            while p + k < len(a) and q + k < len(b) and a[p + k] == b[q + k]:
                k += 1
            if k >= min_len and k > best.get(p, 0):
                best[p] = k
    # Drop runs inside longer runs of the same sample.
    out: list[tuple[int, int]] = []
    for p in sorted(best):
        k = best[p]
        if out and p + k <= out[-1][0] + out[-1][1]:
            continue
        out.append((p, k))
    return out


def _find(seq: list[str], run: tuple[str, ...]) -> int:
    n = len(run)
    first = run[0]
    for p in range(len(seq) - n + 1):
        if seq[p] == first and tuple(seq[p : p + n]) == run:
            return p
    return -1


def _excess(sym: FloatArray, labels: npt.NDArray[np.bool_]) -> float:
    """Inter-model mean agreement minus the larger of the two intra-model means."""
    a = labels
    b = ~labels
    inter = sym[np.ix_(a, b)].mean()
    intra = []
    for m in (a, b):
        k = int(m.sum())
        block = sym[np.ix_(m, m)]
        intra.append((block.sum() - np.trace(block)) / (k * (k - 1)))
    return float(inter - max(intra))


def _permutation_p(
    agreement: PairAgreement, members: Sequence[int], labels: Sequence[bool]
) -> float | None:
    """One-sided permutation p-value of the inter-above-intra excess for two models.

    Under the null that the two models' samples are exchangeable (one model under two names),
    every assignment of the labels is equally likely; for models that merely answer alike the
    test is conservative, since cross-model agreement cannot exceed within-model agreement in
    expectation. Exact when there are at most 5000 assignments, else 5000 fixed-seed draws.
    """
    n = len(members)
    sym = np.zeros((n, n), dtype=np.float64)
    for x, i in enumerate(members):
        for y, j in enumerate(members):
            v = _sym(agreement, i, j) if i != j else 1.0
            if v is None:
                return None
            sym[x, y] = v
    lab = np.array(labels, dtype=bool)
    k = int(lab.sum())
    if k < 2 or n - k < 2:
        return None
    observed = _excess(sym, lab)
    total = math.comb(n, k)
    if total <= 5000:
        draws: Iterable[tuple[int, ...]] = combinations(range(n), k)
    else:
        rng = np.random.default_rng(0)
        draws = (tuple(rng.choice(n, size=k, replace=False)) for _ in range(5000))
        total = 5000
    hits = 0
    for chosen in draws:
        perm = np.zeros(n, dtype=bool)
        perm[list(chosen)] = True
        if _excess(sym, perm) >= observed - 1e-12:
            hits += 1
    return hits / total


def _run_score(run: tuple[str, ...], min_run: int) -> float:
    return _clip((len(run) - (min_run - 4)) / 8.0)


def _check(
    cfg: UniformityAlarm,
    samples: Sequence[Sample],
    agreement: PairAgreement,
    breakdown: AgreementBreakdown | None,
    prompt: str | None,
) -> tuple[Alert, ...]:
    voters = [i for i, s in enumerate(samples) if s.ok and s.model is not None]
    models = sorted({_model(samples[i]) for i in voters})
    if len(models) < 2:
        return ()
    toks = {i: _tokens(samples[i].text or "") for i in voters}
    words = {i: [t[0] for t in toks[i]] for i in voters}
    n = max(1, cfg.prompt_ngram)
    pwords = [t[0] for t in _tokens(prompt or "")]
    prompt_grams = {tuple(pwords[p : p + n]) for p in range(len(pwords) - n + 1)}
    prompt_rare = {w for w in pwords if _rare_kind(w)}
    cover = {i: _prompt_cover(toks[i], prompt_grams, n) for i in voters}

    findings: dict[frozenset[str], _Finding] = {}

    def add(group: frozenset[str], score: float, reason: str, run: tuple[str, ...] | None) -> None:
        f = findings.setdefault(group, _Finding(0.0))
        f.score = max(f.score, score)
        if reason not in f.reasons:
            f.reasons.append(reason)
        if run is not None and all(r != run for r, _ in f.runs):
            f.runs.append((run, score))

    def producers(run: tuple[str, ...]) -> frozenset[str]:
        return frozenset(_model(samples[i]) for i in voters if _find(words[i], run) >= 0)

    def pieces(i: int, j: int) -> Iterable[tuple[str, ...]]:
        """Maximal runs shared by samples i and j, split where the prompt explains them."""
        for p, k in _shared_runs(words[i], words[j], 1):
            piece: list[str] = []
            for q in range(p, p + k + 1):
                if q < p + k and not cover[i][q]:
                    piece.append(words[i][q])
                elif piece:
                    yield tuple(piece)
                    piece = []

    # How long the runs are that each model (with 2+ samples) shares with itself.
    own: dict[str, int] = {}
    for i, j in combinations(voters, 2):
        m = _model(samples[i])
        if m == _model(samples[j]):
            own[m] = max([own.get(m, 0), *(len(r) for r in pieces(i, j))])

    # (a) verbatim runs and rare strings shared across different models.
    seen: set[tuple[str, ...]] = set()
    for i, j in combinations(voters, 2):
        if _model(samples[i]) == _model(samples[j]):
            continue
        for run in pieces(i, j):
            if run in seen:
                continue
            seen.add(run)
            rare = [w for w in run if _rare_kind(w) and w not in prompt_rare]
            score = _run_score(run, cfg.min_run)
            if score <= 0.0 and not rare:
                continue
            group = producers(run)
            if len(group) < 2:
                continue
            explained = all(own.get(m, 0) >= len(run) for m in group)
            if explained:
                # Every model involved repeats runs this long on its own: the run is
                # less surprising (see docs/diagnostics.md for what this costs).
                score *= 0.5
            if rare:
                some = len(models) >= 3 and len(group) < len(models)
                rare_score = 0.7 if some else 0.35
                score = 1.0 - (1.0 - score) * (1.0 - rare_score)
            if score > 0.0:
                why = f"{len(run)}-word verbatim run"
                if rare:
                    why += f" with rare string {rare[0]!r}"
                if explained:
                    why += " (each model also repeats such runs itself)"
                add(group, score, why, run)

    # (b) inter-model agreement above both models' own agreement, (c) above history.
    if breakdown is not None:
        intra = {x.models[0]: x.mean for x in breakdown.intra}
        for pair in breakdown.inter:
            a, b = pair.models
            group = frozenset((a, b))
            if a in intra and b in intra and pair.mean >= 0.5:
                excess = pair.mean - max(intra[a], intra[b])
                if excess >= cfg.margin:
                    members = [i for i in voters if _model(samples[i]) in group]
                    labels = [_model(samples[i]) == a for i in members]
                    p_val = _permutation_p(agreement, members, labels)
                    if p_val is not None and p_val <= cfg.p_value:
                        add(
                            group,
                            _clip(0.5 + (excess - cfg.margin) / (2 * cfg.margin)),
                            f"inter-model agreement {pair.mean:.2f} above intra-model "
                            f"{max(intra[a], intra[b]):.2f} (permutation p = {p_val:.3f})",
                            None,
                        )
            if cfg.baseline is not None:
                hist_n, mean, std = cfg.baseline.stats(a, b)
                if hist_n >= cfg.min_history and pair.mean - mean >= cfg.margin:
                    z = (pair.mean - mean) / max(std, 0.02)
                    if z >= cfg.z:
                        add(
                            group,
                            _clip(0.5 + (z - cfg.z) / (2 * cfg.z)),
                            f"agreement {pair.mean:.2f} is {z:.1f} sd above this pair's "
                            f"history ({mean:.2f} over {hist_n} runs)",
                            None,
                        )

    # (d) the same replies, one for one, across families.
    if cfg.twins > 0:
        from ensemble.metrics.vote import normalize_answer

        replies: dict[str, list[str]] = {}
        for i in voters:
            key = normalize_answer(samples[i].text or "")
            if key:
                replies.setdefault(_model(samples[i]), []).append(key)
        for a, b in combinations(sorted(replies), 2):
            ra, rb = replies[a], replies[b]
            if min(len(ra), len(rb)) < 3:
                continue
            shared = Counter(ra) & Counter(rb)
            share = sum(shared.values()) / min(len(ra), len(rb))
            if share >= cfg.twin_share and len(shared) >= cfg.twins:
                top = 1.0 - cfg.twin_share
                score = 0.5 + (0.5 * (share - cfg.twin_share) / top if top > 0 else 0.5)
                add(
                    frozenset((a, b)),
                    _clip(score),
                    f"{sum(shared.values())} identical replies ({len(shared)} different ones), "
                    f"{share:.0%} of the samples",
                    None,
                )

    alerts: list[Alert] = []
    for group, f in sorted(findings.items(), key=lambda kv: (-kv[1].score, sorted(kv[0]))):
        if f.score < cfg.fire_at:
            continue
        names = tuple(sorted(group))
        evidence = _evidence(cfg, samples, voters, toks, words, group, f, agreement)
        shown = f': "{evidence[0].text}"' if f.runs and evidence else ""
        alerts.append(
            Alert(
                kind="uniformity",
                message=(
                    f"models {', '.join(names)} agree beyond what is plausible "
                    f"({'; '.join(f.reasons[:3])}){shown}"
                ),
                score=round(f.score, 6),
                models=names,
                evidence=evidence,
                severity="critical" if f.score >= 0.9 else "warning",
            )
        )
    return tuple(alerts)


def _evidence(
    cfg: UniformityAlarm,
    samples: Sequence[Sample],
    voters: Sequence[int],
    toks: Mapping[int, list[tuple[str, int, int]]],
    words: Mapping[int, list[str]],
    group: frozenset[str],
    finding: _Finding,
    agreement: PairAgreement,
) -> tuple[AlertEvidence, ...]:
    out: list[AlertEvidence] = []
    runs = [r for r, _ in sorted(finding.runs, key=lambda r: (-r[1], -len(r[0])))]
    if not runs:
        # Agreement-based finding: show the longest run the group's samples share, if any.
        members = [i for i in voters if _model(samples[i]) in group]
        longest: tuple[str, ...] = ()
        for i, j in combinations(members, 2):
            if _model(samples[i]) == _model(samples[j]):
                continue
            for p, k in _shared_runs(words[i], words[j], 3):
                if k > len(longest):
                    longest = tuple(words[i][p : p + k])
        runs = [longest] if longest else []
    for run in runs:
        for i in voters:
            if _model(samples[i]) not in group:
                continue
            p = _find(words[i], run)
            if p < 0:
                continue
            start, end = toks[i][p][1], toks[i][p + len(run) - 1][2]
            text = samples[i].text or ""
            out.append(AlertEvidence(text=text[start:end], sample=i, start=start, end=end))
            if len(out) >= cfg.max_evidence:
                return tuple(out)
    return tuple(out)

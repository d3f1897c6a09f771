"""Fused consensus: one text made of the sentences that most samples (and most models) state.

Pure computation, no model calls; ``consensus(samples, method="fuse")``, ``aconsensus`` and
``Ensemble(method="fuse")`` land here: :func:`fuse_steps` is written as the engine's steps
(it asks for segmentations, agreement matrices and scores), so one code path serves the sync
and the async drivers of :mod:`ensemble.engine`. The rule, step by step (``docs/fuse.md``
has the long version and the figures):

1. **Voters.** Successful samples with some text vote; failures and empty answers never do.
   With fewer than two voters there is nothing to fuse and the result is what
   ``method="select"`` gives (the one sample, confidence per the usual rule).
2. **Sentences.** Every voter is split with the metric's own segmentation, after
   :func:`unwrap` has turned line breaks that wrap a sentence into spaces; each sentence
   remembers its sample and its relative position there (``(k + 0.5) / n``).
3. **Agreement.** The metric's :meth:`~ensemble.Metric.agreement` over all distinct sentences
   gives ``A[a, b]``, how well sentence ``a`` is supported by sentence ``b``; two sentences
   *agree* by their mutual support ``min(A[a, b], A[b, a])``.
4. **Conflicts.** Two sentences *contradict* (:func:`contradicts`) when they are about the same
   point (their content words, as the ``ngram`` metric reads them, share at least one word and
   overlap by a Jaccard index of at least ``overlap``, or differ by exactly one word swapped
   for another) but each says something the other does not (each has a content word the
   other lacks), or exactly one of them is negated. "The capital of France is Paris."
   and "The capital of France is Lyon." contradict; "The capital of France is Paris." and
   "The capital of France is Paris, on the Seine." do not.
5. **Clusters.** Sentences are taken in a canonical order (most agreed-with first, ties by
   text, so the order of the samples never matters); each joins the cluster whose members it
   agrees with most, on average, if that mean is at least ``join`` and it contradicts none of
   them and no sentence of its own sample is in it yet, and starts a new cluster otherwise.
6. **Votes.** Each model family (``families[model]``, else the sample's family from its model's
   card in the catalog, else the model name: :func:`ensemble.diagnostics.family_key`; without
   any model name, each sample) has one vote, split evenly over its voting samples. A
   cluster's support is the vote of the samples with a sentence in it and of the samples one
   of whose sentences supports its chosen sentence at least ``contain`` (default 1.0;
   ``None``: off) without contradicting it (a long sentence that states several claims at
   once; not for a sentence of fewer than two content words, which nearly any sentence
   contains); it is *kept* when that is at least ``quorum`` (default one half: one family's
   repeats cannot outvote the others). A cluster below the quorum is kept too by the *lead
   rule* (``floor``, default 0.2; ``None``: off) when it has at least ``floor`` of the vote,
   backers from two independent sources (two families when the voters come from two or
   more, else two samples: one model's repeats never carry a claim alone), and it leads its
   point: against every cluster that contradicts it, it has backers from more sources, or
   from as many and more support. A family that says nothing about the currency does not
   vote against the one currency the others name, and a currency two families name beats
   one that only one family repeats. A sentence of one content word ("Lyon.") is a bare
   value: the contradiction rule cannot tell which point it is on, so only the quorum keeps it.
   With voters from two families or more, the *witness rule* (``witnesses``, default 1.5;
   ``None``: off) lets one family's backing alone keep a claim at the floor that no other
   claim contradicts, when its backers are independent enough: ``k`` backers of a family
   whose samples agree ``rho`` with each other (mean mutual agreement of its whole answers)
   count as ``k / (1 + (k - 1) * rho)`` witnesses, and that must reach ``witnesses``. Five
   near-copies count as about one witness, five unrelated samples as about five.
7. **Conflicts between clusters.** Clusters are visited from the best supported down; one that
   contradicts an already kept cluster (their chosen sentences contradict) is dropped with
   reason ``"conflict"``, so two contradicting claims are never both kept. Unless ``contain``
   is ``None``, one whose chosen sentence contains a kept one's or is contained in it
   (support at least ``contain`` either way) is dropped as ``"redundant"``.
8. **Text.** Each kept cluster is stated by its best-supported member (support of a sentence by
   a sample: its mutual agreement with that sample's best matching sentence, weighted by the
   votes; a fragment contained in the others' sentences does not win);
   clusters are ordered by the median relative position of their members. The sentences are
   joined with a space, or with line breaks when a space would make the metric's segmentation
   merge two of them, so the fused spans are exactly the spans the metric reads in the text.
9. **Confidence.** The fused text is scored as :func:`ensemble.score` scores any text, against
   every successful sample. Hence the rule: ``score(text=fused.text, samples=same samples,
   metric=same metric, weighting=same)`` gives the same spans with the same confidences.

Cost: ``O(N^2)`` metric comparisons for ``N`` sentences in all (the ``ngram`` metric does them
as one sparse matrix product) plus ``O(N * C)`` for clustering into ``C`` clusters and
at most ``C * (C - 1) / 2`` contradiction checks between the clusters' chosen sentences
(each pair at most once; in practice a few per cluster).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ensemble import engine
from ensemble.calibration import Calibrator
from ensemble.diagnostics import DEFAULT_ALARM, UniformityAlarm
from ensemble.diagnostics._breakdown import family_weights
from ensemble.errors import InvalidInputError
from ensemble.metrics.base import FloatArray, Metric
from ensemble.metrics.ngram import NEGATIONS, STOPWORDS, content_units
from ensemble.types import Alert, Claim, Consensus, DroppedClaim, Sample, Span

__all__ = [
    "DEFAULT_CONTAIN",
    "DEFAULT_FLOOR",
    "DEFAULT_JOIN",
    "DEFAULT_OVERLAP",
    "DEFAULT_QUORUM",
    "DEFAULT_WITNESSES",
    "afuse",
    "contradicts",
    "fuse",
    "unwrap",
]

#: Mean agreement with a cluster's members at or above which a sentence joins it (chosen on
#: the choice half of ``benchmarks/fuse_facts.py``; see ``docs/fuse.md``).
DEFAULT_JOIN = 0.5
#: Support by one of a sample's sentences from which that sample backs a claim it does not
#: state in a sentence of its own (chosen with ``DEFAULT_JOIN``).
DEFAULT_CONTAIN = 1.0
#: Share of the vote a cluster needs to be kept.
DEFAULT_QUORUM = 0.5
#: Share of the vote from which a claim below the quorum may be kept by the lead rule (step
#: 6; chosen with ``DEFAULT_JOIN``); ``floor=None`` turns the lead rule off.
DEFAULT_FLOOR = 0.2
#: Effective number of witnesses from which one family's backing alone may keep a claim that
#: no other claim contradicts (the witness rule of step 6: ``k`` backers of a family whose
#: samples agree ``rho`` with each other on average count ``k / (1 + (k - 1) * rho)``; chosen
#: on the choice half of ``benchmarks/fuse_facts.py``); ``witnesses=None`` turns it off.
DEFAULT_WITNESSES = 1.5
#: Jaccard overlap of content words from which two differing sentences are about one point.
DEFAULT_OVERLAP = 0.5

_NEG = frozenset(NEGATIONS)


@dataclass(frozen=True)
class _Units:
    rest: frozenset[str]
    negated: bool


def _units(text: str) -> _Units:
    u = set(content_units(text))
    return _Units(frozenset(u - _NEG), bool(u & _NEG))


def _contradict(a: _Units, b: _Units, overlap: float) -> bool:
    if not a.rest or not b.rest:
        return False
    shared = len(a.rest & b.rest)
    if shared == 0:
        return False
    only_a, only_b = len(a.rest - b.rest), len(b.rest - a.rest)
    swap = only_a == 1 and only_b == 1  # one word swapped for another: "euro" / "franc"
    if not swap and shared / len(a.rest | b.rest) < overlap:
        return False
    if a.negated != b.negated:
        return True
    return only_a > 0 and only_b > 0


def contradicts(a: str, b: str, *, overlap: float = DEFAULT_OVERLAP) -> bool:
    """Whether two sentences contradict by the fusion rule (step 4 of the module docstring).

    >>> contradicts("The capital of France is Paris.", "The capital of France is Lyon.")
    True
    >>> contradicts("The capital of France is Paris.", "Paris is the capital of France.")
    False
    """
    return _contradict(_units(a), _units(b), overlap)


@dataclass
class _Sentence:
    sample: int  # index into all samples
    start: int
    end: int
    text: str
    position: float
    uid: int = 0  # index of its text among the distinct sentence texts


def _check_fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidInputError(f"{name} must be a number in [0, 1], not {value!r}")
    return float(value)


def _vote_weights(
    vote: engine._Vote, voters: Sequence[int]
) -> tuple[dict[int, float], dict[int, str]]:
    """Each voter's share of the vote (the shares sum to 1) and its source. With a model name
    or a family on some voter: one vote per family, the family as :meth:`engine._Vote.family`
    reads it and the weights those of :func:`ensemble.diagnostics.independence_weights`
    for those families (the candidate choice counts families the same way); without any:
    one vote per sample, each sample its own source."""
    samples = vote.samples
    if not any(samples[i].model is not None or samples[i].family for i in voters):
        return {i: 1.0 / len(voters) for i in voters}, {i: f"#{i}" for i in voters}
    family = {i: vote.family(i) for i in voters}
    raw = family_weights([family[i] for i in voters])
    share = np.ones(len(voters)) if raw is None else raw
    share = share / share.sum()
    return {i: float(share[k]) for k, i in enumerate(voters)}, family


def _sources(family: Mapping[int, str]) -> dict[int, str]:
    """The independent sources the lead rule counts: the voters' families when there are two
    or more, else the voters themselves (one family's samples are then all there is)."""
    if len(set(family.values())) >= 2:
        return dict(family)
    return {i: f"#{i}" for i in family}


_WRAPPED = re.compile(r"(?<=[^\W_])([ \t]*)\n(?=[ \t]*[^\W\d_])")
_LAST_WORD = re.compile(r"([^\W\d_]+)[ \t]*$")


def unwrap(text: str) -> str:
    """``text`` with each line break that wraps a sentence replaced by a space (same length,
    so offsets stay valid): a single line break between two letters where the line ends
    with a function word ("The main language of\\nSwedish.") or the next line starts with a
    lower-case letter. Other line breaks (lists, "Capital: Paris\\nCurrency: euro") stay."""

    def repl(m: re.Match[str]) -> str:
        before = _LAST_WORD.search(text, 0, m.start(1) + len(m.group(1)))
        nxt = text[m.end() :].lstrip(" \t")[:1]
        wrapped = (before is not None and before.group(1).lower() in STOPWORDS) or nxt.islower()
        return m.group(1) + (" " if wrapped else "\n")

    return _WRAPPED.sub(repl, text)


def _sentences(sample: int, text: str, offsets: Sequence[tuple[int, int]]) -> list[_Sentence]:
    """The sentences of one voter (``text`` unwrapped, ``offsets`` the metric's spans)."""
    n = len(offsets)
    return [_Sentence(sample, a, b, text[a:b], (k + 0.5) / n) for k, (a, b) in enumerate(offsets)]


@dataclass
class _Cluster:
    members: list[int]
    sources: set[int]
    backers: set[int] = field(default_factory=set)
    rep: int = -1
    support: float = 0.0
    position: float = 0.5


def _cluster(
    sents: list[_Sentence],
    sample_texts: Sequence[str],
    sym: FloatArray,
    units: list[_Units],
    *,
    join: float,
    overlap: float,
) -> list[_Cluster]:
    n = len(sents)
    degree = sym.sum(axis=1) - np.diag(sym)
    # Ties by text, then by the whole sample's text (samples with the same text are
    # interchangeable), so the order of the samples cannot change a decision.
    order = sorted(
        range(n),
        key=lambda a: (
            -round(float(degree[a]), 9),
            sents[a].text,
            sample_texts[sents[a].sample],
            sents[a].start,
        ),
    )
    clusters: list[_Cluster] = []
    assign = np.full(n, -1, dtype=np.intp)
    done: list[int] = []
    conflict_cache: dict[tuple[int, int], bool] = {}

    def conflict(a: int, b: int) -> bool:
        ua, ub = sents[a].uid, sents[b].uid
        key = (min(ua, ub), max(ua, ub))
        hit = conflict_cache.get(key)
        if hit is None:
            hit = _contradict(units[ua], units[ub], overlap)
            conflict_cache[key] = hit
        return hit

    for a in order:
        best = -1
        if done:
            idx = np.array(done, dtype=np.intp)
            labels = assign[idx]
            sums = np.bincount(labels, weights=sym[a, idx], minlength=len(clusters))
            sizes = np.bincount(labels, minlength=len(clusters))
            means = np.round(sums / np.maximum(sizes, 1), 9)
            # Best first; ties by the cluster's creation order, itself canonical.
            for c in np.argsort(-means, kind="stable"):
                if means[c] < join:
                    break
                cluster = clusters[c]
                if sents[a].sample not in cluster.sources and not any(
                    conflict(a, m) for m in cluster.members
                ):
                    best = int(c)
                    break
        if best < 0:
            clusters.append(_Cluster(members=[], sources=set()))
            best = len(clusters) - 1
        clusters[best].members.append(a)
        clusters[best].sources.add(sents[a].sample)
        assign[a] = best
        done.append(a)
    return clusters


def _sample_support(
    sents: list[_Sentence], agree: FloatArray, voters: Sequence[int]
) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """``(sentences, voters)``: support of each sentence by each voter's best matching
    sentence, and which sentence that is."""
    out = np.zeros((len(sents), len(voters)), dtype=np.float64)
    arg = np.full((len(sents), len(voters)), -1, dtype=np.intp)
    col = {v: k for k, v in enumerate(voters)}
    for b, s in enumerate(sents):
        k = col[s.sample]
        better = agree[:, b] > out[:, k]
        out[better, k] = agree[better, b]
        arg[better, k] = b
    return out, arg


@dataclass(frozen=True)
class Rule:
    """The thresholds of the fusion rule (steps 4 to 7 of the module docstring), checked once;
    :func:`fuse` takes them as keywords, ``consensus(method="fuse")`` uses the defaults."""

    join: float = DEFAULT_JOIN
    quorum: float = DEFAULT_QUORUM
    overlap: float = DEFAULT_OVERLAP
    contain: float | None = DEFAULT_CONTAIN
    floor: float | None = DEFAULT_FLOOR
    witnesses: float | None = DEFAULT_WITNESSES

    def __post_init__(self) -> None:
        for name in ("join", "quorum", "overlap", "contain", "floor"):
            value = getattr(self, name)
            if value is not None or name in ("join", "quorum", "overlap"):
                object.__setattr__(self, name, _check_fraction(name, value))
        w = self.witnesses
        if w is not None and (
            isinstance(w, bool) or not isinstance(w, (int, float)) or not 1 < w < float("inf")
        ):
            raise InvalidInputError(f"witnesses must be a number above 1, not {w!r}")


#: The rule ``consensus(method="fuse")`` applies.
DEFAULT_RULE = Rule()


def _steps(
    samples: Sequence[str | Sample],
    metric: str | Metric,
    families: Mapping[str, str] | None,
    rule: Rule,
    threshold: float | None,
    weights: Sequence[float] | None,
    weighting: Literal["sample", "model"],
    prompt: str | None,
    alarm: UniformityAlarm | None,
    calibration: Calibrator | str | Path | None,
) -> tuple[engine._Steps, Metric]:
    """The vote :func:`fuse` and :func:`afuse` drive, as the engine's steps and its metric."""
    vote = engine._vote(
        samples,
        weights,
        prompt,
        None,
        metric,
        weighting,
        threshold,
        alarm,
        calibration,
        method="fuse",
        families=families,
    )
    return fuse_steps(vote, rule), vote.metric


def fuse(
    samples: Sequence[str | Sample],
    *,
    metric: str | Metric = "ngram",
    families: Mapping[str, str] | None = None,
    join: float = DEFAULT_JOIN,
    quorum: float = DEFAULT_QUORUM,
    overlap: float = DEFAULT_OVERLAP,
    contain: float | None = DEFAULT_CONTAIN,
    floor: float | None = DEFAULT_FLOOR,
    witnesses: float | None = DEFAULT_WITNESSES,
    threshold: float | None = None,
    weights: Sequence[float] | None = None,
    weighting: Literal["sample", "model"] = "model",
    prompt: str | None = None,
    alarm: UniformityAlarm | None = DEFAULT_ALARM,
    calibration: Calibrator | str | Path | None = None,
) -> Consensus:
    """Fuse the samples' agreeing sentences into one text (the rule: the module docstring).

    ``families`` maps model names to family names (models of one family share one vote);
    a model it does not name is of its :attr:`~ensemble.Sample.family` or its catalog card's
    family, else a family of its own. ``join``, ``quorum`` and ``overlap`` are
    the thresholds of steps 5, 6 and 4; ``contain`` (``None``: off) lets a sample without a
    member back a claim that one of its sentences supports at least that much (step 6);
    ``floor`` (``None``: off) also keeps a claim below the quorum that has at least that
    share of the vote, backers from two sources (families, or samples with one family) and
    leads every claim that contradicts it (the lead rule of step 6); ``witnesses`` (``None``:
    off) lets one family alone keep such a claim, when none contradicts it and its backers
    count as at least that many effective witnesses (the witness rule of step 6). The
    other options are those of :func:`ensemble.consensus`; ``weights`` and ``weighting``
    only weigh the confidences. ``fuse(samples)`` is ``consensus(samples, method="fuse")``;
    the sync twin of :func:`afuse`.
    """
    rule = Rule(
        join=join, quorum=quorum, overlap=overlap, contain=contain, floor=floor, witnesses=witnesses
    )
    steps, used = _steps(
        samples, metric, families, rule, threshold, weights, weighting, prompt, alarm, calibration
    )
    return engine._sync(steps, used, "ensemble.fuse.fuse()", "`await afuse(...)`")


async def afuse(
    samples: Sequence[str | Sample],
    *,
    metric: str | Metric = "ngram",
    families: Mapping[str, str] | None = None,
    join: float = DEFAULT_JOIN,
    quorum: float = DEFAULT_QUORUM,
    overlap: float = DEFAULT_OVERLAP,
    contain: float | None = DEFAULT_CONTAIN,
    floor: float | None = DEFAULT_FLOOR,
    witnesses: float | None = DEFAULT_WITNESSES,
    threshold: float | None = None,
    weights: Sequence[float] | None = None,
    weighting: Literal["sample", "model"] = "model",
    prompt: str | None = None,
    alarm: UniformityAlarm | None = DEFAULT_ALARM,
    calibration: Calibrator | str | Path | None = None,
) -> Consensus:
    """:func:`fuse` from async code (see :func:`ensemble.aconsensus`)."""
    rule = Rule(
        join=join, quorum=quorum, overlap=overlap, contain=contain, floor=floor, witnesses=witnesses
    )
    steps, used = _steps(
        samples, metric, families, rule, threshold, weights, weighting, prompt, alarm, calibration
    )
    return await engine._adrive(steps, used)


def fuse_steps(vote: engine._Vote, rule: Rule) -> engine._Steps:
    """The fusion rule as the engine's steps (asks for segmentations, agreement matrices and
    scores; :mod:`ensemble.engine` drives them sync or async)."""
    all_samples = vote.samples
    metric_obj = vote.metric
    if metric_obj.granularity != "sentence":
        raise InvalidInputError(
            f"method='fuse' needs a sentence-level metric; {metric_obj.name!r} scores "
            f"{metric_obj.granularity}s"
        )
    voters = engine._evidence(all_samples)  # failures and empty answers never vote
    if not voters:
        # Nothing to fuse (every sample failed or is empty): what select gives.
        selected: Consensus = yield from engine._select_steps(vote)
        return selected.model_copy(update={"method": "fuse"})
    if len(voters) == 1:
        # Nothing to fuse: that sample, scored as select scores its candidate (here with no
        # other voter, so with no evidence).
        (cand,) = voters
        text = all_samples[cand].text or ""
        offsets: engine.Offsets = yield engine._Segment(text)
        single: Consensus = yield from engine._scored_steps(
            vote,
            text,
            offsets,
            evidence=[],
            candidate=cand,
            agreement=engine._full_agreement(np.ones((1, 1)), voters, len(all_samples)),
        )
        return single.model_copy(update={"method": "fuse"})

    vote_of, family_of = _vote_weights(vote, voters)
    sents: list[_Sentence] = []
    for i in voters:
        unwrapped = unwrap(all_samples[i].text or "")
        segments: engine.Offsets = yield engine._Segment(unwrapped)
        sents.extend(_sentences(i, unwrapped, segments))
    distinct = sorted({s.text for s in sents})
    uid = {t: k for k, t in enumerate(distinct)}
    for s in sents:
        s.uid = uid[s.text]
    matrix: FloatArray = yield engine._Agreement(distinct)
    a_u = np.clip(np.asarray(matrix, dtype=np.float64), 0.0, 1.0)
    a_u = np.nan_to_num(a_u, nan=0.0)
    idx = np.array([s.uid for s in sents], dtype=np.intp)
    agree = a_u[np.ix_(idx, idx)]
    sym = np.minimum(agree, agree.T)
    units = [_units(t) for t in distinct]

    sample_texts = [s.text or "" for s in all_samples]
    clusters = _cluster(sents, sample_texts, sym, units, join=rule.join, overlap=rule.overlap)
    voter_matrix: FloatArray = yield engine._Agreement([all_samples[i].text or "" for i in voters])
    witnessed = _witness_counter(voters, family_of, voter_matrix, rule.witnesses)
    claims, dropped = _decide(
        all_samples,
        voters,
        vote_of,
        _sources(family_of),
        sents,
        agree,
        sym,
        units,
        clusters,
        rule,
        witnessed,
    )

    text, offsets = yield from _joined_steps([c.text for c in claims])
    scored: Consensus = yield from engine._scored_steps(
        vote,
        text,
        offsets,
        evidence=voters,
        candidate=None,
        agreement=engine._full_agreement(voter_matrix, voters, len(all_samples)),
    )
    by_start = {a: claims[n] for n, (a, _) in enumerate(offsets)}
    spans = tuple(_with_claim(span, by_start[span.start]) for span in scored.spans)
    alerts = scored.alerts
    if not claims:
        alerts = (
            *alerts,
            Alert(
                kind="no_majority",
                message=(
                    f"no claim reached the quorum ({rule.quorum:g} of the vote); the fused text "
                    "is empty and every claim is in Consensus.dropped"
                ),
                severity="warning",
            ),
        )
    return scored.model_copy(
        update={
            "spans": spans,
            "method": "fuse",
            "claims": claims,
            "dropped": dropped,
            "alerts": alerts,
        }
    )


def _decide(
    all_samples: Sequence[Sample],
    voters: Sequence[int],
    vote: Mapping[int, float],
    source: Mapping[int, str],
    sents: list[_Sentence],
    agree: FloatArray,
    sym: FloatArray,
    units: list[_Units],
    clusters: list[_Cluster],
    rule: Rule,
    witnessed: Callable[[set[int]], bool] | None,
) -> tuple[tuple[Claim, ...], tuple[DroppedClaim, ...]]:
    """Steps 6 and 7: each cluster's chosen sentence and support, then which are kept (in
    text order) and which dropped (and why)."""
    contain, overlap, quorum, floor = rule.contain, rule.overlap, rule.quorum, rule.floor
    vote_vec = np.array([vote[v] for v in voters], dtype=np.float64)
    by_sample, best_match = _sample_support(sents, agree, voters)
    mutual, _ = _sample_support(sents, sym, voters)
    for c in clusters:
        # A member's own sample is left out of its support (it trivially supports itself).
        best_key: tuple[float, str] | None = None
        for m in c.members:
            mask = np.array([v != sents[m].sample for v in voters])
            w = vote_vec[mask]
            score = float((mutual[m, mask] * w).sum() / w.sum()) if w.sum() > 0 else 0.0
            key = (-round(score, 9), sents[m].text)
            if best_key is None or key < best_key:
                best_key, c.rep = key, m
        c.position = float(statistics.median(sents[m].position for m in c.members))
        c.backers = set(c.sources)
        rep_units = units[sents[c.rep].uid]
        # A fragment of fewer than two content words ("The", "Lanka.") is contained in
        # almost any sentence: containment would back it by everyone, so it backs none.
        if contain is not None and len(rep_units.rest) >= 2:
            for k, v in enumerate(voters):
                b = int(best_match[c.rep, k])
                if (
                    v not in c.backers
                    and b >= 0
                    and by_sample[c.rep, k] >= contain - 1e-9
                    and not _contradict(rep_units, units[sents[b].uid], overlap)
                ):
                    c.backers.add(v)
        c.support = min(1.0, sum(vote[i] for i in c.backers))

    # Keep from the best supported down; a contradiction of a kept claim is dropped.
    ranked = sorted(
        range(len(clusters)),
        key=lambda k: (
            -round(clusters[k].support, 9),
            -len(clusters[k].members),
            sents[clusters[k].rep].text,
        ),
    )
    kept: list[int] = []
    reasons: dict[int, tuple[Literal["minority", "conflict", "redundant"], int | None]] = {}
    rivals = _Rivals(clusters, sents, units, overlap)

    def rival_of(k: int) -> int | None:
        return next((j for j in kept if rivals.pair(j, k)), None)

    for k in ranked:
        c = clusters[k]
        rival = rival_of(k)
        if c.support + 1e-9 < quorum and not (
            floor is not None
            and _leads(k, clusters, sents, units, source, floor, rivals, witnessed)
        ):
            reasons[k] = ("minority", rival)
        elif rival is not None:
            reasons[k] = ("conflict", rival)
        elif (twin := _repeats(c, kept, clusters, agree, contain)) is not None:
            reasons[k] = ("redundant", twin)
        else:
            kept.append(k)
    for k, (why, _) in reasons.items():
        if why == "minority":  # the lead rule may have kept a rival visited after it
            reasons[k] = (why, rival_of(k))
    kept.sort(key=lambda k: (clusters[k].position, sents[clusters[k].rep].text))

    # Claim ids: kept claims in text order, then the dropped ones by decreasing support.
    ids = {k: n for n, k in enumerate(kept)}
    for k in ranked:
        if k not in ids:
            ids[k] = len(ids)

    def models_of(sources: set[int]) -> tuple[str, ...]:
        return tuple(sorted({m for i in sources if (m := all_samples[i].model) is not None}))

    def fields(k: int) -> dict[str, object]:
        c = clusters[k]
        return {
            "cluster": ids[k],
            "text": sents[c.rep].text,
            "support": c.support,
            "sources": tuple(sorted(c.sources)),
            "backers": tuple(sorted(c.backers)),
            "models": models_of(c.sources),
            "position": min(1.0, max(0.0, c.position)),
            "members": len(c.members),
        }

    claims = tuple(Claim.model_validate(fields(k)) for k in kept)
    dropped = tuple(
        DroppedClaim.model_validate(
            {
                **fields(k),
                "reason": reasons[k][0],
                "conflicts_with": _rival_id(reasons[k][1], ids),
            }
        )
        for k in sorted(reasons, key=lambda k: ids[k])
    )
    return claims, dropped


class _Rivals:
    """Which clusters contradict which (by their chosen sentences), worked out on demand and
    remembered: the lead rule asks for all of one cluster's rivals (only for the few clusters
    that reach the floor), step 7 for one cluster against the kept ones. Checking every pair
    up front would cost ``C**2 / 2`` checks where most clusters are single sentences."""

    def __init__(
        self,
        clusters: Sequence[_Cluster],
        sents: Sequence[_Sentence],
        units: Sequence[_Units],
        overlap: float,
    ) -> None:
        self._reps = [units[sents[c.rep].uid] for c in clusters]
        self._overlap = overlap
        self._pairs: dict[tuple[int, int], bool] = {}
        self._of: dict[int, tuple[int, ...]] = {}

    def pair(self, a: int, b: int) -> bool:
        key = (a, b) if a < b else (b, a)
        hit = self._pairs.get(key)
        if hit is None:
            hit = _contradict(self._reps[a], self._reps[b], self._overlap)
            self._pairs[key] = hit
        return hit

    def of(self, k: int) -> tuple[int, ...]:
        hit = self._of.get(k)
        if hit is None:
            hit = tuple(j for j in range(len(self._reps)) if j != k and self.pair(j, k))
            self._of[k] = hit
        return hit


def _leads(
    k: int,
    clusters: Sequence[_Cluster],
    sents: Sequence[_Sentence],
    units: Sequence[_Units],
    source: Mapping[int, str],
    floor: float,
    rivals: _Rivals,
    witnessed: Callable[[set[int]], bool] | None,
) -> bool:
    """The lead rule: whether cluster ``k`` has at least ``floor`` of the vote, backers from
    two sources or more (``source``: families, or samples when there is one family), and
    leads its point: against every cluster that contradicts it, it has backers from more
    sources, or from as many and more support. A sentence of one content word is a bare
    value whose point the contradiction rule cannot see, so only the quorum keeps it. With
    ``witnessed`` (the witness rule), a claim of one source is kept when nothing contradicts
    it and ``witnessed`` says its backers count as enough effective witnesses."""
    c = clusters[k]
    mine = len({source[i] for i in c.backers})
    rep_units = units[sents[c.rep].uid]
    if c.support + 1e-9 < floor or len(rep_units.rest) < 2:
        return False  # a bare value ("Lyon") does not say which point it is on
    if mine < 2:
        # One source: kept only when its backers are independent enough to count as
        # ``witnesses`` witnesses or more and no other claim contradicts it at all.
        if witnessed is None or not witnessed(c.backers):
            return False
        return not rivals.of(k)
    for j in rivals.of(k):
        other = clusters[j]
        theirs = len({source[i] for i in other.backers})
        if theirs > mine or (theirs == mine and other.support + 1e-9 >= c.support):
            return False
    return True


def _witness_counter(
    voters: Sequence[int],
    family: Mapping[int, str],
    matrix: FloatArray,
    witnesses: float | None,
) -> Callable[[set[int]], bool] | None:
    """With ``witnesses`` and voters from two families or more: a function telling whether a
    set of backers of one family counts as at least ``witnesses`` *effective* witnesses,
    ``k / (1 + (k - 1) * rho)`` for ``k`` backers, ``rho`` the family's mean mutual agreement
    between two of its samples (whole answers, ``matrix`` being the metric's agreement of the
    voters): five near-copies count as about one witness, five unrelated samples as five.
    ``None`` when the rule is off (the lead rule then needs two sources)."""
    fams = list(family.values())
    if witnesses is None or len(set(fams)) < 2 or all(fams.count(f) < 2 for f in fams):
        return None
    m = np.nan_to_num(np.clip(np.asarray(matrix, dtype=np.float64), 0.0, 1.0), nan=0.0)
    mutual = np.minimum(m, m.T)
    col = {v: k for k, v in enumerate(voters)}
    rho: dict[str, float] = {}
    for fam in sorted(set(family.values())):
        idx = [col[v] for v in voters if family[v] == fam]
        n = len(idx)
        pairs = mutual[np.ix_(idx, idx)]
        # One sample alone: no evidence of independence, so it counts as one copy of itself.
        rho[fam] = float((pairs.sum() - np.trace(pairs)) / (n * (n - 1))) if n > 1 else 1.0

    def enough(backers: set[int]) -> bool:  # the backers of one family (the lead rule's case)
        k = len(backers)
        r = rho[family[next(iter(backers))]]
        return k / (1.0 + (k - 1) * r) + 1e-9 >= witnesses

    return enough


def _repeats(
    c: _Cluster,
    kept: Sequence[int],
    clusters: Sequence[_Cluster],
    agree: FloatArray,
    contain: float | None,
) -> int | None:
    """With ``contain``: the first kept cluster whose sentence contains ``c``'s or is
    contained in it (one of them supports the other at least ``contain``)."""
    if contain is None:
        return None
    for j in kept:
        r = clusters[j].rep
        if max(agree[c.rep, r], agree[r, c.rep]) >= contain - 1e-9:
            return j
    return None


def _rival_id(rival: int | None, ids: Mapping[int, int]) -> int | None:
    return None if rival is None else ids[rival]


def _with_claim(span: Span, claim: Claim) -> Span:
    return span.model_copy(
        update={"cluster": claim.cluster, "sources": claim.sources, "source_models": claim.models}
    )


def _joined_steps(
    parts: Sequence[str],
) -> Generator[engine._Segment, Any, tuple[str, list[tuple[int, int]]]]:
    """The parts joined with spaces (or line breaks, when spaces would merge two of them in
    the metric's segmentation), and each part's offsets."""
    for sep in (" ", "\n"):
        text, offsets = engine._join_sentences(parts, sep)
        segmented: engine.Offsets = yield engine._Segment(text)
        if list(segmented) == offsets:
            break
    return text, offsets

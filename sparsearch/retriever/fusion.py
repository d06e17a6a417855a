"""Rank fusion: combine the rankings several retrievers give one query into one ranking.

Two families (the project's methods notes, "Fusion and pseudo-relevance feedback"):

* **Normalised score interpolation** — ``s(d) = Σ_i w_i · norm_i(s_i(d))``; with two
  rankings ``w = (α, 1 − α)``, the usual sparse + dense hybrid.  Scores of
  different models live on unrelated scales (BM25 is unbounded, a cosine lies in
  [−1, 1]), so each ranking is normalised *per query over its own candidates*
  before mixing: min-max, ``(s − min)/(max − min)``, or z-score,
  ``(s − mean)/std``.  Li et al. 2022 ("To Interpolate or not to Interpolate:
  PRF, Dense and Sparse Retrievers", SIGIR) find interpolating both before and
  after pseudo-relevance feedback (:mod:`sparsearch.retriever.prf`) works best;
  these functions are the interpolation step of either place.
* **Reciprocal rank fusion** (Cormack, Clarke & Büttcher 2009, "Reciprocal Rank
  Fusion outperforms Condorcet and individual Rank Learning Methods", SIGIR) —
  ``s(d) = Σ_i w_i / (k + rank_i(d))`` with ranks from 1 and ``k = 60``: it uses
  ranks only, so it needs no normalisation and is robust to score outliers.

Conventions that change results, fixed here and tested:

* **A document missing from a ranking** (outside its depth, or never retrieved)
  gets that ranking's *minimum normalised value*: 0 under min-max, the ranking's
  smallest z under z-score, and nothing (0) under RRF.  It is scored as if it
  tied the worst candidate the ranking did return — the most favourable value
  consistent with "it was not retrieved", and the one that keeps a document that
  only one retriever found from being pushed below documents with negative z.
  Treating missing as z = 0 (the mean) instead would *reward* absence relative to
  below-average candidates; we do not.
* **A constant ranking** (one candidate, or all scores equal): min-max maps every
  candidate to 1.0 (missing documents still get 0), so membership still counts;
  z-score has no spread to standardise by and maps candidates — and so, by the
  rule above, missing documents — to 0, i.e. the ranking says nothing.  Use
  min-max or RRF where a one-document ranking should still vote.
* **An empty ranking** contributes 0 to every document (it shifts nothing).
* **Order of a ranking**: a :class:`Hits` is taken in its own order (the
  engine's, ties included); a ``Mapping`` is sorted by score, descending, ties in
  the mapping's order.  A repeated id keeps its first position.
* **Ties in the fused score** are broken by first appearance: scanning the
  rankings in the order given, each in rank order — so the first ranking acts
  as the tie-breaker, deterministically, with no dependence on id strings.

Scores are accumulated in float64 and returned as float32 (the :class:`Hits`
convention); the order is decided on the float64 values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence, Union

import numpy as np

from sparsearch.types import Hits

FusionMethod = Literal["minmax", "zscore", "rrf"]
Ranking = Union[Hits, Mapping[str, float]]

_METHODS = ("minmax", "zscore", "rrf")


@dataclass(frozen=True)
class FusionConfig:
    """How to fuse.

    ``method``: ``"minmax"`` or ``"zscore"`` (normalised interpolation) or ``"rrf"``.
    Weights, in order of precedence:

    * ``weights``: one non-negative weight per ranking, for any number of rankings;
    * ``alpha``: with exactly two rankings, the first gets ``alpha`` and the second
      ``1 − alpha`` (``alpha = 1``: the first ranking alone, re-scored);
    * neither: interpolation averages (``1/n`` each), RRF sums (1 each, Cormack et
      al.'s unweighted form — so the default RRF scores are the published ones).

    ``rrf_k``: RRF's rank offset (60 in Cormack et al.; larger flattens the
    advantage of the top ranks).  ``depth``: only the first ``depth`` entries
    of every ranking take part (normalisation statistics included), as fusing
    runs cut to the same depth; ``None`` keeps them all.
    """

    method: FusionMethod = "minmax"
    alpha: float | None = None
    weights: tuple[float, ...] | None = None
    rrf_k: float = 60.0
    depth: int | None = None

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"unknown fusion method {self.method!r} (expected one of {', '.join(_METHODS)})")
        if self.alpha is not None and not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha}")
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
            if any(not math.isfinite(w) or w < 0 for w in self.weights):  # type: ignore[union-attr]
                raise ValueError(f"weights must be finite and non-negative, got {self.weights}")
        if not math.isfinite(self.rrf_k) or self.rrf_k < 0:
            raise ValueError(f"rrf_k must be a finite number >= 0, got {self.rrf_k}")
        if self.depth is not None and self.depth < 1:
            raise ValueError(f"depth must be at least 1, got {self.depth}")

    def weights_for(self, n: int) -> tuple[float, ...]:
        """The weight of each of ``n`` rankings under the precedence above."""
        if self.weights is not None:
            if len(self.weights) != n:
                raise ValueError(f"{len(self.weights)} weights given for {n} rankings")
            return self.weights
        if self.alpha is not None:
            if n != 2:
                raise ValueError(f"alpha weighs exactly two rankings, got {n}; give weights= instead")
            return (self.alpha, 1.0 - self.alpha)
        if self.method == "rrf":
            return (1.0,) * n
        return (1.0 / n,) * n if n else ()


def ranked_items(ranking: Ranking, depth: int | None = None) -> tuple[list[str], np.ndarray]:
    """A ranking's ids in rank order and their scores (float64), repeats dropped, cut to ``depth``.

    A :class:`Hits` keeps its own order; a mapping is sorted by score
    (descending), ties in the mapping's order (Python's sort is stable).
    """
    if isinstance(ranking, Hits):
        pairs = list(zip(ranking.ids, np.asarray(ranking.scores, np.float64).tolist()))
    else:
        pairs = sorted(((str(d), float(s)) for d, s in ranking.items()), key=lambda p: -p[1])
    seen: set[str] = set()
    ids: list[str] = []
    scores: list[float] = []
    for doc_id, score in pairs:
        if doc_id in seen:
            continue
        if math.isnan(score):
            raise ValueError(f"document {doc_id!r} has a NaN score")
        seen.add(doc_id)
        ids.append(doc_id)
        scores.append(score)
        if depth is not None and len(ids) == depth:
            break
    return ids, np.asarray(scores, np.float64)


def minmax_normalize(scores: np.ndarray) -> tuple[np.ndarray, float]:
    """``(s − min)/(max − min)`` and the value a missing document gets (0).

    A constant list (including one score) maps to all 1.0: every candidate
    was retrieved at the top of its ranking, and 1 keeps that distinguishable
    from absence (0).
    """
    if len(scores) == 0:
        return scores.astype(np.float64), 0.0
    lo, hi = float(scores.min()), float(scores.max())
    if not hi > lo:
        return np.ones(len(scores), np.float64), 0.0
    return (scores - lo) / (hi - lo), 0.0


def zscore_normalize(scores: np.ndarray) -> tuple[np.ndarray, float]:
    """``(s − mean)/std`` (population std, ``ddof=0``) and the value a missing document gets (the minimum z).

    ``std = 0`` (a constant list) gives all zeros: there is no spread to
    measure a candidate against, so the ranking carries no information.
    """
    if len(scores) == 0:
        return scores.astype(np.float64), 0.0
    std = float(scores.std())
    if not std > 0.0:
        return np.zeros(len(scores), np.float64), 0.0
    z = (scores - float(scores.mean())) / std
    return z, float(z.min())


def fuse(rankings: Sequence[Ranking], config: FusionConfig = FusionConfig(), k: int | None = None) -> Hits:
    """Fuse one query's rankings into one (best first); ``k`` keeps the top ``k`` (``None``: every candidate).

    Every document any ranking returned (within ``config.depth``) is a
    candidate (one from a ranking of weight 0 too, scored by the others);
    see the module docstring for missing documents and ties.
    """
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    weights = config.weights_for(len(rankings))
    position: dict[str, int] = {}  # candidate id -> index in first-appearance order
    order: list[str] = []
    per_ranking: list[tuple[np.ndarray, np.ndarray, float]] = []  # (candidate indices, values, missing value)
    for ranking in rankings:
        ids, scores = ranked_items(ranking, config.depth)
        idx = np.empty(len(ids), np.int64)
        for j, doc_id in enumerate(ids):
            i = position.get(doc_id)
            if i is None:
                i = position[doc_id] = len(order)
                order.append(doc_id)
            idx[j] = i
        if config.method == "rrf":
            values, missing = 1.0 / (config.rrf_k + np.arange(1, len(ids) + 1, dtype=np.float64)), 0.0
        elif config.method == "minmax":
            values, missing = minmax_normalize(scores)
        else:
            values, missing = zscore_normalize(scores)
        per_ranking.append((idx, values, missing))

    fused = np.zeros(len(order), np.float64)
    for (idx, values, missing), w in zip(per_ranking, weights):
        if w == 0.0:
            continue
        contribution = np.full(len(order), missing, np.float64)
        contribution[idx] = values
        fused += w * contribution
    # Stable sort on −score: equal scores keep first-appearance order.
    ranked = np.argsort(-fused, kind="stable")
    if k is not None:
        ranked = ranked[:k]
    return Hits([order[i] for i in ranked.tolist()], fused[ranked].astype(np.float32))


def fuse_batch(systems: Sequence[Sequence[Ranking]], config: FusionConfig = FusionConfig(),
               k: int | None = None) -> list[Hits]:
    """Fuse many queries: ``systems[i][q]`` is system ``i``'s ranking for query ``q`` (every system, same queries).

    The shape :meth:`Retriever.search_batch` returns, one list per retriever.
    """
    if not systems:
        return []
    n = len(systems[0])
    for i, s in enumerate(systems):
        if len(s) != n:
            raise ValueError(f"system {i} has {len(s)} rankings, system 0 has {n}: every system must answer "
                             "the same queries")
    return [fuse([s[q] for s in systems], config, k) for q in range(n)]


def fuse_runs(runs: Sequence[Mapping[str, Ranking]], config: FusionConfig = FusionConfig(),
              k: int | None = None) -> dict[str, Hits]:
    """Fuse runs keyed by query id (``{qid: ranking}``); a query a run lacks is an empty ranking there.

    Query ids come out in first-appearance order over the runs.
    """
    qids = list(dict.fromkeys(q for run in runs for q in run))
    empty: dict[str, float] = {}
    return {q: fuse([run.get(q, empty) for run in runs], config, k) for q in qids}

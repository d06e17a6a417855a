"""Each training query's candidate pool: positives, mined hard negatives, and every teacher's score for them.

A batch draws a query's positive and negatives from its pool and reads the
teachers' scores of exactly those documents, so the pool stores, per query,
the sorted candidate rows and one aligned score array per teacher.  Memory
is ``queries × (positives + miners × depth)`` — independent of corpus size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from sparsearch.training.scorers import PairScorer


@dataclass
class CandidatePools:
    offsets: np.ndarray  # int64 [queries + 1]
    rows: np.ndarray  # int64: document rows, sorted within each query's span
    scores: dict[str, np.ndarray]  # teacher -> float32 aligned with ``rows``

    @property
    def teachers(self) -> tuple[str, ...]:
        return tuple(sorted(self.scores))

    def candidates(self, query: int) -> np.ndarray:
        return self.rows[self.offsets[query]:self.offsets[query + 1]]

    def lookup(self, teacher: str, query: int, docs: Sequence[int] | np.ndarray) -> np.ndarray:
        """The teacher's scores of ``docs`` (all in the query's pool) for ``query``."""
        lo, hi = int(self.offsets[query]), int(self.offsets[query + 1])
        docs = np.asarray(docs, np.int64)
        pos = lo + np.searchsorted(self.rows[lo:hi], docs)
        if len(docs) and (pos.max() >= hi or not np.array_equal(self.rows[pos], docs)):
            raise KeyError(f"documents {docs.tolist()} are not all in query {query}'s candidate pool")
        return self.scores[teacher][pos]

    def keep(self, teachers: Sequence[str]) -> "CandidatePools":
        return CandidatePools(self.offsets, self.rows, {t: self.scores[t] for t in teachers})


def mine_pools(scorers: Mapping[str, PairScorer], positives: Sequence[np.ndarray], depth: int,
               miners: Sequence[str] = ("bm25", "dense"), keep: Sequence[str] | None = None,
               min_negatives: int = 0, n_docs: int | None = None, seed: int = 0
               ) -> tuple[CandidatePools, list[np.ndarray]]:
    """Pools = positives ∪ each miner's top ``depth``; returns them and each query's negatives (pool − positives).

    Every scorer in ``scorers`` scores every pool member exactly; ``keep`` limits which scores are stored
    (a miner need not be a teacher).  A query whose miners found fewer than ``min_negatives``
    negatives (a corpus smaller than a batch group) gets random other documents of the ``n_docs``, seeded.
    """
    rng = np.random.default_rng(seed)
    tops = [scorers[m].top(depth) for m in miners if m in scorers]
    pools, negatives = [], []
    for qi, pos in enumerate(positives):
        pos = np.unique(np.asarray(pos, np.int64))
        mined = np.unique(np.concatenate([t[qi] for t in tops])) if tops else np.zeros(0, np.int64)
        negs = np.setdiff1d(mined, pos)
        if len(negs) < min_negatives and n_docs:
            others = np.setdiff1d(np.arange(n_docs), np.union1d(pos, negs))
            extra = rng.choice(others, size=min(len(others), min_negatives - len(negs)), replace=False)
            negs = np.union1d(negs, extra)
            mined = np.union1d(mined, extra)
        negatives.append(negs)
        pools.append(np.union1d(pos, mined))
    offsets = np.zeros(len(pools) + 1, np.int64)
    np.cumsum([len(p) for p in pools], out=offsets[1:])
    rows = np.concatenate(pools) if pools else np.zeros(0, np.int64)
    query_rows = np.repeat(np.arange(len(pools)), np.diff(offsets))
    names = list(scorers) if keep is None else list(keep)
    scores = {name: scorers[name].pairs(query_rows, rows).astype(np.float32) for name in names}
    return CandidatePools(offsets, rows, scores), negatives

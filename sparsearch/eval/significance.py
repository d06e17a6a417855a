"""Paired significance of a difference between two systems' per-query scores.

A mean difference of 0.002 NDCG@10 on a thousand queries is usually noise:
whether a new model, checkpoint or setting replaces the old one should
depend on a test the field accepts, the paired t-test and the paired
randomization (sign-flip) test of Smucker, Allan & Carterette (CIKM 2007),
applied to the per-query values of the same queries (a query a system
misses counts 0, as everywhere in :mod:`sparsearch.eval.metrics`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np

from sparsearch.errors import MissingDependencyError


@dataclass(frozen=True)
class PairedComparison:
    """``b − a`` over the same queries: mean, standard error and two-sided p-values."""

    queries: int
    mean_a: float
    mean_b: float
    difference: float
    stderr: float
    t_test_p: float
    randomization_p: float
    better: int  # queries where b scores higher
    worse: int
    ties: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def paired_comparison(a: Mapping[str, float], b: Mapping[str, float], rounds: int = 20000,
                      seed: int = 13) -> PairedComparison:
    """Compare per-query values of systems ``a`` and ``b`` (the same query ids in both).

    The randomization test flips the sign of each query's difference at
    random ``rounds`` times (seeded) and counts how often the mean difference
    is at least as large in magnitude as the one observed.
    """
    if set(a) != set(b):
        missing = sorted(set(a) ^ set(b))[:3]
        raise ValueError(f"the two systems must be scored on the same queries; e.g. {missing} is in only one")
    if len(a) < 2:
        raise ValueError("a paired comparison needs at least two queries")
    try:
        from scipy import stats
    except ImportError:
        raise MissingDependencyError("the paired t-test needs scipy: pip install 'sparsearch[bench]'") from None

    qids = sorted(a)
    x = np.array([a[q] for q in qids], np.float64)
    y = np.array([b[q] for q in qids], np.float64)
    d = y - x
    observed = abs(d.mean())
    rng = np.random.default_rng(seed)
    at_least = 0
    for start in range(0, rounds, 1000):  # in slices: rounds x queries signs at once would be large
        signs = rng.choice(np.array([-1.0, 1.0]), size=(min(1000, rounds - start), len(d)))
        at_least += int(np.count_nonzero(np.abs(signs @ d) / len(d) >= observed - 1e-12))
    t_p = float(stats.ttest_rel(y, x).pvalue) if np.any(d != d[0]) else (1.0 if d[0] == 0 else 0.0)
    return PairedComparison(
        queries=len(d), mean_a=float(x.mean()), mean_b=float(y.mean()), difference=float(d.mean()),
        stderr=float(d.std(ddof=1) / np.sqrt(len(d))), t_test_p=t_p, randomization_p=at_least / rounds,
        better=int(np.count_nonzero(d > 0)), worse=int(np.count_nonzero(d < 0)),
        ties=int(np.count_nonzero(d == 0)),
    )

"""Paired significance tests against scipy and against a hand-counted exact randomization test."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from sparsearch.eval.significance import paired_comparison


def test_t_test_and_counts_agree_with_scipy() -> None:
    rng = np.random.default_rng(3)
    x = rng.random(200)
    y = np.clip(x + rng.normal(0.02, 0.1, 200), 0, 1)
    y[:20] = x[:20]  # ties
    a = {f"q{i}": v for i, v in enumerate(x)}
    b = {f"q{i}": v for i, v in enumerate(y)}
    c = paired_comparison(a, b)
    assert c.t_test_p == pytest.approx(stats.ttest_rel(y, x).pvalue, rel=1e-12)
    assert c.difference == pytest.approx((y - x).mean())
    assert c.stderr == pytest.approx(stats.sem(y - x))
    assert (c.better, c.worse, c.ties) == (int((y > x).sum()), int((y < x).sum()), int((y == x).sum()))


def test_randomization_p_approaches_the_exact_sign_flip_p() -> None:
    # 10 queries: all 1,024 sign patterns can be counted by hand
    d = np.array([0.3, 0.1, 0.2, -0.05, 0.4, 0.0, 0.15, -0.1, 0.25, 0.05])
    exact = np.mean([abs(np.dot(s, d)) >= abs(d.sum()) - 1e-12
                     for s in itertools.product([-1.0, 1.0], repeat=len(d))])
    a = {str(i): 0.5 for i in range(10)}
    b = {str(i): 0.5 + v for i, v in enumerate(d)}
    assert paired_comparison(a, b, rounds=200000).randomization_p == pytest.approx(exact, abs=0.003)


def test_identical_systems_are_not_different() -> None:
    a = {"1": 0.2, "2": 0.7, "3": 0.4}
    c = paired_comparison(a, dict(a))
    assert c.difference == 0 and c.randomization_p == 1.0 and c.t_test_p == 1.0 and c.ties == 3


def test_the_two_systems_must_share_their_queries() -> None:
    with pytest.raises(ValueError, match="same queries"):
        paired_comparison({"1": 0.1, "2": 0.2}, {"1": 0.1, "3": 0.2})

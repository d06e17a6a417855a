"""Latency helpers: each query's fastest round, systems timed side by side."""

from __future__ import annotations

import numpy as np
import pytest

import sparsearch.eval.bench as bench


class FakeClock:
    """perf_counter that only moves when a fake search spends time."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_paired_latencies_take_each_querys_fastest_round(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(bench, "time", clock)
    calls: list[str] = []
    # Per-query cost in ms of each timed pass (a system's first call is the untimed warm-up).
    costs = {"a": [[3.0, 1.0, 2.0], [1.0, 5.0, 2.0]], "b": [[4.0, 4.0, 4.0], [2.0, 8.0, 1.0]]}

    def searcher(name: str):  # type: ignore[no-untyped-def]
        def search(q: str, k: int) -> None:
            n = calls.count(name)
            calls.append(name)
            if n > 0:
                clock.now += costs[name][(n - 1) // 3][int(q[1])] / 1e3
        return search

    out = bench.paired_latencies_ms({"a": searcher("a"), "b": searcher("b")}, ["q0", "q1", "q2"], [10], rounds=2)
    best_a, best_b = np.array([1.0, 1.0, 2.0]), np.array([2.0, 4.0, 1.0])
    assert out["a"]["10"]["mean"] == pytest.approx(best_a.mean())
    assert out["a"]["10"]["p50"] == pytest.approx(np.percentile(best_a, 50))
    assert out["b"]["10"]["p99"] == pytest.approx(np.percentile(best_b, 99))
    # Rounds interleave the systems: a's first timed pass, then b's, then a's second pass.
    timed = calls[2:]
    assert timed == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3

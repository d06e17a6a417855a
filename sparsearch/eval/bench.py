"""Timing helpers for reports: throughput, latency percentiles, memory.

Throughput and latency are measured end to end from query text (encoding
included) after one untimed warm-up, so one-off costs (JIT loading, page
faults on a cold memory map) are not billed to every query.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


@dataclass
class SpeedReport:
    qps_1_thread: float
    qps_all_threads: float
    latency_ms: dict[str, float]
    threads: int


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def throughput(run_batch: Callable[[], object], n_queries: int, repeats: int = 3) -> float:
    """Queries per second of the median of ``repeats`` timed passes (after one warm-up pass)."""
    run_batch()
    seconds = []
    for _ in range(repeats):
        t = time.perf_counter()
        run_batch()
        seconds.append(time.perf_counter() - t)
    median = float(np.median(seconds))
    return n_queries / median if median > 0 else float("inf")


def latencies_ms(search_one: Callable[[str], object], queries: Sequence[str]) -> dict[str, float]:
    """p50 / p99 / mean of single-query latency over every query, in milliseconds."""
    if not queries:
        return {"p50": 0.0, "p99": 0.0, "mean": 0.0}
    search_one(queries[0])
    times = np.empty(len(queries))
    for i, q in enumerate(queries):
        t = time.perf_counter()
        search_one(q)
        times[i] = time.perf_counter() - t
    return _summary_ms(times)


def _summary_ms(seconds: np.ndarray) -> dict[str, float]:
    """p50 / p99 / mean of per-query times given in seconds, in milliseconds."""
    ms = seconds * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean())}


def paired_latencies_ms(searchers: dict[str, Callable[[str, int], object]], queries: Sequence[str],
                        ks: Sequence[int], rounds: int = 3) -> dict[str, dict[str, dict[str, float]]]:
    """Single-query latency of several systems measured side by side, for comparing them.

    A ratio between two systems timed minutes apart mostly measures what else
    the machine was doing in between.  Here every round times each system at
    each ``k`` in turn over all queries, and a query's latency is its fastest
    of ``rounds`` (noise only ever adds time), so both sides of a ratio see
    the same machine.  Returns ``{system: {str(k): {p50, p99, mean}}}`` in ms.
    """
    if not queries:
        return {name: {str(k): {"p50": 0.0, "p99": 0.0, "mean": 0.0} for k in ks} for name in searchers}
    best = {(name, k): np.full(len(queries), np.inf) for name in searchers for k in ks}
    for name, search in searchers.items():
        for k in ks:
            search(queries[0], k)
    for _ in range(rounds):
        for k in ks:
            for name, search in searchers.items():
                times = best[name, k]
                for i, q in enumerate(queries):
                    t = time.perf_counter()
                    search(q, k)
                    times[i] = min(times[i], time.perf_counter() - t)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (name, k), times in best.items():
        out.setdefault(name, {})[str(k)] = _summary_ms(times)
    return out

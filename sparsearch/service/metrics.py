"""Prometheus text exposition: request counts, latency histograms, documents and segments.

Written by hand (about 40 lines) rather than pulling in ``prometheus_client``:
the service needs two metric families and one gauge set, and no global
registry shared between test apps.
"""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Any other method a client sends is counted as "other": one label value per request method
# would let a client grow the exposition without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def escape_label(value: object) -> str:
    """A label value in the Prometheus text format: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count: dict[tuple[str, str, int], int] = defaultdict(int)
        self._hist: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self._sum: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        with self._lock:
            self._count[(method, route, status)] += 1
            counts = self._hist[(method, route)]
            i = next((i for i, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))
            counts[i] += 1
            self._sum[(method, route)] += seconds

    def render(self, collections: dict[str, tuple[int, int]], unavailable: int = 0) -> str:
        """The exposition; ``collections``: (documents, segments) of each collection whose numbers are known."""
        out = ["# HELP sparsearch_requests_total HTTP requests by method, route and status.",
               "# TYPE sparsearch_requests_total counter"]
        with self._lock:
            for (method, route, status), n in sorted(self._count.items()):
                out.append(f'sparsearch_requests_total{{method="{escape_label(method)}",route="{escape_label(route)}",'
                           f'status="{status}"}} {n}')
            out += ["# HELP sparsearch_request_seconds Request latency.", "# TYPE sparsearch_request_seconds histogram"]
            for (method, route), counts in sorted(self._hist.items()):
                labels = f'method="{escape_label(method)}",route="{escape_label(route)}"'
                cumulative = 0
                for bound, n in zip(BUCKETS, counts):
                    cumulative += n
                    out.append(f'sparsearch_request_seconds_bucket{{{labels},le="{bound}"}} {cumulative}')
                cumulative += counts[-1]
                out.append(f'sparsearch_request_seconds_bucket{{{labels},le="+Inf"}} {cumulative}')
                out.append(f"sparsearch_request_seconds_sum{{{labels}}} {self._sum[(method, route)]:.6f}")
                out.append(f"sparsearch_request_seconds_count{{{labels}}} {cumulative}")
        out += ["# HELP sparsearch_documents Live documents per collection.", "# TYPE sparsearch_documents gauge"]
        out += [f'sparsearch_documents{{collection="{escape_label(c)}"}} {docs}'
                for c, (docs, _) in sorted(collections.items())]
        out += ["# HELP sparsearch_segments Searchable segments per collection.", "# TYPE sparsearch_segments gauge"]
        out += [f'sparsearch_segments{{collection="{escape_label(c)}"}} {segs}'
                for c, (_, segs) in sorted(collections.items())]
        out += ["# HELP sparsearch_collections_unavailable Collections that failed to open (see /healthz).",
                "# TYPE sparsearch_collections_unavailable gauge", f"sparsearch_collections_unavailable {unavailable}"]
        return "\n".join(out) + "\n"

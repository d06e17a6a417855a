"""Evaluate an index on a BEIR split and write the JSON report the CLI and benchmarks share."""

from __future__ import annotations

import logging
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba

from sparsearch.retriever.retriever import Retriever
from sparsearch.eval.bench import latencies_ms, peak_rss_bytes, throughput
from sparsearch.eval.datasets import load_beir
from sparsearch.errors import InputError
from sparsearch.eval.metrics import evaluate, judgement_warnings
from sparsearch.eval.runs import ranking_run, trec_id_problem, write_trec
from sparsearch.index.config import IndexConfig
from sparsearch.index.storage import directory_bytes
from sparsearch.protocols import SparseEncoder
from sparsearch.types import SparseBatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSettings:
    """What to evaluate; ``k`` above the number of indexed documents is clamped to it (top-k of all)."""

    split: str = "test"
    k: int = 1000
    measure_speed: bool = True
    run_tag: str = "sparsearch"


class TimedEncoder:
    """Delegates to an encoder and counts the seconds and documents spent in document encoding.

    Lets the report give ``encode_docs_per_second`` for the model alone,
    apart from inversion and disk writes that ``build_seconds`` includes.
    Every protocol member is spelled out rather than forwarded by
    ``__getattr__``: from Python 3.12, ``isinstance`` against a runtime
    protocol looks members up statically, so a forwarding-only wrapper of a
    sparse encoder was taken for a dense one (and its build failed).  Use
    :func:`timing_wrapper` to get the wrapper that matches the encoder's kind.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.seconds = 0.0
        self.documents = 0
        if hasattr(inner, "encode_document_stream"):
            self.encode_document_stream = self._stream

    def __getattr__(self, name: str) -> Any:  # members outside the protocols (model_dir, tokenizer, ...)
        return getattr(self._inner, name)

    @property
    def name(self) -> str:
        return self._inner.name

    def encode_queries(self, queries, stats=None):  # type: ignore[no-untyped-def]
        return self._inner.encode_queries(queries, stats)

    def config(self) -> dict[str, Any]:
        return self._inner.config()

    def state_files(self) -> dict[str, bytes]:
        return self._inner.state_files()

    def encode_documents(self, documents):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        out = self._inner.encode_documents(documents)
        self.seconds += time.perf_counter() - t
        self.documents += len(documents)
        return out

    def _stream(self, chunks, workers):  # type: ignore[no-untyped-def]
        it = self._inner.encode_document_stream(chunks, workers)
        while True:
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                self.seconds += time.perf_counter() - t
                return
            self.seconds += time.perf_counter() - t
            self.documents += len(batch)
            yield batch


class TimedSparseEncoder(TimedEncoder):
    """:class:`TimedEncoder` of a sparse encoder: also a :class:`SparseEncoder` to ``isinstance``."""

    @property
    def scoring(self) -> Any:
        return self._inner.scoring

    @property
    def n_terms(self) -> int:
        return self._inner.n_terms  # read live: a BM25 vocabulary grows while documents are encoded

    def load(self, config: dict[str, Any], files: dict[str, Path]) -> Any:
        return type(self._inner).load(config, files)


def timing_wrapper(encoder: Any) -> TimedEncoder:
    """The timing wrapper that passes the same protocol checks as ``encoder``."""
    return TimedSparseEncoder(encoder) if isinstance(encoder, SparseEncoder) else TimedEncoder(encoder)


def postings_touched(index: Retriever, queries: SparseBatch) -> float:
    """Mean over queries of Σ df(t) over the query's terms: the postings an exhaustive search reads."""
    df = index.snapshot.stats.doc_freq
    ids = queries.term_ids[queries.term_ids < len(df)]
    return float(df[ids].sum()) / max(len(queries), 1)


def effective_k(k: int, n_docs: int) -> int:
    """``k`` clamped to the documents there are: top-k of fewer than k documents is all of them.

    The search allocates ``queries × k`` result slots, so an unclamped
    ``k = 10**12`` fails with a MemoryError instead of returning everything.
    ``k < 1`` is an :class:`InputError`.
    """
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    return min(int(k), max(int(n_docs), 1))


def check_run_ids(query_ids: list[str], run_path: str | Path | None) -> None:
    """Refuse query ids a TREC run cannot hold, before any build (document ids are checked when writing)."""
    if run_path is None:
        return
    for qid in query_ids:
        problem = trec_id_problem(qid)
        if problem is not None:
            raise InputError(f"query id {qid!r} {problem}: a TREC run file (whitespace-separated columns) "
                             "cannot hold it; evaluate without --run", path=run_path)


def evaluate_beir(
    dataset_dir: str | Path,
    index_dir: str | Path | None = None,
    encoder: SparseEncoder | None = None,
    index_config: IndexConfig | None = None,
    settings: EvalSettings = EvalSettings(),
    run_path: str | Path | None = None,
    progress: bool = False,
    log_warnings: bool = True,
    fmt: Any = None,
) -> dict[str, Any]:
    """Search every query of a split and report quality, speed and size.

    Without ``index_dir`` the index is built here (into a temporary directory,
    so ``build_seconds`` includes writing it, as a peer's build does).
    ``settings.k`` is clamped to the index's document count (the report's
    ``k`` is the value used); ``fmt`` is the segment format of that build.
    Signs of mismatched ids (no query retrieved any document its qrels
    judge; judged documents absent from the index)
    are listed in the report's ``warnings`` (with the count in
    ``qrels_docs_not_in_index``) and logged as warnings unless
    ``log_warnings`` is false (the CLI prints them itself).  A ``run_path``
    with ids a TREC file cannot hold (whitespace) raises :class:`InputError`.
    """
    effective_k(settings.k, 1)  # reject k < 1 before any work
    dataset = load_beir(dataset_dir, settings.split)
    query_ids = list(dataset.queries)
    check_run_ids(query_ids, run_path)
    texts = [dataset.queries[q] for q in query_ids]
    build_seconds = None
    timed = None
    with tempfile.TemporaryDirectory(prefix="sparsearch-eval-") as tmp:
        if index_dir is None:
            timed = timing_wrapper(encoder) if encoder is not None else None
            t = time.perf_counter()
            Retriever.build(dataset.corpus(), path=Path(tmp) / "index", encoder=timed, config=index_config,  # type: ignore[arg-type]
                            progress=progress, fmt=fmt)
            build_seconds = time.perf_counter() - t
            index_dir = Path(tmp) / "index"
        index = Retriever.open(index_dir)
        k = effective_k(settings.k, index.n_docs)
        if k < settings.k:
            log.info("k=%d is more than the %d indexed documents: searching with k=%d", settings.k, index.n_docs, k)
        results = index.search_batch(texts, k=k)
        run = ranking_run(query_ids, results)
        metrics = evaluate(dataset.qrels, run)
        if run_path is not None:
            write_trec(run_path, query_ids, results, settings.run_tag)
        report: dict[str, Any] = {
            "dataset": dataset.name,
            "split": settings.split,
            "n_queries": len(query_ids),
            "n_docs": index.n_docs,
            "k": k,
            "encoder": {"name": index.encoder.name, **index.encoder.config()},
            "metrics": metrics,
            "build_seconds": build_seconds,
            "index_bytes": directory_bytes(Path(index_dir)),
            "avg_nonzeros_per_doc": index.snapshot.n_postings / max(index.n_docs, 1),
        }
        if build_seconds is not None and timed is not None and timed.seconds > 0:
            report["encode_docs_per_second"] = timed.documents / timed.seconds
        queries = index.encode_queries(texts)
        report["avg_postings_touched_per_query"] = postings_touched(index, queries)
        report["avg_nonzeros_per_query"] = len(queries.term_ids) / max(len(texts), 1)
        if settings.measure_speed:
            threads = numba.get_num_threads()
            report["qps_1_thread"] = throughput(lambda: index.search_batch(texts, k, threads=1), len(texts))
            report["qps_all_threads"] = throughput(lambda: index.search_batch(texts, k, threads=threads),
                                                   len(texts))
            report["threads"] = threads
            report["latency_ms"] = latencies_ms(lambda q: index.search(q, k), texts)
        report["peak_rss_bytes"] = peak_rss_bytes()
        # After the peak is read: the id table this check builds is no part of serving queries.
        add_warnings(report, dataset, query_ids, results, index.live_ids(), log_warnings)
        report["environment"] = environment()
    return report


def add_warnings(report: dict[str, Any], dataset: Any, query_ids: list[str], results: list[Any],
                 live_ids: Any, log_warnings: bool) -> None:
    """Signs of mismatched ids into ``report`` (``warnings``, ``qrels_docs_not_in_index``), logged if asked."""
    warnings, n_missing = judgement_warnings(dataset.qrels, {q: h.ids for q, h in zip(query_ids, results)},
                                             live_ids)
    report["warnings"] = warnings
    report["qrels_docs_not_in_index"] = n_missing
    if log_warnings:
        for w in warnings:
            log.warning("%s %s: %s", dataset.name, report["split"], w)


def environment() -> dict[str, Any]:
    """What produced a number: commit, machine and versions, for reproducibility tables."""
    import numpy

    commit = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "commit": commit,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": numba.config.NUMBA_NUM_THREADS,
        "numpy": numpy.__version__,
        "numba": numba.__version__,
    }

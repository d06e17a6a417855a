"""``sparsearch search`` and ``sparsearch eval``: a plain index, or a hybrid collection searched by mode.

Both take the search options of :class:`~sparsearch.retriever.hybrid_options.SearchOptions`
(``--mode sparse|dense|hybrid``, ``--prf none|rm3|rocchio|both``, ``--fusion``,
``--alpha``, ``--depth``, ``--fb-docs``, ``--search-mode exact|bmp|approx`` and its
``--approx-*`` knobs), which override the defaults a
collection stored when it was built (``sparsearch index ... --dense-model``).
A plain index keeps its behaviour when none is given, and a mode it lacks is
one line naming what it holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from sparsearch.cli_common import (
    B, BATCH_SIZE, DENSE_INDEX, DENSE_MODEL, DEVICE, DOC_THRESHOLD, DOC_TOP_K, IDF, K1, MAX_LENGTH, MODEL, _encoder,
    _fail, _given, dense_format)
from sparsearch.errors import SparsearchError

MODE = typer.Option(None, "--mode", help="sparse, dense or hybrid (fused). Default: the index's own (hybrid for "
                    "a collection built with --dense-model).")
PRF = typer.Option(None, "--prf", help="Pseudo-relevance feedback: none, rm3 (expands the BM25 part's query), "
                   "rocchio (moves the dense part's query vector) or both (Li et al. 2022).")
FUSION = typer.Option(None, "--fusion", help="minmax, zscore (score interpolation) or rrf (reciprocal ranks).")
ALPHA = typer.Option(None, "--alpha", help="Weight of the sparse ranking in [0, 1]; the dense one gets 1 - alpha.")
DEPTH = typer.Option(None, "--depth", help="Candidates each part gives the fusion (default 1000).")
FB_DOCS = typer.Option(None, "--fb-docs",
                       help="Feedback documents taken from the first ranking (default 3, chosen on training queries).")
SEARCH_MODE = typer.Option(None, "--search-mode", help="How sparse indexes find the top k: exact (default), bmp "
                           "(exact, block-max pruning) or approx (approximate, learned sparse; tuned by the "
                           "--approx-* options; docs/query_speed_learned.md).")
QUERY_TERMS = typer.Option(None, "--approx-query-terms", help="approx: keep this many query terms, the heaviest "
                           "(default 10).")
LIST_FRACTION = typer.Option(None, "--approx-list-fraction", help="approx: read at most this fraction of the "
                             "documents from each statically pruned list (default: the whole pruned list).")
CANDIDATES = typer.Option(None, "--approx-candidates", help="approx: best partial scores re-scored exactly "
                          "(default 100).")


def search_options(mode: Any = None, prf: Any = None, fusion: Any = None, alpha: Any = None, depth: Any = None,
                   fb_docs: Any = None, search_mode: Any = None, query_terms: Any = None, list_fraction: Any = None,
                   candidates: Any = None) -> dict[str, Any]:
    """The options given on the command line (typer's defaults and ``None`` left out), checked."""
    from sparsearch.retriever.hybrid_options import SearchOptions

    given = {k: _given(v) for k, v in dict(mode=mode, prf=prf, fusion=fusion, alpha=alpha, depth=depth,
                                           fb_docs=fb_docs, search_mode=search_mode, query_terms=query_terms,
                                           list_fraction=list_fraction, candidates=candidates).items()}
    given = {k: v for k, v in given.items() if v is not None}
    SearchOptions().override(**given)  # an unknown mode or an alpha outside [0, 1]: one line, before opening
    return given


def search(
    index_dir: Path = typer.Argument(..., help="Index directory (a plain index or a hybrid collection)."),
    query: Optional[str] = typer.Argument(None, help="Query text (omit with --query-vector)."),
    k: int = typer.Option(10, "-k", "--k", help="Number of hits (at least 1; more than the index holds gives all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    query_vector: Optional[str] = typer.Option(None, "--query-vector", help="Search with a query vector instead "
                                               "of text: a JSON object {\"token\": weight} in the index's tokens."),
    filter_json: Optional[str] = typer.Option(None, "--filter", help="Metadata filter, JSON: {\"field\": \"lang\", "
                                              "\"eq\": \"en\"}, {\"field\": \"year\", \"gte\": 2000}, {\"field\": "
                                              "\"tag\", \"in\": [...]}, {\"and\"|\"or\": [...]}, {\"not\": {...}} "
                                              "(docs/filters.md)."),
    mode: Optional[str] = MODE,
    prf: Optional[str] = PRF,
    fusion: Optional[str] = FUSION,
    alpha: Optional[float] = ALPHA,
    depth: Optional[int] = DEPTH,
    fb_docs: Optional[int] = FB_DOCS,
    search_mode: Optional[str] = SEARCH_MODE,
    query_terms: Optional[int] = QUERY_TERMS,
    list_fraction: Optional[float] = LIST_FRACTION,
    candidates: Optional[int] = CANDIDATES,
) -> None:
    """Search an index; prints rank, id, score and title."""
    from sparsearch.eval.beir import effective_k
    from sparsearch.filters import parse_filter
    from sparsearch.retriever.hybrid_collection import HybridCollection
    from sparsearch.retriever.retriever import Retriever

    query_vector = _given(query_vector)
    filter_json = _given(filter_json)
    # k is checked here rather than with typer's min=1, whose message is a multi-line usage box;
    # it is clamped to the document count because the search allocates k result slots.
    try:
        effective_k(k, 1)
        if (query is None) == (query_vector is None):
            raise SparsearchError("give a query text or --query-vector JSON (one of the two)")
        options = search_options(mode, prf, fusion, alpha, depth, fb_docs, search_mode, query_terms,
                                 list_fraction, candidates)
        flt = parse_filter(filter_json)  # a malformed filter fails before the index is opened
        if query_vector is not None:
            from sparsearch.vectors_io import parse_query_vector, search_vectors

            if flt is not None or options:
                raise SparsearchError("--filter, --mode, --prf and --search-mode work with a text query, not with "
                                      "--query-vector")
            idx = Retriever.open(index_dir)
            vector = parse_query_vector(query_vector)
            hits = search_vectors(idx, [vector], effective_k(k, idx.n_docs), threads=1)[0]
        else:
            collection = HybridCollection.open(index_dir)
            hits = collection.search(query, effective_k(k, collection.n_docs), filter=flt, **options)
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    except MemoryError:
        _fail(SparsearchError(f"not enough memory to search with k={k}; use a smaller -k"))
    rows = [{"rank": rank, "_id": doc_id, "score": float(score),
             "title": hits.fields(rank - 1, ["title"]).get("title", "")}
            for rank, (doc_id, score) in enumerate(zip(hits.ids, hits.scores), start=1)]
    if as_json:
        typer.echo(json.dumps({"query": query if query_vector is None else vector, "hits": rows}, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no hits")
    for r in rows:
        typer.echo(f"{r['rank']:>3}  {r['score']:8.4f}  {r['_id']}  {r['title']}")


def eval_command(
    dataset: str = typer.Argument(..., help="BEIR dataset folder, a dataset name (scifact; `sparsearch datasets "
                                  "list`) or irds:ID; a name not cached is downloaded."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Dataset cache (default: $SPARSEARCH_CACHE, "
                                             "else ~/.cache/sparsearch)."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="Existing index or hybrid collection; built "
                                             "here if omitted."),
    split: str = typer.Option("test", help="qrels split."),
    report: Optional[Path] = typer.Option(None, help="Write the JSON report here."),
    run: Optional[Path] = typer.Option(None, help="Write the TREC run here."),
    k: int = typer.Option(1000, "-k", "--k", help="Hits per query (at least 1; clamped to the index's documents)."),
    encoder: str = typer.Option("bm25", help="Encoder when building: bm25, splade, inference-free or dense."),
    k1: float = K1,
    b: float = B,
    model: Optional[Path] = MODEL,
    max_length: int = MAX_LENGTH,
    doc_top_k: Optional[int] = DOC_TOP_K,
    doc_threshold: float = DOC_THRESHOLD,
    batch_size: int = BATCH_SIZE,
    device: str = DEVICE,
    idf: str = IDF,
    speed: bool = typer.Option(True, help="Measure QPS and latency."),
    query_vectors: Optional[Path] = typer.Option(None, "--query-vectors", help="Search --index with precomputed "
                                                 "query vectors (JSON lines {\"id\", \"vector\"}) instead of "
                                                 "the dataset's query texts; quality only."),
    dense_model: Optional[str] = DENSE_MODEL,
    dense_index: str = DENSE_INDEX,
    mode: Optional[str] = MODE,
    prf: Optional[str] = PRF,
    fusion: Optional[str] = FUSION,
    alpha: Optional[float] = ALPHA,
    depth: Optional[int] = DEPTH,
    fb_docs: Optional[int] = FB_DOCS,
    search_mode: Optional[str] = SEARCH_MODE,
    query_terms: Optional[int] = QUERY_TERMS,
    list_fraction: Optional[float] = LIST_FRACTION,
    candidates: Optional[int] = CANDIDATES,
) -> None:
    """Evaluate on a BEIR split: NDCG@10, Recall@100/1000, MRR@10, speed and size."""
    from sparsearch.eval.beir import EvalSettings, effective_k, evaluate_beir
    from sparsearch.retriever.hybrid_options import is_hybrid

    dense_model = _given(dense_model)
    try:
        effective_k(k, 1)  # k < 1: one line, before any build
        options = search_options(mode, prf, fusion, alpha, depth, fb_docs, search_mode, query_terms,
                                 list_fraction, candidates)
        from sparsearch.datasets import resolve_dataset

        dataset = str(resolve_dataset(dataset, cache_dir, split=split, log=lambda m: typer.echo(m, err=True)))
        collection = bool(options) or dense_model is not None or (index_dir is not None and is_hybrid(index_dir))
        if _given(query_vectors) is not None:
            if collection:
                raise SparsearchError("--query-vectors searches one index as it is: no --mode, --prf or --dense-model")
            return _eval_query_vectors(Path(dataset), index_dir, query_vectors, split, k, run, report)
        if index_dir is not None and dense_model is not None:
            raise SparsearchError("--dense-model builds a collection: not with --index")
        idf = _given(idf) or "model"
        if index_dir is not None and idf != "model":
            raise SparsearchError("--idf applies when building: an existing --index weighs queries as it was built")
        enc = None if index_dir else _encoder(encoder, k1, b, model, max_length, doc_top_k, batch_size, device,
                                               doc_threshold, idf)
        settings = EvalSettings(split=split, k=k, measure_speed=speed)
        # The warnings are printed below as "warning:" lines rather than logged, so they show once.
        if collection:
            from sparsearch.eval.collection_eval import evaluate_collection

            build = None if index_dir else _builder(enc, dense_model, dense_index, batch_size, device)
            result = evaluate_collection(dataset, index_dir, build, options, settings, run, log_warnings=False)
        else:
            fmt = dense_format(dense_index) if encoder == "dense" and not index_dir else None
            result = evaluate_beir(dataset, index_dir, encoder=enc, settings=settings, run_path=run,
                                   log_warnings=False, fmt=fmt)
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    except MemoryError:
        _fail(SparsearchError(f"not enough memory for the results of every query with k={k}; use a smaller -k"))
    _print_report(result, split, speed, report)


def _builder(sparse: Any, dense_model: Optional[str], dense_index: str, batch_size: int, device: str) -> Any:
    """How ``eval`` builds its collection: the sparse encoder, plus the dense one when asked for."""
    from sparsearch.retriever.hybrid_collection import HybridCollection

    encoders = {"dense" if dense_model is None and _is_dense(sparse) else "sparse": sparse}
    if dense_model is not None:
        encoders["dense"] = _encoder("dense", model=Path(dense_model), batch_size=batch_size, device=device)
    fmt = dense_format(dense_index)
    return lambda docs, path: HybridCollection.build(docs, path, encoders, formats={"dense": fmt})


def _is_dense(encoder: Any) -> bool:
    from sparsearch.protocols import SparseEncoder

    return not isinstance(encoder, SparseEncoder)


def _print_report(result: dict[str, Any], split: str, speed: bool, report: Optional[Path]) -> None:
    if report:
        report.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    m = result["metrics"]
    how = ""
    if "search" in result:
        s = result["search"]
        how = f" [{s['mode']}" + (f", {s['fusion']} alpha {s['alpha']}" if s["mode"] == "hybrid" else "") + \
              (f", prf {s['prf']}" if s["prf"] != "none" else "") + "]"
    typer.echo(f"{result['dataset']} {split}{how}: NDCG@10 {m['ndcg_cut_10']:.4f}  R@100 {m['recall_100']:.4f}  "
               f"R@1000 {m['recall_1000']:.4f}  MRR@10 {m['recip_rank']:.4f}  ({result['n_queries']} queries)")
    if "avg_nonzeros_per_doc" in result:
        typer.echo(f"non-zeros per document {result['avg_nonzeros_per_doc']:.1f}, per query "
                   f"{result['avg_nonzeros_per_query']:.1f}; postings touched per query "
                   f"{result['avg_postings_touched_per_query']:.0f}"
                   + (f"; encoding {result['encode_docs_per_second']:.1f} docs/s"
                      if "encode_docs_per_second" in result else ""))
    if speed and "qps_all_threads" in result:
        typer.echo(f"QPS 1 thread {result['qps_1_thread']:.0f}, all threads {result['qps_all_threads']:.0f}; "
                   f"latency p50 {result['latency_ms']['p50']:.3f} ms, p99 {result['latency_ms']['p99']:.3f} ms")
    elif speed:
        typer.echo(f"QPS 1 thread {result['qps_1_thread']:.0f}; latency p50 {result['latency_ms']['p50']:.3f} ms, "
                   f"p99 {result['latency_ms']['p99']:.3f} ms (query encoding included)")
    for warning in result["warnings"]:
        typer.echo(f"warning: {warning}", err=True)


def _eval_query_vectors(dataset: Path, index_dir: Optional[Path], query_vectors: Path, split: str, k: int,
                        run: Optional[Path], report: Optional[Path]) -> None:
    """``sparsearch eval --query-vectors``: metrics of an existing index searched with precomputed query vectors."""
    from sparsearch.vectors_io import evaluate_query_vectors

    try:
        if index_dir is None:
            raise SparsearchError("--query-vectors searches an existing index: give --index DIR")
        result = evaluate_query_vectors(dataset, index_dir, query_vectors, split=split, k=k, run_path=run)
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    if report:
        report.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    m = result["metrics"]
    typer.echo(f"{result['dataset']} {split} (query vectors): NDCG@10 {m['ndcg_cut_10']:.4f}  R@100 "
               f"{m['recall_100']:.4f}  R@1000 {m['recall_1000']:.4f}  MRR@10 {m['recip_rank']:.4f}  "
               f"({result['n_queries']} queries, {result['avg_nonzeros_per_query']:.1f} non-zeros per query)")
    for warning in result["warnings"]:
        typer.echo(f"warning: {warning}", err=True)

"""The ``sparsearch`` command: index, search, eval, info, quickstart.

Errors sparsearch raises on purpose (bad input, existing directories,
corrupt indexes) print as one line on stderr with exit code 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from sparsearch.errors import SparsearchError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Sparse retrieval: index, search, evaluate.")

from sparsearch.cli_datasets import datasets_app  # noqa: E402  (datasets list|get; docs/datasets.md)

app.add_typer(datasets_app, name="datasets")

from sparsearch.cli_models import models_app  # noqa: E402  (models list|path|export; docs/learned_sparse.md)

app.add_typer(models_app, name="models")
from sparsearch.cli_prune import prune_command  # noqa: E402  (prune; docs/pruning.md)
app.command("prune")(prune_command)
from sparsearch.cli_adapt import adapt_command  # noqa: E402  (adapt; docs/general_model.md)
app.command("adapt")(adapt_command)
from sparsearch.cli_compare import compare_command  # noqa: E402  (compare two runs; README)
app.command("compare")(compare_command)

from sparsearch.cli_common import (  # noqa: E402,F401  (re-exported: benchmarks import _encoder)
    B, BATCH_SIZE, DENSE_INDEX, DENSE_MODEL, DEVICE, DOC_THRESHOLD, DOC_TOP_K, ENCODERS, EXIT_USER_ERROR, IDF, K1,
    MAX_LENGTH, MODEL, _bm25_encoder, _encoder, _fail, _given, dense_format)
from sparsearch.cli_search import ALPHA, FUSION, eval_command, search, search_options  # noqa: E402


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details.")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@app.command()
def index(
    corpus: Optional[Path] = typer.Argument(None, help="corpus.jsonl, or a BEIR dataset folder holding one "
                                            "(omit with --vectors)."),
    out: Path = typer.Option(..., "--out", help="Index directory to create."),
    vectors: Optional[Path] = typer.Option(None, "--vectors", help="Index documents encoded elsewhere: Pyserini "
                                           "JsonVectorCollection JSON lines {\"id\", \"contents\", \"vector\": "
                                           "{token: weight}} (a file or a folder of them); score = dot product."),
    query_analyzer: str = typer.Option("whitespace", "--query-analyzer", help="With --vectors, how text queries "
                                       "become tokens: whitespace (pretokenized, weight = count), lucene-english "
                                       "(BM25's analyzer; for BM25 impact exports) or a folder with tokenizer.json "
                                       "(and idf.json). Query vectors need none of them."),
    encoder: str = typer.Option("bm25", help="Encoder: bm25, splade, inference-free or dense (a bi-encoder, "
                                 "e.g. --model all-minilm-l6-v2; exact inner product)."),
    k1: float = K1,
    b: float = B,
    model: Optional[Path] = MODEL,
    max_length: int = MAX_LENGTH,
    doc_top_k: Optional[int] = DOC_TOP_K,
    doc_threshold: float = DOC_THRESHOLD,
    batch_size: int = BATCH_SIZE,
    device: str = DEVICE,
    idf: str = IDF,
    overwrite: bool = typer.Option(False, help="Replace an existing index (atomically)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    dense_model: Optional[str] = DENSE_MODEL,
    dense_index: str = DENSE_INDEX,
    hnsw_m: Optional[int] = typer.Option(None, "--hnsw-m", help="HNSW links per node (32)."),
    ef_construction: Optional[int] = typer.Option(None, "--ef-construction", help="HNSW build beam (200)."),
    ef_search: Optional[int] = typer.Option(None, "--ef-search", help="HNSW search beam (128)."),
    ivf_nlist: Optional[int] = typer.Option(None, "--ivf-nlist", help="IVF lists (about 4 sqrt(n))."),
    ivf_nprobe: Optional[int] = typer.Option(None, "--ivf-nprobe", help="IVF lists searched (16)."),
    pq_m: Optional[int] = typer.Option(None, "--pq-m", help="PQ sub-vectors (a divisor of the dimension)."),
    pq_nbits: Optional[int] = typer.Option(None, "--pq-nbits", help="Bits per PQ code (8)."),
    fusion: Optional[str] = FUSION,
    alpha: Optional[float] = ALPHA,
) -> None:
    """Build an index from a corpus (with --dense-model: a sparse + dense hybrid collection)."""
    from sparsearch.corpus import count_lines, read_corpus
    from sparsearch.retriever.retriever import Retriever

    vectors = _given(vectors)
    try:
        t = time.perf_counter()
        if vectors is not None:
            from sparsearch.vectors_io import build_from_vectors

            if corpus is not None:
                raise SparsearchError("give either a corpus or --vectors FILE, not both")
            if _given(encoder) not in (None, "bm25") or _given(model) is not None or _given(dense_model) or \
                    _given(idf) not in (None, "model"):
                raise SparsearchError("--vectors indexes vectors as they are: --encoder, --model, --idf and "
                                      "--dense-model do not apply (text queries go through --query-analyzer)")
            idx = build_from_vectors(vectors, out, _given(query_analyzer), overwrite=overwrite, progress=progress)
        elif corpus is None:
            raise SparsearchError("missing the corpus to index (a corpus.jsonl or BEIR folder, or --vectors FILE)")
        else:
            fmt = dense_format(_given(dense_index) or "flat", hnsw_m=_given(hnsw_m),
                               ef_construction=_given(ef_construction), ef_search=_given(ef_search),
                               ivf_nlist=_given(ivf_nlist), ivf_nprobe=_given(ivf_nprobe), pq_m=_given(pq_m),
                               pq_nbits=_given(pq_nbits))
            enc = _encoder(encoder, k1, b, model, max_length, doc_top_k, batch_size, device, doc_threshold,
                           _given(idf) or "model")
            if _given(dense_model) is not None:
                return _index_hybrid(corpus, out, enc, dense_model, fmt, batch_size, device, overwrite, progress,
                                     search_options(fusion=fusion, alpha=alpha))
            idx = Retriever.build(read_corpus(corpus), path=out, encoder=enc, overwrite=overwrite, progress=progress,
                                  total=count_lines(corpus) if progress else None,
                                  fmt=fmt if encoder == "dense" else None)
        seconds = time.perf_counter() - t
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    info = idx.info()
    shape = (f"{info['n_terms']} terms, {info['n_postings']} postings" if "n_postings" in info
             else f"{info['format']} vectors")
    typer.echo(f"indexed {info['n_docs']} documents ({shape}) into {out} in {seconds:.1f}s")


def _index_hybrid(corpus: Path, out: Path, sparse: Any, dense_model: str, fmt: Any, batch_size: int, device: str,
                  overwrite: bool, progress: bool, defaults: dict[str, Any]) -> None:
    """``index --dense-model``: the sparse encoder's index and the dense one's, as one collection."""
    from sparsearch.corpus import read_corpus
    from sparsearch.retriever.hybrid_collection import HybridCollection
    from sparsearch.retriever.hybrid_options import SearchOptions

    try:
        if sparse.name == "dense":
            raise SparsearchError("--dense-model adds a dense part to a sparse encoder (bm25, splade, "
                                  "inference-free); for a dense index alone use --encoder dense --model MODEL")
        t = time.perf_counter()
        dense = _encoder("dense", model=Path(dense_model), batch_size=batch_size, device=device)
        built = HybridCollection.build(read_corpus(corpus), out, {"sparse": sparse, "dense": dense},
                                       SearchOptions().override(**defaults), {"dense": fmt}, overwrite, progress)
        seconds = time.perf_counter() - t
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    parts = ", ".join(f"{name}: {p.encoder.name} ({p.writer.fmt.kind})" for name, p in built.parts.items())
    typer.echo(f"indexed {built.n_docs} documents into {out} as a hybrid collection ({parts}) in {seconds:.1f}s")


app.command()(search)  # sparsearch/cli_search.py: --mode, --prf, --fusion, --alpha
app.command("eval")(eval_command)



@app.command()
def idf(
    corpus: Path = typer.Argument(..., help="corpus.jsonl, or a BEIR dataset folder holding one."),
    tokenizer: Path = typer.Option(..., "--tokenizer", help="Folder with tokenizer.json (or vocab.txt)."),
    out: Path = typer.Option(..., "--out", help="idf.json to write (token -> weight)."),
) -> None:
    """IDF of every WordPiece token over a corpus, ln(1 + (N - df + 0.5)/(df + 0.5)): inference-free queries."""
    from sparsearch.corpus import read_corpus
    from sparsearch.retriever.idf import idf_table, write_idf_json

    try:
        table = idf_table((d.contents for d in read_corpus(corpus)), tokenizer)
        write_idf_json(table, out)
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    typer.echo(f"wrote {len(table)} token weights to {out}")


@app.command()
def train(
    config: Path = typer.Argument(..., help="Training config (YAML or JSON; see docs/learned_sparse.md)."),
    resume: bool = typer.Option(True, help="Continue from the newest checkpoint in the output folder."),
) -> None:
    """Train a SPLADE or inference-free encoder."""
    from sparsearch.training.config import TrainConfig
    from sparsearch.training.trainer import train as run_training

    try:
        cfg = TrainConfig.from_file(config)
        result = run_training(cfg, resume=resume)
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    typer.echo(json.dumps(result, indent=2))


@app.command()
def add(
    index_dir: Path = typer.Argument(..., help="Existing index directory."),
    corpus: Path = typer.Argument(..., help="corpus.jsonl (or BEIR folder) of documents to add or replace."),
) -> None:
    """Add documents to an index (an existing id is replaced), committed atomically."""
    from sparsearch.corpus import read_corpus
    from sparsearch.retriever.retriever import Retriever

    try:
        idx = Retriever.open(index_dir)
        n = idx.add(read_corpus(corpus))
        idx.commit()
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    typer.echo(f"added {n} documents; {idx.n_docs} in the index, {len(idx.snapshot.segments)} segments")


@app.command()
def delete(
    index_dir: Path = typer.Argument(..., help="Existing index directory."),
    ids: list[str] = typer.Argument(..., help="Document ids to delete."),
) -> None:
    """Delete documents by id, committed atomically."""
    from sparsearch.retriever.retriever import Retriever

    try:
        idx = Retriever.open(index_dir)
        found = idx.delete(ids)
        idx.commit()
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    typer.echo(f"deleted {len(found)} of {len(ids)} ids; {idx.n_docs} documents left")


@app.command()
def merge(index_dir: Path = typer.Argument(..., help="Existing index directory.")) -> None:
    """Run the tiered merge policy until it has nothing left to merge."""
    from sparsearch.retriever.retriever import Retriever

    try:
        idx = Retriever.open(index_dir)
        n = 0
        while idx.merge():
            n += 1
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    typer.echo(f"{n} merges; {len(idx.snapshot.segments)} segments")


@app.command()
def info(index_dir: Path = typer.Argument(..., help="Index directory.")) -> None:
    """Print index statistics as JSON (a hybrid collection: its defaults and each part's)."""
    from sparsearch.retriever.hybrid_collection import HybridCollection
    from sparsearch.retriever.hybrid_options import is_hybrid
    from sparsearch.retriever.retriever import Retriever

    try:
        opened = HybridCollection.open(index_dir) if is_hybrid(index_dir) else Retriever.open(index_dir)
        typer.echo(json.dumps(opened.info(), indent=2))
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)


@app.command()
def check(index_dir: Path = typer.Argument(..., help="Index directory.")) -> None:
    """Verify every file's checksum and every segment's structure; exit 0 if sound, else 2 (one line per problem).

    Opening an index checks structure always but checksums large files only
    lazily; this reads every byte (about 1.5 s per 10^6 documents).
    """
    from sparsearch.index.verify import check_index

    report = check_index(index_dir)
    for problem in report.problems:
        typer.echo(f"error: {problem}", err=True)
    if not report.ok:
        raise typer.Exit(EXIT_USER_ERROR)
    note = "" if report.format_version != 1 else " (format 1: no checksums recorded, structure checked only)"
    typer.echo(f"ok: {index_dir}: {report.segments} segments, {report.documents} documents, {report.files} files, "
               f"{report.bytes / 1e6:.1f} MB verified in {report.seconds:.1f}s{note}")


@app.command()
def serve(
    data_dir: Path = typer.Option(..., "--data-dir", help="Where collections live (created if missing)."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="TCP port."),
    require_key_for_reads: bool = typer.Option(False, help="Ask for the API key on searches, reads and /metrics."),
    open_writes: bool = typer.Option(False, "--open-writes", help="Run without an API key: anyone who can "
                                     "connect may write. Without it, a missing or empty key refuses to start."),
    flush_docs: int = typer.Option(10_000, help="Buffered documents that trigger a segment flush."),
    flush_seconds: float = typer.Option(30.0, help="Seconds after which buffered writes are flushed."),
    max_open_collections: int = typer.Option(64, help="Collections kept open at once (idle ones beyond are "
                                             "closed, least recently used first; reopened on use)."),
    worker_threads: int = typer.Option(32, help="Threads running requests (bounds the server's threads)."),
    body_timeout: float = typer.Option(30.0, help="Seconds a request body may stall before 408."),
    keep_alive: int = typer.Option(5, help="Seconds an idle keep-alive connection is kept open."),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help="Folder of learned sparse models, one "
                                              "sub-folder each, that requests name (\"model\": NAME); default: "
                                              "the models shipped with sparsearch."),
) -> None:
    """Run the HTTP service (FastAPI + uvicorn). API key: $SPARSEARCH_API_KEY or $SPARSEARCH_API_KEY_FILE."""
    try:
        import uvicorn

        from sparsearch.index.writer import LiveSettings
        from sparsearch.service.app import create_app, open_store
        from sparsearch.service.settings import ServiceSettings
    except ImportError as e:
        _fail(SparsearchError(f"the service needs its extra: pip install 'sparsearch[service]' ({e})"))
    # Everything that can refuse to start (no key, a data directory another server holds) is
    # checked here, before uvicorn runs, so it prints one line instead of a start-up traceback.
    try:
        settings = ServiceSettings.from_env(data_dir, require_key_for_reads=require_key_for_reads,
                                            open_writes=open_writes, max_open_collections=max_open_collections,
                                            body_timeout_seconds=body_timeout, worker_threads=worker_threads,
                                            models_dir=models_dir,
                                            live=LiveSettings(flush_docs=flush_docs, flush_seconds=flush_seconds))
        settings.check()
        data_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(settings)
    except (SparsearchError, OSError) as e:
        _fail(e)
    # Read timeouts: idle keep-alive connections close after --keep-alive seconds; a stalled body
    # gets 408 from the application (uvicorn itself has no body timeout).
    uvicorn.run(create_app(settings, store=store), host=host, port=port, log_level="warning",
                timeout_keep_alive=keep_alive, h11_max_incomplete_event_size=64 * 1024)


@app.command()
def quickstart(
    out: Path = typer.Option(Path("quickstart-index"), help="Where to build the BM25 index (the learned one goes "
                             "beside it, named OUT-<learned model>)."),
    query: str = typer.Option("", help="Query to run (defaults to one suited to the corpus)."),
    learned: Optional[bool] = typer.Option(None, "--learned/--no-learned", help="Also index with the shipped "
                                           "learned sparse model (inference-free-general), and show its ranking beside "
                                           "BM25's. Default: yes on the bundled sample (document vectors shipped, no "
                                           "torch: about a second), no on other corpora. --learned encodes the "
                                           "documents with the model now (needs torch: importing it and "
                                           "transformers alone takes ~3 s of CPU; ~9 s of CPU for the sample, "
                                           "minutes for SciFact)."),
    k: int = typer.Option(5, "-k", "--k", help="Hits per ranking."),
) -> None:
    """Index SciFact (from $SPARSEARCH_DATA or ../shared/data) or the bundled sample, then search it.

    BM25 and the shipped learned sparse model side by side (see --learned).
    Nothing here compiles: an index this small is built and searched by the
    NumPy twins of the Numba kernels (sparsearch/index/small.py).
    """
    from sparsearch import quickstart as qs
    from sparsearch.retriever.retriever import Retriever
    from sparsearch.sample import SAMPLE_CORPUS, default_corpus

    learned = _given(learned)
    k = 5 if _given(k) is None else k
    if k < 1:
        _fail(SparsearchError(f"k must be at least 1, got {k}"))
    corpus, default_query = default_corpus()
    typer.echo(f"corpus: {corpus}")
    index(corpus=corpus, out=out, encoder="bm25", k1=0.9, b=0.4, overwrite=True, progress=True)
    q = query or default_query
    try:
        columns = [qs.Column("BM25", qs.hits_of(Retriever.open(out), q, k))]
        learned_out = qs.learned_index_dir(out)
        if learned is None and corpus != SAMPLE_CORPUS:
            note = (f"learned model: skipped (its document vectors are shipped for the bundled sample only; "
                    f"--learned encodes {corpus.name} with {qs.LEARNED_MODEL}: needs torch, minutes on a CPU)")
        elif learned is False:
            note = ""
        else:
            t = time.perf_counter()
            note = ""
            try:
                idx, how = qs.build_learned(corpus, learned_out, encode=bool(learned), progress=bool(learned))
            except ImportError as e:
                raise SparsearchError(f"--learned needs torch and transformers (pip install torch transformers): "
                                      f"{e}") from None
            except SparsearchError as e:
                if learned:
                    raise
                idx, note = None, f"learned model: skipped ({e})"  # e.g. not installed beside the package
            if idx is not None:
                info = idx.info()
                typer.echo(f"indexed {info['n_docs']} documents ({info['n_postings']} postings) with "
                           f"{qs.LEARNED_MODEL} into {learned_out} in {time.perf_counter() - t:.1f}s ({how})")
                columns.append(qs.Column(f"{qs.LEARNED_MODEL} (learned sparse)", qs.hits_of(idx, q, k)))
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    typer.echo(f"query: {q}")
    typer.echo(qs.side_by_side(columns))
    if note:
        typer.echo(note)
    searched = [str(out)] + ([str(learned_out)] if len(columns) > 1 else [])
    typer.echo("search again: " + "  |  ".join(f"sparsearch search {d} \"QUERY\"" for d in searched))


@app.command()
def export(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    fmt: str = typer.Option("anserini", "--format", help="anserini (JsonVectorCollection, integer weights), "
                            "jsonl (same layout, exact float weights) or opensearch (bulk file, rank_features)."),
    out: Path = typer.Option(..., "--out", help="File to write (.gz: gzipped); replaced atomically."),
    scale: Optional[float] = typer.Option(None, "--scale", help="anserini: weights = round(w * scale); default "
                                          "255 / the largest weight (8 bits). SPLADE's Anserini exports use 100."),
    field_name: str = typer.Option("sparse_embedding", "--field", help="opensearch: the rank_features field."),
    index_name: Optional[str] = typer.Option(None, "--index-name", help="opensearch: _index of every action "
                                             "(default: the index directory's name)."),
) -> None:
    """Write an index's document vectors for Anserini/Pyserini or OpenSearch (BM25: its impacts)."""
    from sparsearch.retriever.retriever import Retriever
    from sparsearch.vectors_io import export_index

    try:
        summary = export_index(Retriever.open(index_dir), out, fmt, scale=scale, field_name=field_name,
                               index_name=index_name)
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    typer.echo(summary.describe())


@app.command()
def repro(
    matrix: Optional[Path] = typer.Option(None, "--matrix", help="Matrix file (default: configs/repro.yaml of "
                                          "the checkout)."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Run only this entry (repeatable; shell "
                                             "patterns allowed). A slow entry named here runs."),
    slow: bool = typer.Option(False, "--slow", help="Also run entries marked slow (learned models: minutes)."),
    check_: bool = typer.Option(False, "--check", help="Exit 1 if any metric deviates beyond its tolerance "
                                "or an entry fails."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data folder the matrix's datasets are relative "
                                        "to (default: $SPARSEARCH_DATA)."),
    download: bool = typer.Option(False, "--download", help="Fetch a BEIR dataset found nowhere locally."),
    markdown_out: Optional[Path] = typer.Option(None, "--markdown", help="Write the results table (Markdown) "
                                                "here, e.g. docs/repro.md."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the results as JSON here."),
    from_report: Optional[Path] = typer.Option(None, "--from-report", help="Run nothing: show (and --markdown) "
                                               "the results of an earlier --report against the matrix."),
) -> None:
    """Run the reproducibility matrix: expected vs measured NDCG@10 and Recall@100 per (dataset, model, settings)."""
    from sparsearch import repro as rp

    env = None
    try:
        m = rp.load_matrix(matrix or rp.DEFAULT_MATRIX)
        if from_report is not None:
            results, env = rp.load_report(from_report, m)
        else:
            results = rp.run_matrix(m, only=only or None, slow=slow, data=data, download=download,
                                    progress=lambda line: typer.echo(line, err=True))
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    typer.echo(rp.format_table(results))
    typer.echo(rp.summary_line(results))
    if markdown_out is not None:
        words = ["sparsearch repro"] + (["--slow"] if slow else []) + [f"--only {o}" for o in only or []]
        markdown_out.write_text(rp.markdown(results, m, " ".join(words + [f"--markdown {markdown_out}"]), env),
                                encoding="utf-8")
    if report is not None:
        report.write_text(json.dumps(rp.results_json(results), indent=2) + "\n", encoding="utf-8")
    if check_ and any(r.failed for r in results):
        raise typer.Exit(1)


def run() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    run()

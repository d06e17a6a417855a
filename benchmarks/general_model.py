"""Train the general (zero-shot) inference-free model and measure it against BM25 on every shared set.

On the GPU machine (training text from ``benchmarks/general_data.py``; the
base model and dense teacher are all-MiniLM-L6-v2; nothing of SciFact,
NFCorpus, Cranfield or CISI is read before training ends):

    python benchmarks/general_model.py train --data GEN --base MINILM --out OUT --eval DATA

``train`` fixes every hyperparameter beforehand (the recipe of the shipped
in-domain model, docs/learned_sparse.md) and chooses only the checkpoint, on
the validation (``dev``) slice of the training text
(:mod:`sparsearch.training.validation`).  After training it encodes each
shared set once and reports NDCG@10 (pytrec_eval, all judged test queries,
exhaustive dot product, top 1,000) with the model's own ``idf.json`` and with
IDF recomputed from the set's corpus, each unpruned and with document
weights ≤ 0.1 dropped, beside BM25 — the figures are zero-shot.

``adapt`` runs ``sparsearch adapt`` (documents only) on each shared set from
a given model and reports the same table for the adapted models.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

SETS = {"scifact": "beir/scifact", "nfcorpus": "beir/nfcorpus", "cranfield": "classic/cranfield",
        "cisi": "classic/cisi"}
log = logging.getLogger("general_model")


#: Dev queries the checkpoint is chosen on (``ValidationSet.from_beir(max_queries=...)``); the threshold sweep
#: reuses the same sample.
DEV_MAX_QUERIES = 2000


def write_reports(report: object, *paths: Path | None) -> None:
    """The JSON report at every path given (``None`` skipped)."""
    for path in paths:
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=2))


def bm25_ndcg(root: Path) -> float:
    from sparsearch.eval.beir import EvalSettings, evaluate_beir
    from sparsearch.retriever.registry import build_encoder

    report = evaluate_beir(root, encoder=build_encoder("bm25"), settings=EvalSettings(measure_speed=False),
                           log_warnings=False)
    return round(report["metrics"]["ndcg_cut_10"], 4)


def _exhaustive_run(full: sp.csr_matrix, q: sp.csr_matrix, threshold: float, qids: list[str], doc_ids: list[str]
                    ) -> tuple[dict[str, dict[str, float]], float]:
    """Exhaustive top 1,000 per query with document weights <= threshold dropped, and non-zeros per document."""
    d = full.multiply(full > threshold).tocsr() if threshold > 0 else full
    scores = (q @ d.T).toarray()
    run = {}
    for i, qid in enumerate(qids):
        top = np.argsort(-scores[i], kind="stable")[:1000]
        run[qid] = {doc_ids[j]: float(scores[i, j]) for j in top if scores[i, j] > 0}
    return run, d.nnz / max(1, d.shape[0])


def _scores_ndcg(full: sp.csr_matrix, q: sp.csr_matrix, threshold: float, qids: list[str], doc_ids: list[str],
                 qrels: dict[str, dict[str, int]]) -> tuple[float, float]:
    """NDCG@10 of exhaustive top 1,000 with document weights <= threshold dropped, and non-zeros per document."""
    from sparsearch.eval.metrics import evaluate

    run, nnz = _exhaustive_run(full, q, threshold, qids, doc_ids)
    return evaluate(qrels, run)["ndcg_cut_10"], nnz


def _encode(encoder, docs: list, queries: list[str]) -> tuple[sp.csr_matrix, object, float]:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    batch = encoder.encode_documents(docs)
    seconds = time.perf_counter() - t
    vocab = len(encoder.queries.weights)
    full = sp.csr_matrix((batch.weights, batch.term_ids, batch.offsets), shape=(len(docs), vocab))
    # The encoder's own query terms (distinct non-special tokens), reweighted by each IDF source.
    return full, encoder.queries.encode(queries), seconds


def _query_matrix(terms, weights, n_queries: int, vocab: int) -> sp.csr_matrix:  # type: ignore[no-untyped-def]
    w = np.asarray(weights, np.float64)
    return sp.csr_matrix((w[terms.term_ids], terms.term_ids, terms.offsets), shape=(n_queries, vocab))


def zero_shot(model_dir: Path, root: Path, device: str = "auto", thresholds: tuple[float, ...] = (0.0, 0.1)
              ) -> dict[str, float]:
    """NDCG@10 of an inference-free model on one set: {idf source} × {document threshold}."""
    from sparsearch.eval.datasets import load_beir
    from sparsearch.retriever.idf import bm25_form_idf, document_frequencies
    from sparsearch.retriever.registry import build_encoder

    dataset = load_beir(root, "test")
    docs = list(dataset.corpus())
    encoder = build_encoder("inference-free", {"model_dir": str(model_dir), "device": device, "batch_size": 128})
    qids = list(dataset.queries)
    full, terms, seconds = _encode(encoder, docs, [dataset.queries[q] for q in qids])
    df, n = document_frequencies([d.contents for d in docs], model_dir)
    out: dict[str, float] = {"encode_docs_per_second": round(len(docs) / seconds, 1),
                             "nonzeros_per_doc": round(full.nnz / len(docs), 1)}
    doc_ids = [d.doc_id for d in docs]
    for idf_name, weights in (("model_idf", encoder.queries.weights), ("corpus_idf", bm25_form_idf(df, n))):
        q = _query_matrix(terms, weights, len(qids), full.shape[1])
        for threshold in thresholds:
            out[f"{idf_name}@{threshold:g}"] = round(_scores_ndcg(full, q, threshold, qids, doc_ids,
                                                                  dataset.qrels)[0], 4)
    return out


def _dev_sample(data: Path, n_docs: int):  # type: ignore[no-untyped-def]
    """The dev sample the checkpoint is chosen on (the same seeded sample as training's validation)."""
    from sparsearch.training.validation import ValidationSet

    return ValidationSet.from_beir(str(data), "dev", n_docs=n_docs, max_queries=DEV_MAX_QUERIES)


def _dev_encoded(model_dir: Path, dev):  # type: ignore[no-untyped-def]
    """The dev sample encoded by a model: ``(qids, documents, queries)`` as sparse matrices."""
    from sparsearch.retriever.registry import build_encoder
    from sparsearch.types import Document

    encoder = build_encoder("inference-free", {"model_dir": str(model_dir), "batch_size": 64})
    qids = list(dev.queries)
    docs = [Document(i, t) for i, t in zip(dev.doc_ids, dev.texts)]
    full, terms, _ = _encode(encoder, docs, [dev.queries[q] for q in qids])
    return qids, full, _query_matrix(terms, encoder.queries.weights, len(qids), full.shape[1])


def dev_thresholds(model_dir: Path, data: Path, thresholds: tuple[float, ...], n_docs: int = 8000
                   ) -> dict[str, dict[str, float]]:
    """NDCG@10 and non-zeros per document at each document threshold, on the training text's dev slice.

    The threshold trades postings (query latency) for quality; it is chosen
    here, on the sample the checkpoint was chosen on, never on a test split.
    """
    dev = _dev_sample(data, n_docs)
    qids, full, q = _dev_encoded(model_dir, dev)
    out = {}
    for threshold in thresholds:
        ndcg, nnz = _scores_ndcg(full, q, threshold, qids, dev.doc_ids, dev.qrels)
        out[f"{threshold:g}"] = {"ndcg_cut_10": round(ndcg, 4), "nonzeros_per_doc": round(nnz, 1)}
        log.info("threshold %g: %s", threshold, out[f"{threshold:g}"])
    return out


def dev_compare(model_a: Path, model_b: Path, data: Path, n_docs: int = 8000) -> dict[str, object]:
    """Whether model ``b`` beats model ``a`` on the dev slice beyond its noise: per-query NDCG@10, paired tests.

    The decision between two trained models (a longer schedule, another
    recipe) belongs to the dev slice like the checkpoint; a difference the
    paired tests cannot tell from noise does not replace the shipped model.
    """
    from sparsearch.eval.metrics import per_query
    from sparsearch.eval.significance import paired_comparison

    dev = _dev_sample(data, n_docs)  # read once: both models are scored on the same sample
    values = []
    for model_dir in (model_a, model_b):
        qids, full, q = _dev_encoded(model_dir, dev)
        run, _ = _exhaustive_run(full, q, 0.0, qids, dev.doc_ids)
        judged = {qid: dev.qrels[qid] for qid in qids}
        values.append({qid: v["ndcg_cut_10"] for qid, v in per_query(judged, run).items()})
        log.info("%s: dev NDCG@10 %.4f", model_dir, float(np.mean(list(values[-1].values()))))
    comparison = paired_comparison(values[0], values[1])
    return {"a": str(model_a), "b": str(model_b), "documents": len(dev.doc_ids), **comparison.to_dict()}


def source_idfs(all_df: np.ndarray, all_n: int, own_texts: list[str], model_dir: Path) -> dict[str, np.ndarray]:
    """IDF from every source but one (document frequencies of all, less the source's own) and from that source alone."""
    from sparsearch.retriever.idf import bm25_form_idf, document_frequencies

    own_df, own_n = document_frequencies(own_texts, model_dir)
    return {"other_sources_idf": bm25_form_idf(all_df - own_df, all_n - own_n),
            "collection_idf": bm25_form_idf(own_df, own_n)}


def _source_of(key: str) -> str:
    """The source of a training-text passage id (SOURCE-N, or wn-POS-N for WordNet: general_sources.py)."""
    return key.split("-", 1)[0]


def heldout_idf(model_dir: Path, data: Path, n_docs: int = 1000, n_queries: int = 150, seed: int = 13
                ) -> dict[str, dict[str, float]]:
    """Which query IDF a collection from an unseen domain should get, decided on the training text alone.

    Each source of the training text plays the unseen collection in turn: its
    dev queries search a sample of its own passages (the judged ones and random
    others), weighted by IDF from (a) the other sources only (a general IDF that
    never saw this domain: the zero-shot situation of the shipped ``idf.json``),
    (b) this source's passages (``--idf collection``), and (c) the model's
    ``idf.json`` (all of the training text) for reference.  The model's
    encoder did see each source's training queries, so this isolates the IDF
    choice, not the model's generality.  No evaluation collection is read.
    """
    import random

    from sparsearch.eval.datasets import load_beir
    from sparsearch.retriever.idf import document_frequencies
    from sparsearch.retriever.registry import build_encoder

    dataset = load_beir(data, "dev")
    passages = {d.doc_id: d for d in dataset.corpus()}
    encoder = build_encoder("inference-free", {"model_dir": str(model_dir), "batch_size": 64})
    all_df, all_n = document_frequencies([d.contents for d in passages.values()], model_dir)
    rng = random.Random(seed)
    out: dict[str, dict[str, float]] = {}
    for source in sorted({_source_of(k) for k in passages}):
        qids = sorted(q for q in dataset.qrels if _source_of(q.removeprefix("q-")) == source)
        qids = rng.sample(qids, min(n_queries, len(qids)))
        if not qids:
            continue
        own = [k for k in passages if _source_of(k) == source]
        judged = sorted({d for q in qids for d in dataset.qrels[q] if d in passages})
        others = sorted(set(own) - set(judged))
        sample = judged + rng.sample(others, max(0, min(len(others), n_docs - len(judged))))
        docs = [passages[k] for k in sample]
        full, terms, _ = _encode(encoder, docs, [dataset.queries[q] for q in qids])
        weights = {**source_idfs(all_df, all_n, [passages[k].contents for k in own], model_dir),
                   "model_idf": encoder.queries.weights}
        qrels = {q: dataset.qrels[q] for q in qids}
        row: dict[str, float] = {"queries": len(qids), "documents": len(docs), "source_passages": len(own)}
        for name, w in weights.items():
            q = _query_matrix(terms, w, len(qids), full.shape[1])
            row[name] = round(_scores_ndcg(full, q, 0.0, qids, sample, qrels)[0], 4)
        out[source] = row
        log.info("%s %s", source, row)
    names = ("other_sources_idf", "collection_idf", "model_idf")
    out["mean"] = {n: round(float(np.mean([r[n] for r in out.values()])), 4) for n in names}
    return out


def table(model_dir: Path, data: Path, with_bm25: bool = True) -> dict[str, dict[str, float]]:
    result = {}
    for name, rel in SETS.items():
        root = data / rel
        if not root.exists():
            continue
        row = zero_shot(model_dir, root)
        if with_bm25:
            row["bm25"] = bm25_ndcg(root)
        result[name] = row
        log.info("%s %s", name, row)
    return result


def train_general(args: argparse.Namespace) -> None:
    from sparsearch.training.config import DatasetSpec, TrainConfig
    from sparsearch.training.trainer import train
    from sparsearch.training.validation import ValidationSet

    config = TrainConfig(
        kind="inference-free", base_model=str(args.base), out_dir=str(args.out / "run"),
        datasets=(DatasetSpec(str(args.data), ("train",)),), teachers=("dense", "bm25"), dense_teacher=str(args.base),
        teacher_scale=30.0, kl_weight=1.0, infonce_weight=0.5, crop_fraction=args.crop_fraction, flops="idf",
        lambda_d=args.lambda_d, lambda_q=0.01, lambda_warmup_steps=args.steps // 3, steps=args.steps,
        max_train_seconds=args.max_train_seconds, batch_size=32, lr=8e-5, lr_warmup_steps=args.steps // 15,
        max_length=256, bf16=True, seed=13, log_every=50, checkpoint_every=10**9, save_fp16=True)
    validation = ValidationSet.from_beir(str(args.data), "dev", n_docs=args.validation_docs, max_queries=DEV_MAX_QUERIES)
    started = time.perf_counter()
    summary = train(config, resume=False, validate=lambda s: validation.ndcg10(s), validate_every=args.validate_every)
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    report = {"training": summary, "config": config.to_dict(),
              "validation_sample": {"queries": len(validation.queries), "documents": len(validation.texts)}}
    # Written before the table too: a time-boxed job keeps the training record whatever happens next.
    write_reports(report, args.out / "report.json", args.report)
    if args.eval:
        report["zero_shot"] = table(Path(summary["model_dir"]), args.eval)
    write_reports(report, args.out / "report.json", args.report)
    print(json.dumps(report.get("zero_shot", {}), indent=1))


def adapt_all(args: argparse.Namespace) -> None:
    from sparsearch.training.adapt import AdaptConfig, adapt

    report: dict[str, object] = {}
    for name in args.sets:
        root = args.eval / SETS[name]
        t = time.perf_counter()
        saved = args.dense_embeddings / f"{name}.npz" if args.dense_embeddings else None
        folder = adapt(AdaptConfig(model=str(args.model), corpus=str(root), out=str(args.out / name),
                                   dense_teacher=str(args.dense_teacher) if args.dense_teacher else None,
                                   dense_embeddings=str(saved) if saved and saved.exists() else None,
                                   steps=args.steps))
        seconds = time.perf_counter() - t
        row = zero_shot(folder, root)
        row["bm25"] = bm25_ndcg(root)
        row["adapt_seconds"] = round(seconds, 1)
        report[name] = row
        log.info("%s %s", name, row)
        write_reports(report, args.report or args.out / "adapt_report.json")
    print(json.dumps(report, indent=1))


def embed_all(args: argparse.Namespace) -> None:
    """The dense teacher's embeddings of each set's documents and adapt's pseudo-queries: OUT/{set}.npz.

    Computed where the teacher is (a CPU will do), carried to the GPU run in its place: ``adapt
    --dense-embeddings OUT`` (the same defaults of seed and pseudo-query count, or the files are refused).
    """
    from sparsearch.training.adapt import AdaptConfig, save_dense_embeddings

    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.sets:
        t = time.perf_counter()
        config = AdaptConfig(model=str(args.model), corpus=str(args.eval / SETS[name]), out="", device=args.device)
        path = save_dense_embeddings(config, str(args.dense_teacher), args.out / f"{name}.npz")
        log.info("%s: %s (%.1f MB) in %.0f s", name, path, path.stat().st_size / 1e6, time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", type=Path, required=True, help="the general training text (BEIR layout, train + dev)")
    t.add_argument("--base", type=Path, required=True, help="all-MiniLM-L6-v2 folder: student base and dense teacher")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--eval", type=Path, help="$SPARSEARCH_DATA: zero-shot table after training")
    t.add_argument("--steps", type=int, default=3400)
    t.add_argument("--max-train-seconds", type=float, default=None)
    t.add_argument("--lambda-d", type=float, default=0.07)
    t.add_argument("--crop-fraction", type=float, default=0.1)
    t.add_argument("--validate-every", type=int, default=850)
    t.add_argument("--validation-docs", type=int, default=20000)
    t.add_argument("--report", type=Path, help="a second copy of the JSON report")
    a = sub.add_parser("adapt")
    a.add_argument("--model", type=Path, required=True)
    a.add_argument("--eval", type=Path, required=True, help="$SPARSEARCH_DATA")
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--dense-teacher", type=Path)
    a.add_argument("--steps", type=int, default=300)
    a.add_argument("--report", type=Path, help="where the JSON report goes (default OUT/adapt_report.json)")
    a.add_argument("--sets", nargs="+", default=["cranfield", "cisi", "nfcorpus", "scifact"], choices=list(SETS))
    a.add_argument("--dense-embeddings", type=Path, help="a folder of SET.npz from `embed`: the dense teacher of "
                                                          "the sets that have one (instead of --dense-teacher)")
    m = sub.add_parser("embed", help="the dense teacher's embeddings of what `adapt` will score, per set")
    m.add_argument("--model", type=Path, required=True, help="the model adapt will adapt (names no file here)")
    m.add_argument("--dense-teacher", type=Path, required=True)
    m.add_argument("--eval", type=Path, required=True, help="$SPARSEARCH_DATA")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--device", default="auto")
    m.add_argument("--sets", nargs="+", default=["cranfield", "cisi", "nfcorpus", "scifact"], choices=list(SETS))
    e = sub.add_parser("table")
    e.add_argument("--model", type=Path, required=True)
    e.add_argument("--eval", type=Path, required=True)
    e.add_argument("--report", type=Path, help="also write the table here as JSON")
    h = sub.add_parser("thresholds", help="NDCG@10 and postings per document threshold on the dev slice")
    h.add_argument("--model", type=Path, required=True)
    h.add_argument("--data", type=Path, required=True, help="the general training text (its dev split)")
    h.add_argument("--thresholds", default="0,0.1,0.2,0.3,0.5,0.75,1.0")
    h.add_argument("--validation-docs", type=int, default=8000)
    h.add_argument("--report", type=Path, required=True)
    c = sub.add_parser("dev-compare", help="two models on the dev slice: per-query NDCG@10 and paired tests")
    c.add_argument("--models", type=Path, nargs=2, required=True, metavar=("A", "B"))
    c.add_argument("--data", type=Path, required=True, help="the general training text (its dev split)")
    c.add_argument("--validation-docs", type=int, default=8000)
    c.add_argument("--report", type=Path, required=True)
    i = sub.add_parser("heldout-idf", help="query IDF for an unseen domain, decided on the training text's sources")
    i.add_argument("--model", type=Path, required=True)
    i.add_argument("--data", type=Path, required=True, help="the general training text (its dev split)")
    i.add_argument("--docs", type=int, default=1000, help="passages sampled per source (judged ones first)")
    i.add_argument("--queries", type=int, default=150, help="dev queries sampled per source")
    i.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "train":
        args.out.mkdir(parents=True, exist_ok=True)
        train_general(args)
        return
    if args.command == "adapt":
        args.out.mkdir(parents=True, exist_ok=True)
        adapt_all(args)
        return
    if args.command == "embed":
        embed_all(args)
        return
    if args.command == "thresholds":
        values = tuple(float(t) for t in args.thresholds.split(","))
        result = dev_thresholds(args.model, args.data, values, args.validation_docs)
    elif args.command == "dev-compare":
        result = dev_compare(args.models[0], args.models[1], args.data, args.validation_docs)
    elif args.command == "heldout-idf":
        result = heldout_idf(args.model, args.data, args.docs, args.queries)
    else:
        result = table(args.model, args.eval)
    write_reports(result, args.report)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

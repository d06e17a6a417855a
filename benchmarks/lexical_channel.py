"""Does a BM25 term-frequency channel added to the learned document weights help an unseen collection?

Inference-free scoring is ``Σ_j q_j · w_dj`` with ``q_j`` the query token's
IDF.  Adding ``β · tf_dj (k1 + 1) / (tf_dj + k1 (1 − b + b · len_d / A))`` to
``w_dj`` (``tf``: the token's count in the whole document text; ``A`` a fixed
length, the training text's mean, because a document is encoded before any
collection statistics exist) makes the same index score learned weights plus
BM25 over WordPiece tokens: still one sparse vector a document, no model at
query time.

``dev`` chooses ``(β, k1, b)`` on the training text's dev sample only (the
sample checkpoints are chosen on); ``test`` then reports the chosen setting
(and β = 0, the model alone) on the four shared sets, from vectors encoded once
by ``benchmarks/dump_vectors.py``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dump_vectors import read_vectors  # noqa: E402
from general_model import SETS, _dev_sample, _exhaustive_run, _query_matrix, bm25_ndcg, write_reports  # noqa: E402

log = logging.getLogger("lexical_channel")


def token_counts(tokenizer, texts: list[str], vocab: int  # type: ignore[no-untyped-def]
                 ) -> tuple[sp.csr_matrix, np.ndarray]:
    """Each text's WordPiece token counts (untruncated, special tokens left out) and its length in tokens."""
    tokenizer.no_truncation()
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    sizes = np.fromiter((len(e.ids) for e in encodings), np.int64, count=len(encodings))
    flat = np.fromiter((t for e in encodings for t in e.ids), np.int64, count=int(sizes.sum()))
    rows = np.repeat(np.arange(len(texts)), sizes)
    counts = sp.csr_matrix((np.ones(len(flat), np.float32), (rows, flat)), shape=(len(texts), vocab))
    counts.sum_duplicates()
    return counts, sizes.astype(np.float64)


def saturated(counts: sp.csr_matrix, lengths: np.ndarray, k1: float, b: float, avg_length: float) -> sp.csr_matrix:
    """BM25's term-frequency part per (document, token)."""
    out = counts.copy().astype(np.float64)
    norm = k1 * (1 - b + b * lengths / avg_length)
    row_norm = np.repeat(norm, np.diff(out.indptr))
    out.data = out.data * (k1 + 1) / (out.data + row_norm)
    return out.tocsr()


def ndcg(docs: sp.csr_matrix, queries: sp.csr_matrix, qids: list[str], doc_ids: list[str], qrels) -> float:  # type: ignore[no-untyped-def]
    from sparsearch.eval.metrics import evaluate

    run, _ = _exhaustive_run(docs, queries, 0.0, qids, doc_ids)
    return evaluate({q: qrels[q] for q in qids if q in qrels}, run)["ndcg_cut_10"]


def mean_length(tokenizer, corpus: Path) -> float:  # type: ignore[no-untyped-def]
    """The training text's mean document length in WordPiece tokens: the fixed ``A``."""
    from sparsearch.eval.datasets import load_beir

    texts = [d.contents for d in load_beir(corpus, "dev").corpus()]
    return float(token_counts(tokenizer, texts, tokenizer.get_vocab_size())[1].mean())


def dev_grid(args: argparse.Namespace) -> dict[str, object]:
    from sparsearch.retriever.registry import build_encoder

    vectors = read_vectors(list(args.vectors.glob("*.npz")))
    doc_ids, learned = vectors["dev"]
    dev = _dev_sample(args.gen, 8000)
    if doc_ids != list(dev.doc_ids):
        raise SystemExit("the dumped dev vectors are not this dev sample (rebuild the training text or re-dump)")
    encoder = build_encoder("inference-free", {"model_dir": str(args.model)})
    tokenizer = encoder.queries.tokenizer
    avg = mean_length(tokenizer, args.gen)
    counts, lengths = token_counts(tokenizer, dev.texts, learned.shape[1])
    qids = list(dev.queries)
    terms = encoder.queries.encode([dev.queries[q] for q in qids])
    q = _query_matrix(terms, encoder.queries.weights, len(qids), learned.shape[1])
    rows = []
    for beta, k1, b in itertools.product(args.betas, args.k1s, args.bs):
        if beta == 0 and (k1, b) != (args.k1s[0], args.bs[0]):
            continue
        docs = learned + beta * saturated(counts, lengths, k1, b, avg) if beta else learned
        score = ndcg(docs.tocsr(), q, qids, dev.doc_ids, dev.qrels)
        rows.append({"beta": beta, "k1": k1, "b": b, "ndcg_cut_10": round(score, 4)})
        log.info("%s", rows[-1])
    best = max(rows, key=lambda r: r["ndcg_cut_10"])
    return {"avg_length": round(avg, 2), "queries": len(qids), "documents": len(dev.doc_ids), "grid": rows,
            "chosen": best}


def test_table(args: argparse.Namespace) -> dict[str, object]:
    from sparsearch.eval.datasets import load_beir
    from sparsearch.retriever.idf import bm25_form_idf, document_frequencies
    from sparsearch.retriever.registry import build_encoder

    vectors = read_vectors(list(args.vectors.glob("*.npz")))
    encoder = build_encoder("inference-free", {"model_dir": str(args.model)})
    tokenizer = encoder.queries.tokenizer
    out: dict[str, object] = {"setting": {"beta": args.beta, "k1": args.k1, "b": args.b, "avg_length": args.avg_length}}
    for name, rel in SETS.items():
        dataset = load_beir(args.data / rel, "test")
        docs = {d.doc_id: d.contents for d in dataset.corpus()}
        doc_ids, learned = vectors[name]
        texts = [docs[d] for d in doc_ids]
        counts, lengths = token_counts(tokenizer, texts, learned.shape[1])
        lexical = saturated(counts, lengths, args.k1, args.b, args.avg_length)
        qids = list(dataset.queries)
        terms = encoder.queries.encode([dataset.queries[q] for q in qids])
        df, n = document_frequencies(texts, args.model)
        row: dict[str, float] = {"bm25": bm25_ndcg(args.data / rel)}
        for idf_name, weights in (("model_idf", encoder.queries.weights), ("corpus_idf", bm25_form_idf(df, n))):
            q = _query_matrix(terms, weights, len(qids), learned.shape[1])
            row[f"{idf_name}"] = round(ndcg(learned, q, qids, doc_ids, dataset.qrels), 4)
            row[f"{idf_name}+lexical"] = round(ndcg((learned + args.beta * lexical).tocsr(), q, qids, doc_ids,
                                                   dataset.qrels), 4)
        out[name] = row
        log.info("%s %s", name, row)
    keys = [k for k in next(v for k, v in out.items() if k != "setting")]
    out["mean"] = {k: round(float(np.mean([out[s][k] for s in SETS])), 4) for k in keys}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dev")
    d.add_argument("--vectors", type=Path, required=True)
    d.add_argument("--model", type=Path, required=True)
    d.add_argument("--gen", type=Path, required=True)
    d.add_argument("--betas", type=float, nargs="+", default=[0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0])
    d.add_argument("--k1s", type=float, nargs="+", default=[0.9, 1.2])
    d.add_argument("--bs", type=float, nargs="+", default=[0.0, 0.4, 0.75])
    d.add_argument("--report", type=Path, required=True)
    t = sub.add_parser("test")
    t.add_argument("--vectors", type=Path, required=True)
    t.add_argument("--model", type=Path, required=True)
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--beta", type=float, required=True)
    t.add_argument("--k1", type=float, required=True)
    t.add_argument("--b", type=float, required=True)
    t.add_argument("--avg-length", type=float, required=True)
    t.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result = dev_grid(args) if args.command == "dev" else test_table(args)
    write_reports(result, args.report)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

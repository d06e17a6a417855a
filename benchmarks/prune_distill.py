"""Pruning runs that fine-tune (structured + distillation, gradual magnitude), on a GPU; results shipped small.

    python benchmarks/prune_distill.py --model models/inference-free-biomed --data DATA --out OUT \
        --device cuda --bf16 --steps 1200

Distils on the unlabelled documents of SciFact's and NFCorpus' corpora (the
corpora the shipped model was trained on; no queries, no qrels), so nothing is
chosen on test data.  The word embeddings (= the tied vocabulary projection) are
frozen, so each result ships without them: ``OUT/NAME.safetensors`` (fp16, the
other weights), ``OUT/NAME.json`` (the pruning record and config), and
:func:`rebuild` puts a loadable folder back together from the source model.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

VARIANTS = {
    # name: (plan arguments)
    "drop3": {"steps": [{"method": "structured", "drop_layers": 3}], "distill": True},
    "drop4": {"steps": [{"method": "structured", "drop_layers": 4}], "distill": True},
    # Fixed choices that keep the first layer (fed the embeddings it was trained on) and the last (whose
    # states the tied vocabulary head reads), spacing the rest: the layer map stays monotone and aligned at both ends.
    "drop3-keep035": {"steps": [{"method": "structured", "layers": [1, 2, 4]}], "distill": True},
    "drop4-keep05": {"steps": [{"method": "structured", "layers": [1, 2, 3, 4]}], "distill": True},
    "drop2-ffn50": {"steps": [{"method": "structured", "drop_layers": 2, "ffn_fraction": 0.5}], "distill": True},
    "gradual80-b4": {"steps": [{"method": "gradual", "sparsity": 0.8, "block": [4, 1], "scope": "layer"}],
                     "distill": False},
}


def corpus_texts(data: Path, names: list[str], limit: int | None = None) -> list[str]:
    from sparsearch.corpus import read_corpus

    texts: list[str] = []
    for name in names:
        texts += [d.contents for d in read_corpus(data / "beir" / name)]
    return texts[:limit] if limit else texts


def shippable(folder: Path, out: Path, name: str) -> None:
    """The non-embedding weights (fp16) and the folder's JSON files, beside each other in ``out``."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(folder / "model.safetensors"))
    keep = {k: v.half().contiguous() for k, v in weights.items() if "word_embeddings" not in k and "decoder.weight" not in k}
    save_file(keep, str(out / f"{name}.safetensors"))
    meta = {f: json.loads((folder / f).read_text()) for f in ("config.json", "sparsearch_pruning.json")}
    (out / f"{name}.json").write_text(json.dumps(meta))


def rebuild(shipped: Path, name: str, source: Path, out: Path) -> Path:
    """A loadable pruned folder from ``shipped/NAME.*`` and the unpruned ``source`` (its embeddings, tokenizer)."""
    import shutil

    from safetensors.torch import load_file, save_file

    meta = json.loads((shipped / f"{name}.json").read_text())
    weights = load_file(str(source / "model.safetensors"))
    state = {k: v for k, v in weights.items() if "word_embeddings" in k}
    state.update(load_file(str(shipped / f"{name}.safetensors")))
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    for f, content in meta.items():
        (out / f).write_text(json.dumps(content, indent=2))
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "idf.json"):
        if (source / f).exists():
            shutil.copyfile(source / f, out / f)
    return out


def continue_distillation(init: Path, source: Path, out: Path, texts: list[str], config) -> list[float]:  # noqa: ANN001
    """More distillation of an already pruned folder ``init`` towards the unpruned ``source``, saved to ``out``.

    For a second, longer-text round on a student trained cheaply first (the
    CPU fallback when no GPU is available); the record keeps both rounds.
    """
    import torch

    from sparsearch.pruning.distill import distill
    from sparsearch.pruning.pipeline import distill_report, tokenise_samples
    from sparsearch.pruning.store import read_record, save_pruned
    from sparsearch.retriever.mlm import load_masked_lm

    student, teacher = load_masked_lm(init), load_masked_lm(source)
    layer_map = read_record(init)["runtime"]["layer_map"]
    rows = tokenise_samples(source, texts, config.max_length)
    losses = distill(student, teacher, rows, config, layer_map=layer_map)
    report = distill_report(student, config, losses, max_length=config.max_length, continued_from=str(init))
    with torch.no_grad():
        save_pruned(student, init, out, [report])
    return losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("SPARSEARCH_DATA", "../shared/data")))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max-length", type=int, default=256, help="tokens per distillation text")
    ap.add_argument("--max-seconds", type=float, default=None, help="per variant")
    ap.add_argument("--limit", type=int, default=None, help="at most this many documents (tests)")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--init", type=Path, help="continue distilling this pruned folder instead (one output: --out)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from sparsearch.pruning.base import PruneConfig
    from sparsearch.pruning.distill import DistillConfig
    from sparsearch.pruning.pipeline import PrunePlan, prune_folder

    texts = corpus_texts(args.data, ["scifact", "nfcorpus"], args.limit)
    dcfg = DistillConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, device=args.device,
                         bf16=args.bf16, max_length=args.max_length, warmup_steps=max(1, args.steps // 20), max_seconds=args.max_seconds)
    if args.init:
        losses = continue_distillation(args.init, args.model, args.out, texts, dcfg)
        print(json.dumps({"steps": len(losses), "first_loss": losses[0], "final_loss": losses[-1]}))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name in args.variants:
        spec = VARIANTS[name]
        steps = tuple(PruneConfig(**{**s, **{k: tuple(s[k]) for k in ("block", "layers") if k in s}})
                      for s in spec["steps"])
        plan = PrunePlan(steps, distill=dcfg, distill_steps=args.steps if spec["distill"] else 0)
        t = time.time()
        folder = Path("/tmp/prune_distill") / name
        reports = prune_folder(args.model, folder, plan, texts)
        shippable(folder, args.out, name)
        summary[name] = {"seconds": time.time() - t, "reports": [r.config for r in reports]}
        print(name, json.dumps(summary[name]), flush=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

"""``sparsearch prune MODEL --method … --out DIR``: smaller or sparser document encoders (docs/pruning.md).

Methods stack in the order given (``--method structured --method int8``); the
result is a model folder every loading path reads (``--model DIR`` for index,
eval, serve).  ``--preset fast`` is the best point measured on these 2 CPU cores.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import List, Optional

import typer

from sparsearch.cli_common import _fail
from sparsearch.errors import SparsearchError

log = logging.getLogger(__name__)

#: ``--preset`` name -> (the methods' options, distillation steps); docs/pruning.md has the measurements.
#: "fast": the 50 % most used vocabulary rows + the transformer in bfloat16 (int8 per channel where bfloat16
#: is not native): 2.2x the unpruned inference-free model's throughput at -0.003 mean NDCG@10 on SciFact +
#: NFCorpus on an AVX512-BF16 CPU (needs --sample).  Chosen over vocabulary + int8 by how close its document
#: vectors stay to the unpruned model's on unlabelled documents (cosine 0.9999 vs 0.98), not by test NDCG.
PRESETS: dict[str, tuple[list[dict], int]] = {
    "fast": ([{"method": "vocab", "vocab_keep": 0.5}, {"method": "bf16", "bf16_fallback": "int8"}], 0),
}


def _pair(text: str, sep: str, what: str) -> tuple[int, int]:
    try:
        a, b = (int(x) for x in text.lower().split(sep))
    except ValueError:
        raise SparsearchError(f"{what} must look like 4{sep}1, got {text!r}") from None
    return a, b


def _indices(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise SparsearchError(f"--layers must be comma-separated layer indices, e.g. 1,2,4; got {text!r}") from None


def _sample_texts(paths: list[Path], size: int) -> list[str]:
    """Up to ``size`` documents spread evenly over the given corpora (unlabelled: no queries are read)."""
    from sparsearch.corpus import read_corpus

    texts: list[str] = []
    per = max(1, size // max(1, len(paths)))
    for path in paths:
        docs = [d.contents for d in read_corpus(path)]
        step = max(1, len(docs) // per)
        texts += docs[::step][:per]
    return texts


def prune_command(
    model: str = typer.Argument(..., help="A model folder, a shipped model name or a Hugging Face id."),
    out: Path = typer.Option(..., "--out", help="Folder to write the pruned model to."),
    method: Optional[List[str]] = typer.Option(None, "--method", help="magnitude, gradual, nm, structured, int8, bf16 "
                                               "or vocab; repeat to stack, applied in order."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A measured recipe instead of --method: fast."),
    sparsity: float = typer.Option(0.5, help="Fraction of prunable weights zeroed (magnitude, gradual)."),
    scope: str = typer.Option("global", help="global (rank all layers together) or layer."),
    block: str = typer.Option("1x1", help="Prune rows x cols blocks (e.g. 16x1, what the sparse kernel needs)."),
    nm: str = typer.Option("2:4", "--nm", help="N:M pattern for --method nm."),
    drop_layers: int = typer.Option(0, help="structured: remove this many least influential layers."),
    heads: float = typer.Option(0.0, help="structured: fraction of attention heads removed per layer."),
    ffn: float = typer.Option(0.0, help="structured: fraction of FFN neurons removed per layer."),
    importance: str = typer.Option("magnitude", help="structured: magnitude or gradient."),
    vocab_keep: float = typer.Option(0.5, help="vocab: fraction of vocabulary rows kept (the most used terms)."),
    int8_granularity: str = typer.Option("per_channel", help="int8: one scale per weight row (per_channel) or "
                                         "per matrix (per_tensor)."),
    bf16_fallback: str = typer.Option("float32", help="bf16: what runs where bfloat16 is not native "
                                      "(float32 or int8)."),
    layers: Optional[str] = typer.Option(None, help="structured: remove these layers (comma-separated indices) "
                                         "instead of the --drop-layers least influential."),
    kernel_rows: int = typer.Option(0, help="Run layers >= 70% zero on the Numba block kernel with this many "
                                    "rows per block (1 = CSR; 0 = dense BLAS)."),
    sample: Optional[List[Path]] = typer.Option(None, "--sample", help="Corpus (corpus.jsonl or BEIR folder) whose "
                                                "documents feed importance, vocabulary usage and distillation."),
    sample_size: int = typer.Option(1000, help="Documents taken from --sample."),
    distill_steps: int = typer.Option(0, help="Fine-tune towards the unpruned model afterwards (SquareHead)."),
    steps: int = typer.Option(200, help="gradual: fine-tuning steps."),
    batch_size: int = typer.Option(16, help="Distillation batch size."),
    lr: float = typer.Option(5e-5, help="Distillation learning rate."),
    device: str = typer.Option("cpu", help="Distillation device (cpu, cuda)."),
    fp16: bool = typer.Option(False, "--fp16", help="Save weights in float16 (half the size on disk)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
) -> None:
    """Prune a SPLADE or inference-free document encoder into a new model folder, with a record of how."""
    try:
        from sparsearch.pruning.base import PruneConfig
        from sparsearch.pruning.distill import DistillConfig
        from sparsearch.pruning.pipeline import PrunePlan, prune_folder
        from sparsearch.retriever.resolve import resolve_model_dir

        if bool(method) == bool(preset):
            raise SparsearchError("give --method (one or more) or --preset, not both and not neither")
        if preset is not None and preset not in PRESETS:
            raise SparsearchError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
        if out.exists() and any(out.iterdir()):
            if not overwrite:
                raise SparsearchError(f"{out} exists and is not empty (use --overwrite)")
            shutil.rmtree(out)
        source = Path(resolve_model_dir(model, None)[0])
        n, m = _pair(nm, ":", "--nm")
        common = dict(sparsity=sparsity, scope=scope, block=_pair(block, "x", "--block"), n=n, m=m,
                      drop_layers=drop_layers, heads_fraction=heads, ffn_fraction=ffn, importance=importance,
                      vocab_keep=vocab_keep, int8_granularity=int8_granularity,
                      bf16_fallback=bf16_fallback, layers=_indices(layers))
        if preset is not None:
            specs, distill_steps = PRESETS[preset]
            configs = tuple(PruneConfig(**{**common, **spec}) for spec in specs)
        else:
            configs = tuple(PruneConfig(method=name, **common) for name in method or [])  # type: ignore[arg-type]
        needs_sample = any(c.method in ("gradual", "vocab") or (c.drop_layers and not c.layers)
                           or c.importance == "gradient"
                           for c in configs) or distill_steps > 0
        if needs_sample and not sample:
            raise SparsearchError("this method needs sample documents: --sample CORPUS")
        texts = _sample_texts(list(sample or []), sample_size) if needs_sample else []
        dcfg = DistillConfig(steps=steps, batch_size=batch_size, lr=lr, device=device)
        plan = PrunePlan(configs, distill=dcfg, distill_steps=distill_steps, fp16=fp16, kernel_rows=kernel_rows)
        reports = prune_folder(source, out, plan, texts)
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    for r in reports:
        typer.echo(json.dumps({"method": r.method, "sparsity": round(r.sparsity, 4),
                               "parameters": [r.parameters_before, r.parameters_after]}))
    typer.echo(f"wrote {out}", err=True)

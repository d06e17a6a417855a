"""Prune a model folder into a new folder: load, run the methods in order, optionally distil, save.

Shared by ``sparsearch prune`` and ``benchmarks/prune_report.py``.  Sample
documents (tokenised once) feed every data-dependent step: gradient
importance, layer choice, vocabulary usage and distillation.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from sparsearch.pruning import pruner_for
from sparsearch.pruning.base import PruneConfig, PruneReport, PruningError, count_parameters
from sparsearch.pruning.distill import DistillConfig, distill

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrunePlan:
    """Methods applied in order (a stack), then optional distillation back to the unpruned model.

    ``distill_steps`` > 0 fine-tunes the result towards the original with
    SquareHead + output distillation (masks of magnitude / N:M steps are kept);
    the gradual method always fine-tunes (its own schedule, ``distill`` settings).
    """

    steps: tuple[PruneConfig, ...]
    distill: DistillConfig = field(default_factory=DistillConfig)
    distill_steps: int = 0
    fp16: bool = False
    kernel_rows: int = 0  # > 0: run sparse linear layers on the rows×1 block kernel at load time
    kernel_min_sparsity: float = 0.7

    def __post_init__(self) -> None:
        if not self.steps:
            raise PruningError("a prune plan needs at least one method")


def tokenise_samples(model_dir: str | Path, texts: Sequence[str], max_length: int = 256) -> list[list[int]]:
    from sparsearch.retriever.splade import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    tokenizer.enable_truncation(max_length)
    return [e.ids for e in tokenizer.encode_batch(list(texts), add_special_tokens=True)]


def distill_report(model, config: DistillConfig, losses: Sequence[float], **extra: object) -> PruneReport:  # noqa: ANN001
    """The record of a distillation run (no parameters change: only their values)."""
    n = count_parameters(model)
    settings = {"steps": len(losses), "lr": config.lr, "batch_size": config.batch_size, **extra,
                "first_loss": losses[0], "final_loss": losses[-1]}
    return PruneReport("distill", settings, 0.0, n, n)


def prune_folder(model_dir: str | Path, out: str | Path, plan: PrunePlan,
                 sample_texts: Sequence[str] = ()) -> list[PruneReport]:
    """Write the pruned model of ``model_dir`` to ``out`` (see :mod:`sparsearch.pruning.store`)."""
    import torch

    from sparsearch.pruning.base import apply_masks, prunable_linears
    from sparsearch.pruning.structured import zero_heads
    from sparsearch.pruning.store import save_pruned
    from sparsearch.retriever.mlm import load_masked_lm

    model = load_masked_lm(model_dir)
    teacher = copy.deepcopy(model) if plan.distill_steps else None
    rows = tokenise_samples(model_dir, sample_texts, plan.distill.max_length) if sample_texts else []
    reports: list[PruneReport] = []
    layer_map: list[int] | None = None
    for config in plan.steps:
        log.info("pruning: %s", config)
        report = pruner_for(config, rows, plan.distill).prune(model, config)
        layer_map = report.runtime.get("layer_map", layer_map)
        reports.append(report)
    if plan.distill_steps:
        if not rows:
            raise PruningError("distillation needs sample documents")
        # Keep every zero a magnitude, N:M or head step made: re-imposed after each optimiser step.
        masks = {name: layer.weight.detach() != 0 for name, layer in prunable_linears(model).items()}
        masks = {name: m for name, m in masks.items() if not m.all()}
        heads = {int(k): v for k, v in next((r.runtime["pruned_heads"] for r in reports
                                             if r.runtime.get("pruned_heads")), {}).items()}

        def keep_pruned(step: int) -> None:
            apply_masks(model, masks)
            if heads:
                zero_heads(model, heads)

        dcfg = DistillConfig(**{**vars(plan.distill), "steps": plan.distill_steps})
        losses = distill(model, teacher, rows, dcfg, layer_map=layer_map, on_step=keep_pruned)
        reports.append(distill_report(model, dcfg, losses, steps=plan.distill_steps))
    extra = {}
    if plan.kernel_rows:
        extra["kernel"] = {"rows": plan.kernel_rows, "min_sparsity": plan.kernel_min_sparsity}
    with torch.no_grad():
        save_pruned(model, model_dir, out, reports, fp16=plan.fp16, extra_runtime=extra)
    return reports

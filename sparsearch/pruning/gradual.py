"""Gradual magnitude pruning during fine-tuning, distilled from the unpruned model.

Zhu & Gupta (2017): prune to the cubic schedule of :mod:`sparsearch.pruning.schedule`
while training continues, so the network re-learns around each cut; here the
training signal is SquareHead + output distillation from the unpruned model
(:mod:`sparsearch.pruning.distill`), which needs no relevance labels.
Between updates the current mask is re-applied after every optimiser step, so
pruned weights stay exactly zero.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from sparsearch.pruning.base import (
    PruneConfig,
    PruneReport,
    apply_masks,
    count_parameters,
    weight_sparsity,
)
from sparsearch.pruning.distill import DistillConfig, distill
from sparsearch.pruning.magnitude import magnitude_masks
from sparsearch.pruning.schedule import CubicSchedule


class GradualPruner:
    """Cubic-schedule magnitude pruning inside a distillation run over ``token_rows``."""

    name = "gradual"

    def __init__(self, token_rows: Sequence[Sequence[int]], distill_config: DistillConfig,
                 schedule: CubicSchedule | None = None, pad_id: int = 0) -> None:
        self.token_rows = token_rows
        self.distill_config = distill_config
        self.schedule = schedule
        self.pad_id = pad_id
        self.history: list[tuple[int, float]] = []  # (step, sparsity) at every mask update
        self.losses: list[float] = []

    def prune(self, model: nn.Module, config: PruneConfig) -> PruneReport:
        before = count_parameters(model)
        steps = self.distill_config.steps
        schedule = self.schedule or CubicSchedule(final=config.sparsity, start=0, every=max(1, steps // 20),
                                                  n_updates=max(1, (steps * 2 // 3) // max(1, steps // 20)))
        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        masks: dict[str, torch.Tensor] = {}

        def on_step(step: int) -> None:
            nonlocal masks
            final_call = step >= steps  # the last call: the target, even if a time budget cut training short
            if schedule.is_update(step) or final_call:
                s = config.sparsity if final_call else schedule.sparsity(step)
                masks = magnitude_masks(model, s, config.scope, config.block)
                self.history.append((step, s))
            if masks:
                apply_masks(model, masks)

        self.losses = distill(model, teacher, self.token_rows, self.distill_config, pad_id=self.pad_id,
                              on_step=on_step)
        return PruneReport("gradual", {"sparsity": config.sparsity, "scope": config.scope, "block": list(config.block),
                                       "steps": steps, "schedule": vars(schedule).copy(),
                                       "final_loss": self.losses[-1]},
                           weight_sparsity(model), before, before)

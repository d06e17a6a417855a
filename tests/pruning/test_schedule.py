"""The cubic schedule of Zhu & Gupta at every step, and gradual pruning following it while it distils."""

from __future__ import annotations

import pytest
import torch

from pruning.conftest import random_bert
from sparsearch.pruning.base import PruneConfig, prunable_linears
from sparsearch.pruning.distill import DistillConfig
from sparsearch.pruning.gradual import GradualPruner
from sparsearch.pruning.schedule import CubicSchedule


def test_cubic_schedule_matches_the_formula_at_every_step() -> None:
    s = CubicSchedule(final=0.8, initial=0.1, start=10, every=5, n_updates=4)
    for t in range(0, 60):
        if t <= 10:
            expected = 0.1
        elif t >= 30:
            expected = 0.8
        else:
            expected = 0.8 + (0.1 - 0.8) * (1 - (t - 10) / 20) ** 3
        assert s.sparsity(t) == pytest.approx(expected, abs=1e-12), t
    assert [t for t in range(60) if s.is_update(t)] == [10, 15, 20, 25, 30]


def test_cubic_schedule_hand_values() -> None:
    s = CubicSchedule(final=0.8, start=10, every=5, n_updates=4)
    assert s.sparsity(15) == pytest.approx(0.8 - 0.8 * 0.75 ** 3)  # 0.4625
    assert s.sparsity(20) == pytest.approx(0.7)
    assert s.sparsity(25) == pytest.approx(0.8 - 0.8 / 64)


def test_gradual_pruning_follows_the_schedule_and_ends_exact() -> None:
    model = random_bert(vocab=60)
    torch.manual_seed(1)
    rows = [[2] + torch.randint(5, 60, (12,)).tolist() + [3] for _ in range(16)]
    schedule = CubicSchedule(final=0.7, start=0, every=2, n_updates=3)
    pruner = GradualPruner(rows, DistillConfig(steps=8, batch_size=4, lr=1e-3, warmup_steps=1), schedule)
    report = pruner.prune(model, PruneConfig(method="gradual", sparsity=0.7, scope="layer"))
    assert [step for step, _ in pruner.history[:4]] == [0, 2, 4, 6]
    assert [s for _, s in pruner.history[:4]] == pytest.approx([schedule.sparsity(t) for t in (0, 2, 4, 6)])
    for layer in prunable_linears(model).values():  # masks re-applied after the last optimiser step
        assert int((layer.weight == 0).sum()) == round(0.7 * layer.weight.numel())
    assert report.sparsity == pytest.approx(0.7, abs=1e-3)
    assert len(pruner.losses) == 8 and all(l == l for l in pruner.losses)

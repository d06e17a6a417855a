"""Weight schedules of the regularisers, as their own objects (sentence-transformers' scheduler idea)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuadraticWarmup:
    """``λ(t) = λ · min(1, t/T)²`` (SPLADE; Formal et al. 2021): sparsity pressure grows once ranking is learnt."""

    final: float
    steps: int

    def __call__(self, step: int) -> float:
        if self.steps <= 0:
            return self.final
        return self.final * min(1.0, step / self.steps) ** 2

"""The cubic sparsity schedule of gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune").

``s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nΔt))³`` for ``t0 ≤ t ≤ t0 + nΔt``:
prune fast while many redundant weights remain, slowly near the target, so
training has time to recover.  Masks are recomputed only every ``Δt`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparsearch.pruning.base import PruningError


@dataclass(frozen=True)
class CubicSchedule:
    """Sparsity from ``initial`` at step ``start`` to ``final`` after ``n_updates`` updates ``every`` steps apart."""

    final: float
    initial: float = 0.0
    start: int = 0
    every: int = 10
    n_updates: int = 10

    def __post_init__(self) -> None:
        if not 0.0 <= self.initial <= self.final < 1.0:
            raise PruningError(f"need 0 <= initial <= final < 1, got {self.initial}, {self.final}")
        if self.every < 1 or self.n_updates < 1 or self.start < 0:
            raise PruningError("every and n_updates must be >= 1 and start >= 0")

    @property
    def end(self) -> int:
        return self.start + self.n_updates * self.every

    def sparsity(self, step: int) -> float:
        """``s_t`` of the formula (``initial`` before ``start``, ``final`` after the end)."""
        if step <= self.start:
            return self.initial
        if step >= self.end:
            return self.final
        progress = (step - self.start) / (self.n_updates * self.every)
        return self.final + (self.initial - self.final) * (1.0 - progress) ** 3

    def is_update(self, step: int) -> bool:
        """Masks are recomputed at ``start``, ``start + Δt``, … , ``end``."""
        return self.start <= step <= self.end and (step - self.start) % self.every == 0

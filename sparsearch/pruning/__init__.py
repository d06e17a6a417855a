"""Encoder pruning and sparse kernels (``sparsearch prune``; docs/pruning.md).

One module per method behind :class:`~sparsearch.pruning.base.Pruner`;
:func:`pruner_for` builds the one a :class:`~sparsearch.pruning.base.PruneConfig` names.
Imports torch; the sparse kernels (numba) load only when a model uses them.
"""

from __future__ import annotations

from typing import Sequence

from sparsearch.pruning.base import METHODS, PruneConfig, PruneReport, Pruner, PruningError

__all__ = ["METHODS", "PruneConfig", "PruneReport", "Pruner", "PruningError", "pruner_for"]


def pruner_for(config: PruneConfig, token_rows: Sequence[Sequence[int]] | None = None,
               distill_config: "object | None" = None) -> Pruner:
    """The pruner of ``config.method``; ``token_rows`` are tokenised sample documents (gradient importance,
    layer choice, vocabulary usage, gradual fine-tuning)."""
    if config.method == "magnitude":
        from sparsearch.pruning.magnitude import MagnitudePruner

        return MagnitudePruner()
    if config.method == "nm":
        from sparsearch.pruning.nm import NMPruner

        return NMPruner()
    if config.method == "structured":
        from sparsearch.pruning.structured import StructuredPruner

        return StructuredPruner(token_rows)
    if config.method == "int8":
        from sparsearch.pruning.quantize import Int8Pruner

        return Int8Pruner()
    if config.method == "bf16":
        from sparsearch.pruning.quantize import Bf16Pruner

        return Bf16Pruner()
    if config.method == "vocab":
        from sparsearch.pruning.vocab import VocabPruner

        return VocabPruner(token_rows or [])
    from sparsearch.pruning.distill import DistillConfig
    from sparsearch.pruning.gradual import GradualPruner

    if not token_rows:
        raise PruningError("gradual pruning fine-tunes on sample documents: none given")
    return GradualPruner(token_rows, distill_config if isinstance(distill_config, DistillConfig) else DistillConfig())

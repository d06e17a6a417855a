"""Dynamic int8 quantisation: the baseline pruning must beat, or stack with.

``torch.ao.quantization.quantize_dynamic`` stores each ``nn.Linear`` weight in
int8 (per-tensor scale) and quantises activations on the fly per batch: no
calibration data, ~1.5–2× on the linear layers of these AVX2 cores (fbgemm).
Stacks with every pruning method: zeros stay zeros, and a smaller
structurally pruned model gets the same ratio again.  Weights are kept in
float in the saved folder and quantised when the model is loaded
(``runtime.int8`` in ``sparsearch_pruning.json``): a quantised module has no
Hugging Face layout.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from sparsearch.pruning.base import PruneConfig, PruneReport, count_parameters, weight_sparsity


def quantize_int8(model: nn.Module, include_head: bool = False) -> nn.Module:
    """Quantise the transformer's linear layers in place (and the head transform with ``include_head``).

    The tied vocabulary projection is not an ``nn.Linear`` call on this path
    (the SPLADE pooling multiplies by the decoder matrix itself), so it stays
    float32 and the exact screening of :mod:`sparsearch.retriever.mlm` applies.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        target = model.bert if hasattr(model, "bert") else model
        torch.ao.quantization.quantize_dynamic(target, {nn.Linear}, dtype=torch.qint8, inplace=True)
        if include_head and hasattr(model, "cls"):
            torch.ao.quantization.quantize_dynamic(model.cls.predictions.transform, {nn.Linear},
                                                   dtype=torch.qint8, inplace=True)
    return model


class Int8Pruner:
    """Marks a model for int8 at load time (weights unchanged on disk)."""

    name = "int8"

    def prune(self, model: nn.Module, config: PruneConfig) -> PruneReport:
        n = count_parameters(model)
        return PruneReport("int8", {}, weight_sparsity(model), n, n, runtime={"int8": True})

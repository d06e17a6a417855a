"""Quantisation: the baseline pruning must beat, or stack with.

Two kinds, both applied when a model is loaded (weights stay float on disk;
the record's ``runtime`` says what to redo, see :mod:`sparsearch.pruning.store`):

* **int8** (``torch.ao.quantization.quantize_dynamic``, fbgemm): each
  ``nn.Linear`` weight in int8, activations quantised on the fly per batch; no
  calibration data.  Per output channel by default: one scale per weight row
  halves the error of one scale per matrix (mean relative error of the
  document vectors 0.20 vs 0.28 on SciFact/NFCorpus documents) at the same
  speed.  Fast everywhere fbgemm runs (AVX2; VNNI more so).
* **bf16**: the transformer in bfloat16.  Rounding only the mantissa keeps the
  document vectors within ~1 % of float32 (cosine 0.9999 against 0.98 for
  int8), and on CPUs with native bfloat16 products (AVX512-BF16, AMX) or a GPU
  it runs as fast as int8.  Elsewhere bfloat16 is emulated and slower than
  float32, so the loader falls back (to float32, or to int8 when the folder
  says so) and logs it.

Both stack with every pruning method: zeros stay zeros, and a smaller
structurally pruned model gets the same ratio again.  The tied vocabulary
projection stays float32 in both (the exact screening of
:mod:`sparsearch.retriever.mlm` handles it).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from sparsearch.pruning.base import PruneConfig, PruneReport, count_parameters, weight_sparsity

log = logging.getLogger(__name__)

PER_CHANNEL = "per_channel"
PER_TENSOR = "per_tensor"


def quantize_int8(model: nn.Module, include_head: bool = False, granularity: str = PER_CHANNEL) -> nn.Module:
    """Quantise the transformer's linear layers in place (and the head transform with ``include_head``).

    The tied vocabulary projection is not an ``nn.Linear`` call on this path
    (the SPLADE pooling multiplies by the decoder matrix itself), so it stays
    float32 and the exact screening of :mod:`sparsearch.retriever.mlm` applies.
    """
    from torch.ao import quantization as tq

    qconfig = tq.per_channel_dynamic_qconfig if granularity == PER_CHANNEL else tq.default_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        targets = [model.bert if hasattr(model, "bert") else model]
        if include_head and hasattr(model, "cls"):
            targets.append(model.cls.predictions.transform)
        for target in targets:
            tq.quantize_dynamic(target, {nn.Linear: qconfig}, dtype=torch.qint8, inplace=True)
    return model


class Bf16Backbone(nn.Module):
    """A bfloat16 transformer whose last hidden state comes back in float32 for the float32 head."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.inner = backbone.to(torch.bfloat16)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.inner(*args, **kwargs)
        out.last_hidden_state = out.last_hidden_state.float()
        return out


def backbone_in_bf16(parts: Any) -> Any:
    """``parts`` with the backbone in bfloat16 and the decoder kept float32.

    The decoder is tied to the word embeddings, which the cast would round: it
    is copied out in float32 first.
    """
    decoder = parts.decoder_weight.detach().float().clone()
    bias = None if parts.decoder_bias is None else parts.decoder_bias.detach().float().clone()
    return replace(parts, backbone=Bf16Backbone(parts.backbone), decoder_weight=decoder, decoder_bias=bias)


def apply_bf16(model: nn.Module, parts: Any, fallback: str) -> Any:
    """bfloat16 where it is native; elsewhere ``fallback``: ``int8`` (per channel, CPU) or ``float32``.

    A folder is made once and loaded on many machines: the choice is made
    here, at load time, from what this device can do fast.
    """
    from sparsearch.retriever import mlm

    device = parts.decoder_weight.device
    if mlm.native_bf16(device):
        return backbone_in_bf16(parts)
    if fallback == "int8" and device.type == "cpu":
        log.info("bf16 model on a CPU without native bfloat16 products: int8 per channel instead")
        quantize_int8(model)
    else:
        log.warning("bf16 model on a device without native bfloat16 products (%s): running float32", device)
    return parts


class Int8Pruner:
    """Marks a model for int8 at load time (weights unchanged on disk)."""

    name = "int8"

    def prune(self, model: nn.Module, config: PruneConfig) -> PruneReport:
        n = count_parameters(model)
        return PruneReport("int8", {"granularity": config.int8_granularity}, weight_sparsity(model), n, n,
                           runtime={"int8": config.int8_granularity})


class Bf16Pruner:
    """Marks a model's transformer for bfloat16 at load time (weights unchanged on disk)."""

    name = "bf16"

    def prune(self, model: nn.Module, config: PruneConfig) -> PruneReport:
        n = count_parameters(model)
        return PruneReport("bf16", {"fallback": config.bf16_fallback}, weight_sparsity(model), n, n,
                           runtime={"bf16": True, "bf16_fallback": config.bf16_fallback})

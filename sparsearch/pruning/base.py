"""What every pruning method shares: its settings, its report, and the weights it may touch.

Methods live one per module (``magnitude``, ``nm``, ``structured``, ``gradual``,
``quantize``, ``vocab``) behind :class:`Pruner`; ``store`` saves the result in a
Hugging Face folder plus ``sparsearch_pruning.json`` so that every loading path
(CLI, Python, HTTP) reads a pruned model as it reads any other.

Only the linear layers of the transformer and of the MLM head transform are
prunable: the word embeddings are tied to the vocabulary projection (zeroing one
would zero the other), and LayerNorms and biases are a negligible share of the
compute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from torch import nn

from sparsearch.errors import SparsearchError

Method = Literal["magnitude", "gradual", "nm", "structured", "int8", "bf16", "vocab"]
METHODS: tuple[str, ...] = ("magnitude", "gradual", "nm", "structured", "int8", "bf16", "vocab")


class PruningError(SparsearchError, ValueError):
    """Pruning settings that cannot apply to this model (a sparsity outside [0, 1), M not dividing a width...)."""


@dataclass(frozen=True)
class PruneConfig:
    """Settings of one pruning run; each method reads the fields it needs and ignores the rest.

    ``sparsity`` is the fraction of prunable weights set to zero (unstructured,
    block and gradual methods).  ``scope="global"`` ranks all prunable weights
    together (Jaiswal et al.'s essential-sparsity baseline), ``"layer"`` prunes
    each matrix to the same sparsity.  ``block`` = (rows, cols) prunes whole
    blocks of that shape by their L2 norm (1×1 is unstructured); sparse kernels
    pay only for blocks of several output rows.  ``n``/``m`` give N:M masks.
    Structured pruning removes ``layers`` (indices) or the ``drop_layers`` least
    important ones, the ``heads_fraction`` and
    ``ffn_fraction`` least important heads and FFN neurons of each layer, ranked by
    ``importance``.  ``int8_granularity``: one int8 scale per weight row
    (``per_channel``) or per matrix (``per_tensor``).  ``bf16_fallback``: what a
    ``bf16`` model runs as where bfloat16 is not native (``float32`` or ``int8``).
    """

    method: Method = "magnitude"
    sparsity: float = 0.5
    scope: Literal["global", "layer"] = "global"
    block: tuple[int, int] = (1, 1)
    n: int = 2
    m: int = 4
    layers: tuple[int, ...] = ()
    drop_layers: int = 0
    heads_fraction: float = 0.0
    ffn_fraction: float = 0.0
    importance: Literal["magnitude", "gradient"] = "magnitude"
    vocab_keep: float = 1.0
    kernel: Literal["none", "csr", "block"] = "none"
    int8: bool = False
    int8_granularity: Literal["per_channel", "per_tensor"] = "per_channel"
    bf16_fallback: Literal["float32", "int8"] = "float32"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise PruningError(f"unknown pruning method {self.method!r} (choose from {', '.join(METHODS)})")
        for name in ("sparsity", "heads_fraction", "ffn_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise PruningError(f"{name} must be in [0, 1), got {value}")
        if not 0.0 < self.vocab_keep <= 1.0:
            raise PruningError(f"vocab_keep must be in (0, 1], got {self.vocab_keep}")
        if not 0 < self.n < self.m:
            raise PruningError(f"N:M needs 0 < N < M, got {self.n}:{self.m}")
        if self.int8_granularity not in ("per_channel", "per_tensor"):
            raise PruningError(f"int8_granularity must be per_channel or per_tensor, got {self.int8_granularity!r}")
        if self.bf16_fallback not in ("float32", "int8"):
            raise PruningError(f"bf16_fallback must be float32 or int8, got {self.bf16_fallback!r}")
        if min(self.block) < 1:
            raise PruningError(f"block sides must be >= 1, got {self.block}")


@dataclass
class PruneReport:
    """What a method did, written into the model folder's ``sparsearch_pruning.json``.

    ``runtime`` holds what a loader must redo on the loaded weights (int8
    conversion, sparse kernels, removed heads, a vocabulary subset): things a
    Hugging Face folder cannot express.
    """

    method: str
    config: dict[str, Any]
    sparsity: float
    parameters_before: int
    parameters_after: int
    runtime: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Pruner(Protocol):
    """One pruning method: changes ``model`` (a ``*ForMaskedLM``) in place and says what it did."""

    name: str

    def prune(self, model: nn.Module, config: PruneConfig) -> PruneReport: ...


def prunable_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """The ``nn.Linear`` layers pruning may change, by module name (transformer layers and head transform).

    The tied vocabulary projection is excluded (it is the embedding matrix).
    """
    out: dict[str, nn.Linear] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and ".layer." in f".{name}" and "decoder" not in name:
            out[name] = module
        elif isinstance(module, nn.Linear) and name.endswith("transform.dense"):
            out[name] = module
    if not out:
        raise PruningError(f"{type(model).__name__} has no prunable linear layers")
    return out


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked-out weights (``False`` in the mask) of each named linear layer, in place."""
    linears = dict(model.named_modules())
    with torch.no_grad():
        for name, keep in masks.items():
            weight = linears[name].weight
            weight.mul_(keep.to(weight.device, weight.dtype))


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exact zeros over the prunable weights: what a sparse kernel can skip."""
    zeros = total = 0
    for layer in prunable_linears(model).values():
        zeros += int((layer.weight == 0).sum())
        total += layer.weight.numel()
    return zeros / total


def count_parameters(model: nn.Module) -> int:
    """Distinct parameters (the tied embedding / decoder matrix once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total

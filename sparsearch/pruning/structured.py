"""Structured pruning: remove whole attention heads, FFN neurons and layers of a BERT MLM.

The result is a smaller dense model, faster with any BLAS and no special
kernel.  Layers and FFN neurons change the Hugging Face shapes
(``num_hidden_layers``, ``intermediate_size``; the same number of neurons is
kept in every layer, because a BERT config has one width), so the folder loads
with ``AutoModelForMaskedLM`` as a genuinely smaller model.  A BERT config cannot
say that layers have different head counts, so removed heads are saved as zeros
(their value rows and output columns zero: exactly no contribution) and listed
in ``sparsearch_pruning.json``; sparsearch's loader cuts them out
(:func:`remove_heads`), other loaders compute the same outputs at full cost.

Importance: ``magnitude`` is the weight norm of a head's Q/K/V rows and output
columns, or of a neuron's input row times output column; ``gradient`` is the
first-order Taylor estimate |Σ w·∂L/∂w| over the group (Molchanov et al. 2019;
Michel et al. 2019 for heads), with L the total weight of the sample texts'
SPLADE vectors.  Layers are ranked by how little they change the hidden state
(``1 − cos(h_in, h_out)``, the block influence of Men et al. 2024, ShortGPT).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from sparsearch.pruning.base import PruneConfig, PruneReport, PruningError, count_parameters


def bert_layers(model: nn.Module) -> nn.ModuleList:
    if not hasattr(model, "bert"):
        raise PruningError(f"structured pruning supports BertForMaskedLM only, got {type(model).__name__}")
    return model.bert.encoder.layer


def _head_groups(layer: nn.Module, head_size: int, n_heads: int) -> list[list[torch.Tensor]]:
    att = layer.attention
    groups = []
    for h in range(n_heads):
        rows = slice(h * head_size, (h + 1) * head_size)
        groups.append([att.self.query.weight[rows], att.self.key.weight[rows], att.self.value.weight[rows],
                       att.output.dense.weight[:, rows]])
    return groups


def _ffn_groups(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    return layer.intermediate.dense.weight, layer.output.dense.weight  # [I, H], [H, I]


def magnitude_importance(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Head scores ``[L, heads]`` and neuron scores ``[L, intermediate]`` from weight norms."""
    cfg = model.config
    head_size = cfg.hidden_size // cfg.num_attention_heads
    heads, neurons = [], []
    with torch.no_grad():
        for layer in bert_layers(model):
            heads.append(torch.stack([sum(w.float().pow(2).sum() for w in g).sqrt()
                                      for g in _head_groups(layer, head_size, cfg.num_attention_heads)]))
            w_in, w_out = _ffn_groups(layer)
            neurons.append(w_in.float().norm(dim=1) * w_out.float().norm(dim=0))
    return torch.stack(heads), torch.stack(neurons)


SAMPLE_ROWS = 64  # documents that rank heads, neurons and layers: one padded batch


def _sample_batch(token_rows: Sequence[Sequence[int]], max_length: int = 256):  # type: ignore[no-untyped-def]
    from sparsearch.retriever.splade import pad_rows

    return pad_rows([list(r)[:max_length] for r in token_rows[:SAMPLE_ROWS]], 0)


def gradient_importance(model: nn.Module, token_rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Taylor importance |Σ w·g| of heads and neurons, L = total SPLADE weight of the sample texts."""
    from sparsearch.retriever.mlm import mlm_parts, splade_vectors

    cfg = model.config
    head_size = cfg.hidden_size // cfg.num_attention_heads
    model.zero_grad(set_to_none=True)
    input_ids, mask = _sample_batch(token_rows)
    with torch.enable_grad():
        splade_vectors(mlm_parts(model), input_ids, mask).sum().backward()
    heads, neurons = [], []
    with torch.no_grad():
        for layer in bert_layers(model):
            att = layer.attention
            scores = []
            for h in range(cfg.num_attention_heads):
                rows = slice(h * head_size, (h + 1) * head_size)
                total = sum((lin.weight[rows] * lin.weight.grad[rows]).sum()
                            for lin in (att.self.query, att.self.key, att.self.value))
                total = total + (att.output.dense.weight[:, rows] * att.output.dense.weight.grad[:, rows]).sum()
                scores.append(total.abs())
            heads.append(torch.stack(scores))
            w_in, w_out = layer.intermediate.dense.weight, layer.output.dense.weight
            neurons.append(((w_in * w_in.grad).sum(dim=1) + (w_out * w_out.grad).sum(dim=0)).abs())
    model.zero_grad(set_to_none=True)
    return torch.stack(heads), torch.stack(neurons)


def layer_influence(model: nn.Module, token_rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """``1 − cos(h_in, h_out)`` of every layer, averaged over non-padding tokens: low = removable."""
    input_ids, mask = _sample_batch(token_rows)
    with torch.no_grad():
        states = model.bert(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states
    keep = mask.bool()
    return torch.stack([1 - torch.cosine_similarity(states[i][keep], states[i + 1][keep], dim=-1).mean()
                        for i in range(len(states) - 1)])


def zero_heads(model: nn.Module, heads: dict[int, list[int]]) -> None:
    """Zero the Q/K/V rows, biases and output columns of ``heads[layer]``: the heads contribute exactly 0."""
    head_size = model.config.hidden_size // model.config.num_attention_heads
    with torch.no_grad():
        for i, drop in heads.items():
            att = bert_layers(model)[i].attention
            for h in drop:
                rows = slice(h * head_size, (h + 1) * head_size)
                for lin in (att.self.query, att.self.key, att.self.value):
                    lin.weight[rows] = 0
                    lin.bias[rows] = 0
                att.output.dense.weight[:, rows] = 0


def _keep_rows(lin: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    out = nn.Linear(lin.in_features, len(keep), bias=lin.bias is not None)
    with torch.no_grad():
        out.weight.copy_(lin.weight[keep])
        if lin.bias is not None:
            out.bias.copy_(lin.bias[keep])
    return out


def _keep_cols(lin: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    out = nn.Linear(len(keep), lin.out_features, bias=lin.bias is not None)
    with torch.no_grad():
        out.weight.copy_(lin.weight[:, keep])
        if lin.bias is not None:
            out.bias.copy_(lin.bias)
    return out


def remove_heads(model: nn.Module, heads: dict[int, list[int]]) -> None:
    """Cut ``heads[layer]`` out of the attention matrices (the runtime side of :func:`zero_heads`)."""
    cfg = model.config
    head_size = cfg.hidden_size // cfg.num_attention_heads
    for i, drop in heads.items():
        att = bert_layers(model)[int(i)].attention
        n_now = att.self.query.out_features // head_size
        kept = [h for h in range(n_now) if h not in set(drop)]
        if not kept:
            raise PruningError(f"layer {i}: cannot remove all {n_now} heads")
        idx = torch.cat([torch.arange(h * head_size, (h + 1) * head_size) for h in kept])
        for name in ("query", "key", "value"):
            setattr(att.self, name, _keep_rows(getattr(att.self, name), idx))
        att.output.dense = _keep_cols(att.output.dense, idx)
        att.self.num_attention_heads = len(kept)
        att.self.all_head_size = len(kept) * head_size


def shrink_ffn(model: nn.Module, keep: list[torch.Tensor]) -> None:
    """Keep neurons ``keep[layer]`` (the same count in every layer) and record the new width in the config."""
    widths = {len(k) for k in keep}
    if len(widths) != 1:
        raise PruningError("a BERT config has one intermediate_size: keep the same number of neurons per layer")
    for layer, k in zip(bert_layers(model), keep):
        k = torch.sort(k).values
        layer.intermediate.dense = _keep_rows(layer.intermediate.dense, k)
        layer.output.dense = _keep_cols(layer.output.dense, k)
    model.config.intermediate_size = widths.pop()


def drop_layers(model: nn.Module, drop: Sequence[int]) -> list[int]:
    """Remove layers ``drop``; returns the original index of every layer kept (the distillation layer map)."""
    layers = bert_layers(model)
    n = len(layers)
    bad = [i for i in drop if not 0 <= i < n]
    if bad or len(set(drop)) >= n:
        raise PruningError(f"cannot drop layers {list(drop)} of a {n}-layer model")
    kept = [i for i in range(n) if i not in set(drop)]
    model.bert.encoder.layer = nn.ModuleList([layers[i] for i in kept])
    model.config.num_hidden_layers = len(kept)
    return kept


class StructuredPruner:
    """Heads, FFN neurons and layers removed by importance; ``token_rows`` (tokenised sample texts) for
    gradient importance and for choosing ``drop_layers``."""

    name = "structured"

    def __init__(self, token_rows: Sequence[Sequence[int]] | None = None) -> None:
        self.token_rows = token_rows

    def _rows(self, why: str) -> Sequence[Sequence[int]]:
        if not self.token_rows:
            raise PruningError(f"{why} needs sample texts")
        return self.token_rows

    def prune(self, model: nn.Module, config: PruneConfig) -> PruneReport:
        before = count_parameters(model)
        layers = list(config.layers)
        if config.drop_layers and not layers:
            influence = layer_influence(model, self._rows("choosing layers to drop"))
            layers = sorted(int(i) for i in torch.argsort(influence)[:config.drop_layers])
        if config.importance == "gradient":
            head_scores, neuron_scores = gradient_importance(model, self._rows("gradient importance"))
        else:
            head_scores, neuron_scores = magnitude_importance(model)
        n_heads = head_scores.shape[1]
        heads: dict[int, list[int]] = {}
        if config.heads_fraction:
            k = min(n_heads - 1, int(round(config.heads_fraction * n_heads)))
            heads = {i: sorted(int(h) for h in torch.argsort(head_scores[i])[:k]) for i in range(len(head_scores))}
            zero_heads(model, heads)
        if config.ffn_fraction:
            width = neuron_scores.shape[1]
            keep_n = width - int(round(config.ffn_fraction * width))
            shrink_ffn(model, [torch.argsort(s, descending=True)[:keep_n] for s in neuron_scores])
        kept = drop_layers(model, layers) if layers else list(range(len(head_scores)))
        runtime_heads = {str(new): heads[old] for new, old in enumerate(kept) if heads.get(old)}
        return PruneReport("structured", {"layers_dropped": layers, "heads_fraction": config.heads_fraction,
                                          "ffn_fraction": config.ffn_fraction, "importance": config.importance},
                           0.0, before, count_parameters(model),
                           runtime={"pruned_heads": runtime_heads, "layer_map": kept})

"""SPLADE pooling: ``w_j = max_i log(1 + ReLU(h_ij))`` over non-padding tokens, by hand and vs plain transformers."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from sparsearch.retriever.mlm import (
    MLMParts,
    ModelFormatError,
    load_masked_lm,
    max_pooled_logits,
    mlm_parts,
    screened_splade_vectors,
    splade_activation,
    splade_vectors,
)

from .plain import plain_splade


class FixedBackbone(nn.Module):
    """Returns the same ``last_hidden_state`` whatever the input: pooling can then be checked by hand."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__()
        self.hidden = hidden

    def forward(self, input_ids, attention_mask):  # type: ignore[no-untyped-def]
        return SimpleNamespace(last_hidden_state=self.hidden)


# Decoder rows e_j (vocabulary of 3, hidden size 2) and biases b_j.
W = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
B = [0.0, -1.0, 0.5]
# Row 0: two real tokens.  Row 1: one real token, then a padding token whose logits would win every max.
HIDDEN = [[[1.0, 2.0], [3.0, -1.0]],
          [[0.5, -2.0], [10.0, 10.0]]]
MASK = [[1, 1], [1, 0]]
# Logits h_i·e_j + b_j:
#   row 0, token 0: [1, 2-1, 3+.5] = [1, 1, 3.5];  token 1: [3, -1-1, 2+.5] = [3, -2, 2.5]  -> max [3, 1, 3.5]
#   row 1, token 0: [.5, -2-1, -1.5+.5] = [.5, -3, -1]  (padding: [10, 9, 20.5], ignored)  -> max [.5, -3, -1]
POOLED = [[3.0, 1.0, 3.5], [0.5, -3.0, -1.0]]
WEIGHTS = [[math.log(4.0), math.log(2.0), math.log(4.5)], [math.log(1.5), 0.0, 0.0]]


def hand_parts(hidden: torch.Tensor | None = None, bias: bool = True) -> MLMParts:
    hidden = torch.tensor(HIDDEN) if hidden is None else hidden
    return MLMParts(FixedBackbone(hidden), nn.Identity(), nn.Parameter(torch.tensor(W)),
                    nn.Parameter(torch.tensor(B)) if bias else None)


def hand_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros((2, 2), dtype=torch.long), torch.tensor(MASK)


@pytest.mark.parametrize("vocab_slice", [1, 2, 4096])
def test_max_pooled_logits_by_hand(vocab_slice: int) -> None:
    ids, mask = hand_inputs()
    with torch.no_grad():
        pooled = max_pooled_logits(hand_parts(), ids, mask, vocab_slice=vocab_slice)
    assert pooled.tolist() == POOLED


def test_splade_vectors_by_hand_padding_never_wins() -> None:
    ids, mask = hand_inputs()
    with torch.no_grad():
        got = splade_vectors(hand_parts(), ids, mask)
    np.testing.assert_allclose(got.numpy(), WEIGHTS, rtol=1e-6, atol=0)
    assert got[1, 1] == 0 and got[1, 2] == 0  # negative logits saturate to exactly 0
    # Without the mask the padding token wins: log(1 + 10), log(1 + 9), log(1 + 20.5).
    with torch.no_grad():
        unmasked = splade_vectors(hand_parts(), ids, torch.ones_like(mask))
    np.testing.assert_allclose(unmasked[1].numpy(), [math.log(11), math.log(10), math.log(21.5)], rtol=1e-6)


def test_splade_vectors_without_bias() -> None:
    ids, mask = hand_inputs()
    with torch.no_grad():
        got = splade_vectors(hand_parts(bias=False), ids, mask)
    # Row 0 logits without bias: token 0 [1, 2, 3], token 1 [3, -1, 2] -> max [3, 2, 3].
    # Row 1: [.5, -2, -1.5] -> [.5, 0, 0] after ReLU.
    np.testing.assert_allclose(got.numpy(), [[math.log(4), math.log(3), math.log(4)], [math.log(1.5), 0, 0]],
                               rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("vocab_slice", [1, 2, 1024])
def test_screened_splade_vectors_by_hand(dtype: torch.dtype, vocab_slice: int) -> None:
    ids, mask = hand_inputs()
    with torch.no_grad():
        got = screened_splade_vectors(hand_parts(), ids, mask, screen_dtype=dtype, vocab_slice=vocab_slice)
    np.testing.assert_allclose(got.numpy(), WEIGHTS, rtol=1e-6, atol=0)
    assert got.dtype == torch.float32


def test_screened_all_zero_rows() -> None:
    """Every logit negative: an all-zero batch, not an error (no candidate survives the screen)."""
    parts = MLMParts(FixedBackbone(torch.tensor(HIDDEN)), nn.Identity(), nn.Parameter(torch.tensor(W)),
                     nn.Parameter(torch.full((3,), -100.0)))
    ids, mask = hand_inputs()
    with torch.no_grad():
        got = screened_splade_vectors(parts, ids, mask)
    assert got.shape == (2, 3) and not got.any()


def test_splade_activation_values() -> None:
    x = torch.tensor([-5.0, -0.0, 0.0, 1.0, math.e - 1])
    np.testing.assert_allclose(splade_activation(x).numpy(), [0, 0, 0, math.log(2), 1.0], rtol=1e-6)


def test_gradient_flows_to_argmax_tokens_only() -> None:
    """d Σ_j w_j / d h: each term's gradient e_j / (1 + max) lands on its arg-max token; padding gets none."""
    hidden = torch.tensor(HIDDEN, requires_grad=True)
    ids, mask = hand_inputs()
    splade_vectors(hand_parts(hidden), ids, mask).sum().backward()
    grad = hidden.grad.numpy()
    # Row 0: term 0 max at token 1 (logit 3) -> e_0/4; term 1 at token 0 (1) -> e_1/2; term 2 at token 0 (3.5) -> e_2/4.5.
    np.testing.assert_allclose(grad[0, 0], [1 / 4.5, 0.5 + 1 / 4.5], rtol=1e-6)
    np.testing.assert_allclose(grad[0, 1], [0.25, 0.0], atol=1e-7)
    # Row 1: only term 0 is positive (0.5 at token 0) -> e_0/1.5; the padding token gets nothing.
    np.testing.assert_allclose(grad[1, 0], [1 / 1.5, 0.0], atol=1e-7)
    assert grad[1, 1].tolist() == [0.0, 0.0]


def _batch(tokenizer_dir: Path, texts: list[str]):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))(texts, padding=True, truncation=True, max_length=128,
                                                             return_tensors="pt")


def test_tiny_model_matches_plain_transformers(tiny_mlm: Path, tiny_texts: list[str]) -> None:
    # Very different lengths, so most rows are padded.
    texts = [tiny_texts[0][:40], tiny_texts[1], tiny_texts[2][:200], "cells", tiny_texts[3][:90]]
    reference, pooled_ref = plain_splade(tiny_mlm, texts, max_length=128, return_pooled=True)
    enc = _batch(tiny_mlm, texts)
    assert (enc["attention_mask"] == 0).any(), "the batch should hold padding"
    parts = mlm_parts(load_masked_lm(tiny_mlm))
    with torch.no_grad():
        plain = splade_vectors(parts, enc["input_ids"], enc["attention_mask"]).double().numpy()
        pooled = max_pooled_logits(parts, enc["input_ids"], enc["attention_mask"], vocab_slice=100).double().numpy()
        screened = {dt: screened_splade_vectors(parts, enc["input_ids"], enc["attention_mask"], screen_dtype=dt,
                                                vocab_slice=128).double().numpy()
                    for dt in (torch.bfloat16, torch.float32)}
    np.testing.assert_allclose(pooled, pooled_ref, atol=1e-5)
    edge = np.abs(pooled_ref) < 1e-5  # a term this close to the ReLU edge may fall either way
    assert reference.shape == (len(texts), parts.decoder_weight.shape[0])
    assert 0 < (reference > 0).sum() < reference.size  # both zeros and non-zeros to get right
    for got in (plain, screened[torch.bfloat16], screened[torch.float32]):
        np.testing.assert_allclose(got, reference, atol=1e-5, rtol=0)
        assert np.array_equal((got > 0) | edge, (reference > 0) | edge)


def test_screening_exact_for_wide_vocabulary() -> None:
    """A 3000-term head with random states, many slices: bf16 screening changes no weight and drops no term."""
    g = torch.Generator().manual_seed(7)
    hidden = torch.randn((3, 9, 16), generator=g)
    weight = torch.randn((3000, 16), generator=g) * 0.3
    bias = torch.randn(3000, generator=g) - 1.5  # most terms near or below zero: a real screen
    mask = torch.ones((3, 9), dtype=torch.long)
    mask[1, 4:] = 0
    mask[2, 1:] = 0
    hidden[1, 4:] = 50.0  # padding that would win
    parts = MLMParts(FixedBackbone(hidden), nn.Identity(), nn.Parameter(weight), nn.Parameter(bias))
    logits = hidden.double() @ weight.double().T + bias.double()
    logits = logits.masked_fill(~mask.bool().unsqueeze(-1), -np.inf)
    reference = torch.log1p(torch.relu(logits.amax(dim=1))).numpy()
    ids = torch.zeros((3, 9), dtype=torch.long)
    with torch.no_grad():
        got = screened_splade_vectors(parts, ids, mask, screen_dtype=torch.bfloat16, vocab_slice=256).double().numpy()
    np.testing.assert_allclose(got, reference, atol=1e-5, rtol=1e-5)
    assert np.array_equal(got > 0, reference > 0)
    assert 0 < (reference > 0).mean() < 0.9


def test_mlm_parts_rejects_other_architectures() -> None:
    with pytest.raises(ModelFormatError, match="not supported"):
        mlm_parts(nn.Linear(2, 2))


def test_cached_decoder_screen_gives_the_same_vectors(tiny_mlm) -> None:  # type: ignore[no-untyped-def]
    """The per-model cache of the decoder side changes nothing but speed; a cache of another dtype is rebuilt."""
    from sparsearch.retriever.mlm import DecoderScreen, load_masked_lm, mlm_parts

    parts = mlm_parts(load_masked_lm(tiny_mlm))
    torch.manual_seed(1)
    ids = torch.randint(5, 100, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.inference_mode():
        fresh = screened_splade_vectors(parts, ids, mask)
        cached = screened_splade_vectors(parts, ids, mask, screen=DecoderScreen.build(parts))
        stale = screened_splade_vectors(parts, ids, mask, screen=DecoderScreen.build(parts, torch.float32))
    assert torch.equal(fresh, cached) and torch.equal(fresh, stale)

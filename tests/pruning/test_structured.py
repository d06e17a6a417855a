"""Structured pruning: the smaller model has the expected shapes and computes what the masked original does."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from sparsearch.pruning.base import PruneConfig, PruningError
from sparsearch.pruning.pipeline import PrunePlan, prune_folder
from sparsearch.pruning.structured import StructuredPruner, magnitude_importance, remove_heads, zero_heads
from sparsearch.retriever.mlm import load_masked_lm
from sparsearch.retriever.splade import SpladeModel


def _ids(model_dir: Path, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    from sparsearch.retriever.splade import load_tokenizer, pad_rows

    tok = load_tokenizer(model_dir)
    tok.enable_truncation(128)
    return pad_rows([e.ids for e in tok.encode_batch(texts[:6])], 0)


def test_heads_and_neurons_removed_equal_the_masked_original(cassette_dir: Path, sample_texts: list[str],
                                                             tmp_path: Path) -> None:
    original = load_masked_lm(cassette_dir)
    heads_scores, neuron_scores = magnitude_importance(original)
    out = tmp_path / "pruned"
    prune_folder(cassette_dir, out, PrunePlan((PruneConfig(method="structured", heads_fraction=0.5,
                                                           ffn_fraction=0.25),)))
    # The masked original: the least important head of each layer and 25 % of the neurons zeroed in place.
    masked = copy.deepcopy(original)
    drop = {i: [int(torch.argmin(heads_scores[i]))] for i in range(2)}
    zero_heads(masked, drop)
    with torch.no_grad():
        for i, layer in enumerate(masked.bert.encoder.layer):
            cut = torch.argsort(neuron_scores[i])[:128]
            layer.intermediate.dense.weight[cut] = 0
            layer.intermediate.dense.bias[cut] = 0

    from transformers import AutoModelForMaskedLM

    hf = AutoModelForMaskedLM.from_pretrained(out)  # a plain Hugging Face load: narrower FFN, zeroed heads
    assert hf.config.intermediate_size == 384 and hf.config.num_hidden_layers == 2
    assert hf.bert.encoder.layer[0].intermediate.dense.weight.shape == (384, 128)

    ours = SpladeModel(out, "cpu")  # sparsearch's load also cuts the zeroed heads out
    assert ours.model.bert.encoder.layer[0].attention.self.query.weight.shape == (64, 128)
    ids, mask = _ids(cassette_dir, sample_texts)
    with torch.inference_mode():
        ref = masked(input_ids=ids, attention_mask=mask).logits
        got_hf = hf(input_ids=ids, attention_mask=mask).logits
        got_ours = ours.model(input_ids=ids, attention_mask=mask).logits
    m = mask.bool()
    assert torch.allclose(got_hf[m], ref[m], atol=1e-4)
    assert torch.allclose(got_ours[m], ref[m], atol=1e-4)


def test_dropping_a_layer_equals_skipping_it(cassette_dir: Path, sample_texts: list[str]) -> None:
    original = load_masked_lm(cassette_dir)
    pruned = copy.deepcopy(original)
    report = StructuredPruner().prune(pruned, PruneConfig(method="structured", layers=(0,)))
    assert pruned.config.num_hidden_layers == 1 and report.runtime["layer_map"] == [1]
    ids, _ = _ids(cassette_dir, sample_texts[:1])  # one text: no padding, so no attention mask is needed
    with torch.inference_mode():
        expected = original.bert.encoder.layer[1](original.bert.embeddings(input_ids=ids))
        expected = expected[0] if isinstance(expected, tuple) else expected
        got = pruned.bert(input_ids=ids).last_hidden_state
    assert torch.allclose(got, expected, atol=1e-4)


def test_layer_choice_by_influence_and_errors(cassette_dir: Path, sample_texts: list[str]) -> None:
    from sparsearch.pruning.pipeline import tokenise_samples

    rows = tokenise_samples(cassette_dir, sample_texts, 64)
    model = load_masked_lm(cassette_dir)
    report = StructuredPruner(rows).prune(model, PruneConfig(method="structured", drop_layers=1,
                                                             importance="gradient", heads_fraction=0.5))
    assert len(report.config["layers_dropped"]) == 1 and model.config.num_hidden_layers == 1
    with pytest.raises(PruningError, match="needs sample texts"):
        StructuredPruner().prune(load_masked_lm(cassette_dir), PruneConfig(method="structured", drop_layers=1))
    with pytest.raises(PruningError, match="cannot remove all"):
        remove_heads(load_masked_lm(cassette_dir), {0: [0, 1]})

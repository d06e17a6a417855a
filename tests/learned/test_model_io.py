"""Model folders: save -> load round trips, and an MLM head tied onto a bare encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsearch.retriever.mlm import ModelFormatError, attach_mlm_head, load_masked_lm, save_masked_lm
from sparsearch.retriever.splade import SpladeModel

TEXTS = ["vitamin d deficiency increases the risk of fractures",
         "microstructural development of human newborn cerebral white matter",
         "cells"]


def test_save_load_round_trip_gives_identical_vectors(tiny_mlm: Path, tmp_path: Path) -> None:
    model = load_masked_lm(tiny_mlm)
    save_masked_lm(model, tiny_mlm, tmp_path / "saved", extra_files={"note.txt": b"hello"})
    names = {p.name for p in (tmp_path / "saved").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "note.txt"} <= names
    assert (tmp_path / "saved" / "note.txt").read_bytes() == b"hello"
    original = SpladeModel(tiny_mlm, device="cpu")
    reloaded = SpladeModel(tmp_path / "saved", device="cpu")
    a = original.encode(TEXTS, max_length=64, batch_size=2)
    b = reloaded.encode(TEXTS, max_length=64, batch_size=2)
    assert a.offsets.tolist() == b.offsets.tolist()
    assert a.term_ids.tolist() == b.term_ids.tolist()
    assert a.weights.tolist() == b.weights.tolist()
    assert len(a.term_ids) > 0
    for name, p in original.model.state_dict().items():
        assert torch.equal(p, reloaded.model.state_dict()[name]), name


def test_fp16_save_is_close_and_loads_as_float32(tiny_mlm: Path, tmp_path: Path) -> None:
    model = load_masked_lm(tiny_mlm)
    save_masked_lm(model, tiny_mlm, tmp_path / "half", fp16=True)
    assert next(model.parameters()).dtype == torch.float32  # the model itself is left in float32
    half = load_masked_lm(tmp_path / "half")
    assert next(half.parameters()).dtype == torch.float32
    assert (tmp_path / "half" / "model.safetensors").stat().st_size < 0.6 * (tiny_mlm / "model.safetensors").stat().st_size
    for name, p in model.state_dict().items():
        np.testing.assert_allclose(half.state_dict()[name].numpy(), p.numpy(), atol=2e-3, rtol=2e-3, err_msg=name)


def test_attach_mlm_head_ties_decoder_to_word_embeddings(bare_mlm: Path) -> None:
    from transformers import AutoTokenizer, BertModel

    config = json.loads((bare_mlm / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]
    model = attach_mlm_head(bare_mlm).eval()
    embeddings = model.bert.embeddings.word_embeddings.weight
    decoder = model.cls.predictions.decoder
    assert decoder.weight is embeddings  # the same tensor, not a copy
    assert not decoder.bias.any()
    assert torch.equal(model.cls.predictions.transform.dense.weight, torch.eye(embeddings.shape[1]))
    assert not model.cls.predictions.transform.dense.bias.any()
    # The encoder is the bare model's, and the initial logits are LN(gelu(h)) · E.
    bare = BertModel.from_pretrained(str(bare_mlm)).eval()
    assert torch.equal(embeddings, bare.embeddings.word_embeddings.weight)
    enc = AutoTokenizer.from_pretrained(str(bare_mlm))(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = bare(**enc).last_hidden_state
        expected = torch.nn.functional.layer_norm(torch.nn.functional.gelu(h), (h.shape[-1],), eps=config.get(
            "layer_norm_eps", 1e-12)) @ bare.embeddings.word_embeddings.weight.T
        np.testing.assert_allclose(model(**enc).logits.numpy(), expected.numpy(), atol=1e-5)
    # Tied for training too: a change to the embeddings is a change to the decoder.
    with torch.no_grad():
        embeddings[7, 0] += 1.0
    assert decoder.weight[7, 0] == embeddings[7, 0]


def test_bare_folder_loads_with_head_and_round_trips(bare_mlm: Path, tmp_path: Path) -> None:
    model = load_masked_lm(bare_mlm)  # a folder without ForMaskedLM: attach_mlm_head
    assert type(model).__name__ == "BertForMaskedLM" and not model.training
    save_masked_lm(model, bare_mlm, tmp_path / "attached")
    config = json.loads((tmp_path / "attached" / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"]
    reloaded = load_masked_lm(tmp_path / "attached")
    assert reloaded.cls.predictions.decoder.weight.data_ptr() == reloaded.bert.embeddings.word_embeddings.weight.data_ptr()
    a = SpladeModel(bare_mlm, device="cpu").encode(TEXTS, 64, 8)
    b = SpladeModel(tmp_path / "attached", device="cpu").encode(TEXTS, 64, 8)
    assert a.term_ids.tolist() == b.term_ids.tolist() and a.weights.tolist() == b.weights.tolist()
    assert len(a.term_ids) > 0


def test_model_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="does not exist"):
        load_masked_lm(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFormatError, match="no config.json"):
        load_masked_lm(tmp_path / "empty")


def test_attach_refuses_non_bert(tmp_path: Path) -> None:
    from transformers import DistilBertConfig, DistilBertModel

    DistilBertModel(DistilBertConfig(vocab_size=50, dim=8, n_layers=1, n_heads=2, hidden_dim=16)).save_pretrained(
        tmp_path / "distil")
    with pytest.raises(ModelFormatError, match="BERT encoders only"):
        load_masked_lm(tmp_path / "distil")

"""Pruned folders: save -> load round trips, the vocabulary subset, int8 and kernels applied at load, stacking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sparsearch.pruning.base import PruneConfig, weight_sparsity
from sparsearch.pruning.pipeline import PrunePlan, prune_folder
from sparsearch.pruning.store import PRUNING_FILE, read_record
from sparsearch.retriever.splade import SpladeModel


def test_magnitude_round_trip_keeps_the_zeros(cassette_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForMaskedLM

    out = tmp_path / "m"
    reports = prune_folder(cassette_dir, out, PrunePlan((PruneConfig(sparsity=0.4),)))
    hf = AutoModelForMaskedLM.from_pretrained(out)
    assert weight_sparsity(hf) == pytest.approx(0.4, abs=1e-6) == reports[0].sparsity
    record = read_record(out)
    assert record["steps"][0]["method"] == "magnitude" and record["steps"][0]["config"]["sparsity"] == 0.4
    assert (out / "tokenizer.json").exists()


def test_vocabulary_subset_equals_the_full_model_on_kept_terms(cassette_dir: Path, sample_texts: list[str],
                                                               tmp_path: Path) -> None:
    out = tmp_path / "v"
    prune_folder(cassette_dir, out, PrunePlan((PruneConfig(method="vocab", vocab_keep=0.3),)), sample_texts)
    kept = torch.tensor(json.loads((out / "kept_terms.json").read_text()))
    assert len(kept) == round(0.3 * 30522)
    full, pruned = SpladeModel(cassette_dir, "cpu"), SpladeModel(out, "cpu")
    texts = sample_texts[:5] + ["a query never seen in the sample: quasar telescope"]
    with torch.inference_mode():
        a, b = full.vectors(texts, 256), pruned.vectors(texts, 256)  # the length term usage was counted at
    assert torch.allclose(b[:, kept], a[:, kept], atol=1e-5)
    dropped = torch.ones(a.shape[1], dtype=torch.bool)
    dropped[kept] = False
    assert float(b[:, dropped].abs().max()) == 0.0
    # The sample's own documents lose nothing: every term they use is among the kept ones.
    assert float(a[:5, dropped].max()) == 0.0
    assert pruned.vocab_size == 30522


def test_int8_and_kernel_runtime_applied_at_load_and_stacked(cassette_dir: Path, sample_texts: list[str],
                                                             tmp_path: Path) -> None:
    from sparsearch.pruning.kernels import SparseLinear

    sparse = tmp_path / "s"
    prune_folder(cassette_dir, sparse, PrunePlan((PruneConfig(sparsity=0.9, block=(4, 1), scope="layer"),),
                                                 kernel_rows=4))
    stacked = tmp_path / "s8"
    prune_folder(sparse, stacked, PrunePlan((PruneConfig(method="int8"),)))
    record = json.loads((stacked / PRUNING_FILE).read_text())
    assert [s["method"] for s in record["steps"]] == ["magnitude", "int8"]
    assert record["runtime"] == {"kernel": {"rows": 4, "min_sparsity": 0.7}, "int8": "per_channel"}
    plain, kernel, both = (SpladeModel(p, "cpu") for p in (cassette_dir, sparse, stacked))
    layer = kernel.model.bert.encoder.layer[0]
    assert isinstance(layer.intermediate.dense, SparseLinear)
    assert isinstance(both.model.bert.encoder.layer[0].intermediate.dense, SparseLinear)
    assert not isinstance(plain.model.bert.encoder.layer[0].intermediate.dense, SparseLinear)
    # The kernel computes what the dense zeros compute.
    from transformers import AutoModelForMaskedLM

    reference = AutoModelForMaskedLM.from_pretrained(sparse).eval()
    ids = torch.randint(1000, 5000, (2, 16))
    with torch.inference_mode():
        assert torch.allclose(kernel.model(input_ids=ids).logits, reference(input_ids=ids).logits, atol=1e-4)
        encoded = both.encode(sample_texts[:4], 128, 4)
    assert len(encoded.offsets) == 5 and len(encoded.term_ids) > 0


def _int8_scales(model: SpladeModel) -> torch.Tensor:
    weight = model.model.bert.encoder.layer[0].intermediate.dense.weight()
    return weight.q_per_channel_scales() if weight.qscheme() == torch.per_channel_affine else \
        torch.tensor([weight.q_scale()])


def test_int8_granularity_per_channel_by_default_and_old_records_per_tensor(cassette_dir: Path, tmp_path: Path) -> None:
    channel, tensor = tmp_path / "c", tmp_path / "t"
    prune_folder(cassette_dir, channel, PrunePlan((PruneConfig(method="int8"),)))
    prune_folder(cassette_dir, tensor, PrunePlan((PruneConfig(method="int8", int8_granularity="per_tensor"),)))
    rows = SpladeModel(cassette_dir, "cpu").model.bert.encoder.layer[0].intermediate.dense.weight.shape[0]
    assert len(_int8_scales(SpladeModel(channel, "cpu"))) == rows
    assert len(_int8_scales(SpladeModel(tensor, "cpu"))) == 1
    # A record written before the granularity existed says ``true``: it meant one scale per matrix.
    record = json.loads((channel / PRUNING_FILE).read_text())
    record["runtime"]["int8"] = True
    (channel / PRUNING_FILE).write_text(json.dumps(record))
    assert len(_int8_scales(SpladeModel(channel, "cpu"))) == 1
    with pytest.raises(ValueError, match="int8_granularity"):
        PruneConfig(method="int8", int8_granularity="per_row")  # type: ignore[arg-type]


def test_bf16_runtime_close_to_float32_and_decoder_kept_float32(cassette_dir: Path, sample_texts: list[str],
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsearch.retriever import mlm

    out = tmp_path / "b"
    prune_folder(cassette_dir, out, PrunePlan((PruneConfig(method="bf16"),)))
    assert read_record(out)["runtime"] == {"bf16": True, "bf16_fallback": "float32"}
    monkeypatch.setattr(mlm, "native_bf16", lambda device: True)  # whatever this CPU has
    full, half = SpladeModel(cassette_dir, "cpu"), SpladeModel(out, "cpu")
    assert next(half.parts.backbone.parameters()).dtype == torch.bfloat16
    assert half.parts.decoder_weight.dtype == torch.float32
    # The decoder is a float32 copy of the embeddings taken before the cast, not their bf16 rounding.
    assert torch.equal(half.parts.decoder_weight, full.parts.decoder_weight)
    with torch.inference_mode():
        a, b = full.vectors(sample_texts[:8], 128), half.vectors(sample_texts[:8], 128)
    assert b.dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(a, b)
    assert float(cosine.min()) > 0.99 and not torch.equal(a, b)
    # Without native bfloat16 the loader keeps float32: exactly the unpruned vectors.
    monkeypatch.setattr(mlm, "native_bf16", lambda device: False)
    with torch.inference_mode():
        assert torch.equal(SpladeModel(out, "cpu").vectors(sample_texts[:8], 128), a)


def test_bf16_falls_back_to_int8_where_the_folder_asks(cassette_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsearch.retriever import mlm

    out = tmp_path / "b8"
    prune_folder(cassette_dir, out, PrunePlan((PruneConfig(method="bf16", bf16_fallback="int8"),)))
    monkeypatch.setattr(mlm, "native_bf16", lambda device: False)
    slow = SpladeModel(out, "cpu")
    assert len(_int8_scales(slow)) == slow.model.bert.encoder.layer[0].intermediate.dense.weight().shape[0]
    monkeypatch.setattr(mlm, "native_bf16", lambda device: True)
    assert next(SpladeModel(out, "cpu").parts.backbone.parameters()).dtype == torch.bfloat16

"""Unsupervised dense adaptation (Contriever crops) end to end on a tiny random BertModel, on CPU.

The crops must lie inside their document within the configured ratios; the
differentiable path must give the dense encoder's own vectors; a few steps
must lower the contrastive loss on held-out crop pairs; and the saved folder
must load through ``build_encoder("dense", ...)`` with a record of its making.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")  # the layout helper's module needs it

from sparsearch.retriever.dense import DenseConfig, DenseModel  # noqa: E402
from sparsearch.retriever.registry import build_encoder  # noqa: E402
from sparsearch.training.dense_adapt import (  # noqa: E402
    RECORD_NAME,
    DenseAdaptConfig,
    adapt_dense,
    anchor_kl,
    crop_batch,
    crop_views,
    embed,
    symmetric_info_nce,
)

from .test_dense_encoder import write_st_layout  # noqa: E402


@pytest.fixture(scope="module")
def base_model(bare_mlm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random BertModel as a sentence-transformers folder: mean pooling, Normalize (as MiniLM)."""
    folder = tmp_path_factory.mktemp("adapt-base") / "model"
    shutil.copytree(bare_mlm, folder)
    return write_st_layout(folder, "mean", normalize=True, max_seq_length=64)


@pytest.fixture(scope="module")
def corpus(tiny_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """50 short documents (their first 40 words) as a BEIR corpus.jsonl."""
    path = tmp_path_factory.mktemp("adapt-corpus") / "corpus.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i, text in enumerate(tiny_texts[:50]):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": " ".join(text.split()[:40])}) + "\n")
    return path


def config_for(base: Path, corpus: Path, **kw) -> DenseAdaptConfig:
    # A random model, not a trained one: a larger rate than the 1e-5 default, so a few steps show.
    settings = dict(model=str(base), corpus=str(corpus), steps=40, batch_size=8, lr=1e-3, warmup=4,
                    device="cpu", log_every=10, seed=1)
    settings.update(kw)
    return DenseAdaptConfig(**settings)


@pytest.fixture(scope="module")
def adapted(base_model: Path, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("adapt-out") / "adapted"
    return adapt_dense(config_for(base_model, corpus, fp16=True), out)


def test_crops_lie_in_document_within_ratios(tiny_texts: list[str], base_model: Path, corpus: Path) -> None:
    config = config_for(base_model, corpus, word_delete=0.0, min_ratio=0.1, max_ratio=0.4)
    rng = random.Random(0)
    for text in tiny_texts[:50]:
        words = text.split()
        joined = " " + " ".join(words) + " "
        for crop in crop_views(text, rng, config):
            n = len(crop.split())
            assert max(1, round(len(words) * 0.1)) <= n <= max(1, round(len(words) * 0.4))
            assert " " + crop + " " in joined  # a contiguous span of the document
    deleting = config_for(base_model, corpus, word_delete=0.3)
    for text in tiny_texts[:20]:
        words = text.split()
        for crop in crop_views(text, rng, deleting):
            it = iter(words)
            assert all(w in it for w in crop.split())  # a subsequence: words dropped, none added or reordered
            assert len(crop.split()) <= max(1, round(len(words) * 0.5))
    first, second = crop_batch(tiny_texts[:50], rng, config)
    assert len(first) == len(second) == 8


def test_embed_is_the_encoders_path(base_model: Path, tiny_texts: list[str]) -> None:
    texts = tiny_texts[:6]
    settings = DenseConfig(model_dir=str(base_model), device="cpu")
    model = DenseModel(base_model, "cpu")
    with torch.no_grad():
        ours = embed(model, texts, settings).numpy()
    theirs = build_encoder("dense", {"model_dir": str(base_model), "device": "cpu"}).encode_texts(texts)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert embed(model, texts[:2], settings).requires_grad


def held_out_loss(folder: Path, tiny_texts: list[str], config: DenseAdaptConfig) -> float:
    """Symmetric InfoNCE on fixed crop pairs of documents 50-65 (not in the training corpus), eval mode."""
    settings = DenseConfig(model_dir=str(folder), device="cpu")
    model = DenseModel(folder, "cpu")
    rng = random.Random(123)
    pairs = [crop_views(" ".join(t.split()[:40]), rng, config) for t in tiny_texts[50:66]]
    with torch.no_grad():
        return float(symmetric_info_nce(embed(model, [a for a, _ in pairs], settings),
                                        embed(model, [b for _, b in pairs], settings), config.temperature))


def test_training_lowers_the_contrastive_loss(adapted: Path, base_model: Path, corpus: Path,
                                              tiny_texts: list[str]) -> None:
    record = json.loads((adapted / RECORD_NAME).read_text())
    curve = record["loss"]["curve"]
    assert len(curve) == 40 and np.mean(curve[-10:]) < np.mean(curve[:10])
    config = config_for(base_model, corpus)
    assert held_out_loss(adapted, tiny_texts, config) < held_out_loss(base_model, tiny_texts, config)


def test_output_loads_as_a_dense_model(adapted: Path, base_model: Path, tiny_texts: list[str]) -> None:
    from safetensors import safe_open

    for name in ("modules.json", "1_Pooling/config.json", "sentence_bert_config.json", "tokenizer.json",
                 "config.json", "model.safetensors"):
        assert (adapted / name).is_file(), name
    with safe_open(str(adapted / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    encoder = build_encoder("dense", {"model_dir": str(adapted), "device": "cpu"})
    vectors = encoder.encode_texts(tiny_texts[:5])
    assert vectors.shape == (5, 32) and encoder.normalized
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    base = build_encoder("dense", {"model_dir": str(base_model), "device": "cpu"}).encode_texts(tiny_texts[:5])
    assert not np.allclose(vectors, base, atol=1e-3)
    record = json.loads((adapted / RECORD_NAME).read_text())
    assert record["base_folder"] == str(base_model.resolve()) and record["documents"] == 50
    assert record["config"]["steps"] == 40 and record["encoding"] == {"pooling": "mean", "normalize": True,
                                                                      "max_length": 64}


def test_settings_checked_and_output_not_overwritten(base_model: Path, corpus: Path, adapted: Path) -> None:
    with pytest.raises(ValueError, match="min_ratio"):
        config_for(base_model, corpus, min_ratio=0.6, max_ratio=0.5)
    with pytest.raises(ValueError, match="batch_size"):
        config_for(base_model, corpus, batch_size=1)
    with pytest.raises(FileExistsError):
        adapt_dense(config_for(base_model, corpus, steps=1), adapted)


def test_crop_document_pairs_a_crop_with_its_whole_document(tiny_texts: list[str], base_model: Path,
                                                              corpus: Path) -> None:
    config = config_for(base_model, corpus, views="crop-document", word_delete=0.0, batch_size=10)
    crops, documents = crop_batch(tiny_texts[:50], random.Random(3), config)
    assert len(set(documents)) == 10 and all(d in tiny_texts[:50] for d in documents)
    for crop, document in zip(crops, documents):
        assert f" {crop} " in f" {document} "
    with pytest.raises(ValueError, match="views"):
        config_for(base_model, corpus, views="halves")
    with pytest.raises(ValueError, match="anchor"):
        config_for(base_model, corpus, anchor=-1.0)


def test_anchor_kl_matches_a_hand_computation_and_is_zero_at_the_base() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    base_a, base_b = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    t = 0.5
    s, base = (a @ b.T).numpy() / t, (base_a @ base_b.T).numpy() / t

    def kl_rows(student: np.ndarray, teacher: np.ndarray) -> float:
        p = np.exp(teacher - teacher.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        q = np.exp(student - student.max(1, keepdims=True))
        q /= q.sum(1, keepdims=True)
        return float((p * (np.log(p) - np.log(q))).sum(1).mean())

    want = 0.5 * (kl_rows(s, base) + kl_rows(s.T, base.T))
    assert float(anchor_kl(a, b, base_a, base_b, t)) == pytest.approx(want, rel=1e-5)
    assert float(anchor_kl(a, b, a, b, t)) == pytest.approx(0.0, abs=1e-6)


def test_a_strong_anchor_keeps_the_model_near_its_base(base_model: Path, corpus: Path, tiny_texts: list[str],
                                                       adapted: Path, tmp_path: Path) -> None:
    """Same steps and data, with the KL anchor: the vectors move less from the base model's than without it."""
    anchored = adapt_dense(config_for(base_model, corpus, anchor=50.0), tmp_path / "anchored")
    record = json.loads((anchored / RECORD_NAME).read_text())
    assert "KL" in record["method"] and record["config"]["anchor"] == 50.0

    def vectors(folder: Path) -> np.ndarray:
        return build_encoder("dense", {"model_dir": str(folder), "device": "cpu"}).encode_texts(tiny_texts[:20])

    base = vectors(base_model)
    drift = lambda folder: float(np.mean(1 - (vectors(folder) * base).sum(1)))  # noqa: E731
    assert drift(anchored) < drift(adapted)

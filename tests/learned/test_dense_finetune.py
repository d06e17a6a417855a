"""Supervised dense fine-tuning with BM25 hard negatives, end to end on a tiny random BertModel on CPU.

The loss must be InfoNCE over every document of the batch with each query's
positive at ``q * group`` (checked against NumPy); a few steps must lower it
on fixed training batches; the saved folder must load as a dense model and
say what it was trained on.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

from sparsearch.retriever.registry import build_encoder  # noqa: E402
from sparsearch.training.config import DatasetSpec  # noqa: E402
from sparsearch.training.data import TrainingData  # noqa: E402
from sparsearch.training.dense_adapt import RECORD_NAME, embed  # noqa: E402
from sparsearch.training.dense_finetune import DenseFinetuneConfig, batch_loss, finetune_dense  # noqa: E402

from .test_dense_encoder import write_st_layout  # noqa: E402


@pytest.fixture(scope="module")
def base_model(bare_mlm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("finetune-base") / "model"
    shutil.copytree(bare_mlm, folder)
    return write_st_layout(folder, "mean", normalize=True, max_seq_length=64)


def config_for(base: Path, dataset: Path, **kw) -> DenseFinetuneConfig:
    settings = dict(model=str(base), datasets=(DatasetSpec(path=str(dataset), splits=("train",)),), steps=30,
                    batch_size=6, negatives_per_query=2, hard_negative_depth=10, lr=1e-3, warmup=2, device="cpu",
                    log_every=10, seed=3)
    settings.update(kw)
    return DenseFinetuneConfig(**settings)


@pytest.fixture(scope="module")
def data(base_model: Path, train_slice: Path) -> TrainingData:
    return TrainingData.prepare(config_for(base_model, train_slice).mining())


def test_batch_loss_is_infonce_over_all_documents_with_the_positive_first(base_model: Path,
                                                                           data: TrainingData) -> None:
    from sparsearch.training.dense_adapt import DenseAdaptConfig, load_trainable

    model, settings, _, _ = load_trainable(DenseAdaptConfig(model=str(base_model), corpus="-", device="cpu"))
    model.model.eval()
    batch = data.labeled_batch(random.Random(0))
    assert batch.group == 3 and len(batch.documents) == 3 * len(batch.queries)
    with torch.no_grad():
        got = float(batch_loss(model, batch.queries, batch.documents, batch.group, settings, 0.05, None, 0.0))
        q = embed(model, batch.queries, settings).numpy().astype(np.float64)
        d = embed(model, batch.documents, settings).numpy().astype(np.float64)
    s = q @ d.T / 0.05
    log_p = s - s.max(1, keepdims=True) - np.log(np.exp(s - s.max(1, keepdims=True)).sum(1, keepdims=True))
    want = -np.mean([log_p[i, i * 3] for i in range(len(q))])
    assert got == pytest.approx(want, rel=1e-4)


def test_finetuning_lowers_the_loss_and_saves_a_loadable_model(base_model: Path, train_slice: Path,
                                                                data: TrainingData, tmp_path: Path) -> None:
    from sparsearch.training.dense_adapt import DenseAdaptConfig, load_trainable

    batches = [data.labeled_batch(random.Random(100 + i)) for i in range(4)]

    def mean_loss(folder: Path) -> float:
        model, settings, _, _ = load_trainable(DenseAdaptConfig(model=str(folder), corpus="-", device="cpu"))
        model.model.eval()
        with torch.no_grad():
            return float(np.mean([float(batch_loss(model, b.queries, b.documents, b.group, settings, 0.05, None, 0))
                                  for b in batches]))

    out = finetune_dense(config_for(base_model, train_slice), tmp_path / "tuned", data=data)
    assert mean_loss(out) < mean_loss(base_model)
    record = json.loads((out / RECORD_NAME).read_text())
    assert record["trained_on"] == ["scifact:train"] and record["training_queries"] == len(data.datasets[0].queries)
    encoder = build_encoder("dense", {"model_dir": str(out), "device": "cpu"})
    vectors = encoder.encode_texts(["a protein", "cell biology"])
    assert vectors.shape[0] == 2 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    with pytest.raises(FileExistsError):
        finetune_dense(config_for(base_model, train_slice, steps=1), out, data=data)
    with pytest.raises(ValueError, match="dataset"):
        DenseFinetuneConfig(model=str(base_model))

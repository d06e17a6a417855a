"""Training a tiny MLM on CPU: configs, the loss and FLOPS going down, checkpoints and resume."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sparsearch.errors import InputError
from sparsearch.retriever.idf import idf_table
from sparsearch.training.config import DatasetSpec, TrainConfig
from sparsearch.training.data import LabeledBatch, TrainingData
from sparsearch.training.trainer import train

from .plain import idf_query_vector, plain_splade

SPECIAL = [0, 1, 2, 3, 4]  # [PAD] [UNK] [CLS] [SEP] [MASK] of the tiny tokenizer


def settings(base: Path, out: Path, dataset: Path, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = dict(kind="splade", base_model=str(base), out_dir=str(out), datasets=[str(dataset)],
                               teachers=["bm25"], steps=30, batch_size=4, negatives_per_query=3, lambda_d=0.01,
                               lambda_q=0.01, lambda_warmup_steps=5, lr=1e-3, lr_warmup_steps=2, max_length=96,
                               query_max_length=64, bf16=False, device="cpu", log_every=5, checkpoint_every=1000)
    raw.update(overrides)
    return raw


@pytest.fixture(scope="module")
def prepared(tiny_mlm: Path, train_slice: Path, tmp_path_factory) -> TrainingData:
    """Queries, positives, hard negatives and BM25 + SPLADE teacher scores, prepared once for the module."""
    config = TrainConfig.from_dict(settings(tiny_mlm, tmp_path_factory.mktemp("prep"), train_slice,
                                            teachers=["bm25", "splade"], splade_teacher=str(tiny_mlm)))
    data = TrainingData.prepare(config)
    (ds,) = data.datasets
    assert len(ds.documents) == 300 and len(ds.queries) >= 20
    assert set(ds.teachers) == {"bm25", "splade"}
    return data


# ---------------------------------------------------------------- an independent evaluation


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def ranking_loss(queries: np.ndarray, documents: np.ndarray, batch: LabeledBatch, scale: float = 30.0,
                 infonce_weight: float = 0.1) -> float:
    """KL(ensemble teacher ‖ student) over each query's group + 0.1 · in-batch InfoNCE, in numpy."""
    g = batch.group
    scores = queries @ documents.T  # [Q, Q*G]
    teacher = np.zeros((len(batch.queries), g))
    for t in batch.teacher_scores:
        t = np.asarray(t, np.float64)
        span = t.max(axis=1, keepdims=True) - t.min(axis=1, keepdims=True)
        teacher += np.where(span > 0, (t - t.min(axis=1, keepdims=True)) / np.where(span > 0, span, 1), 0)
    teacher = scale * teacher / len(batch.teacher_scores)
    own = np.stack([scores[i, i * g:(i + 1) * g] for i in range(len(batch.queries))])
    log_p, log_q = log_softmax(teacher), log_softmax(own)
    kl = float((np.exp(log_p) * (log_p - log_q)).sum(axis=1).mean())
    infonce = float(-np.mean([log_softmax(scores)[i, i * g] for i in range(len(batch.queries))]))
    return kl + infonce_weight * infonce


def evaluate(model_dir: Path, batches: list[LabeledBatch], kind: str, idf: dict[str, float] | None = None
             ) -> tuple[float, float]:
    """Mean ranking loss and mean document FLOPS (IDF-aware for inference-free) of a model folder."""
    from transformers import AutoTokenizer

    if idf is not None:
        tok = AutoTokenizer.from_pretrained(str(model_dir))
        idf_by_id = np.array([idf.get(tok.convert_ids_to_tokens(i), 0.0) for i in range(len(tok))])
        live = idf_by_id > 0
    losses, regs = [], []
    for b in batches:
        docs = plain_splade(model_dir, b.documents, max_length=96)
        if kind == "splade":
            queries = plain_splade(model_dir, b.queries, max_length=64)
            regs.append(float((docs.mean(axis=0) ** 2).sum()))
        else:
            assert idf is not None and len(idf_by_id) == docs.shape[1]
            docs[:, SPECIAL] = 0.0
            queries = np.stack([idf_query_vector(model_dir, q, idf, docs.shape[1]) for q in b.queries])
            regs.append(float(((docs[:, live] / idf_by_id[live]).mean(axis=0) ** 2).sum()))
        losses.append(ranking_loss(queries, docs, b))
    return float(np.mean(losses)), float(np.mean(regs))


def fixed_batches(data: TrainingData, n: int = 4) -> list[LabeledBatch]:
    rng = random.Random(1234)
    return [data.labeled_batch(rng) for _ in range(n)]


def check_output(result: dict[str, Any], out: Path, steps: int) -> list[dict[str, Any]]:
    assert result["steps"] == steps and result["resumed_from"] == 0 and result["device"] == "cpu"
    assert Path(result["model_dir"]) == out / "model"
    assert {"config.json", "model.safetensors", "tokenizer.json", "sparsearch_training.json"} <= {
        p.name for p in (out / "model").iterdir()}
    assert not (out / "checkpoint").exists()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(5, steps + 1, 5))
    assert log[-1] == pytest.approx(result["last"])
    return log


# ---------------------------------------------------------------- training lowers the loss and the FLOPS


@pytest.mark.real_data  # a few steps of a tiny model learn little from made-up words
def test_splade_training_lowers_ranking_loss_and_flops(tiny_mlm: Path, train_slice: Path, prepared: TrainingData,
                                                       tmp_path: Path) -> None:
    raw = settings(tiny_mlm, tmp_path / "run", train_slice, teachers=["bm25", "splade"],
                   splade_teacher=str(tiny_mlm))
    config = TrainConfig.from_dict(raw)
    data = prepared.with_config(config)
    batches = fixed_batches(data)
    assert all(len(b.teacher_scores) == 2 for b in batches)
    loss_before, flops_before = evaluate(tiny_mlm, batches, "splade")
    result = train(config, data=data)
    log = check_output(result, tmp_path / "run", 30)
    assert log[-1]["lambda_d"] == pytest.approx(0.01) and "flops_q" in log[-1]
    assert json.loads((tmp_path / "run" / "model" / "sparsearch_training.json").read_text()) == json.loads(
        json.dumps(config.to_dict()))
    loss_after, flops_after = evaluate(tmp_path / "run" / "model", batches, "splade")
    # (the tiny tokenizer's vocabulary, hence the model, differs between sessions: over 20 sessions the ratios
    # were 0.59-0.79 for the loss and 0.83-0.89 for the FLOPS)
    assert loss_after < 0.9 * loss_before, (loss_before, loss_after)
    assert flops_after < 0.95 * flops_before, (flops_before, flops_after)
    # The regulariser is what lowers the FLOPS: the same run without it ends denser.
    control = TrainConfig.from_dict({**raw, "out_dir": str(tmp_path / "control"), "lambda_d": 0.0, "lambda_q": 0.0})
    train(control, data=data)
    _, flops_control = evaluate(tmp_path / "control" / "model", batches, "splade")
    assert flops_after < flops_control


@pytest.mark.real_data  # a few steps of a tiny model learn little from made-up words
def test_inference_free_training_lowers_ranking_loss_and_idf_flops(tiny_mlm: Path, train_slice: Path,
                                                                   prepared: TrainingData, tmp_path: Path) -> None:
    config = TrainConfig.from_dict(settings(tiny_mlm, tmp_path / "run", train_slice, kind="inference-free",
                                            lambda_d=1e-6, lambda_q=1e-6))
    assert config.document_flops == "idf"
    data = prepared.with_config(config)
    batches = fixed_batches(data)
    assert all(len(b.teacher_scores) == 1 for b in batches)
    result = train(config, data=data)
    log = check_output(result, tmp_path / "run", 30)
    assert "flops_q" not in log[-1]
    model = tmp_path / "run" / "model"
    # The query side ships with the model: IDF over the training corpus, by the student's tokenizer.
    idf = json.loads((model / "idf.json").read_text(encoding="utf-8"))
    assert idf == pytest.approx(idf_table(data.corpus, tiny_mlm), rel=1e-12)
    loss_before, flops_before = evaluate(tiny_mlm, batches, "inference-free", idf)
    loss_after, flops_after = evaluate(model, batches, "inference-free", idf)
    # (over 20 sessions, each with its own tiny vocabulary, the ratios were 0.78-0.81 and 0.35-0.59)
    assert loss_after < 0.9 * loss_before, (loss_before, loss_after)
    assert flops_after < 0.75 * flops_before, (flops_before, flops_after)
    # Queries are IDF lookups: the logged query size is the number of distinct idf-weighted tokens.
    assert log[-1]["nnz_q"] < 64


def test_grad_accum_runs_every_micro_batch(tiny_mlm: Path, train_slice: Path, prepared: TrainingData,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = TrainConfig.from_dict(settings(tiny_mlm, tmp_path / "run", train_slice, steps=3, grad_accum=2,
                                            log_every=1, crop_fraction=0.5))
    data = prepared.with_config(config)
    calls = []
    real = data.batch
    monkeypatch.setattr(data, "batch", lambda rng: calls.append(1) or real(rng))
    result = train(config, data=data)
    assert len(calls) == 6
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and result["last"]["step"] == 3
    # λ follows the quadratic warmup over 5 steps: 0, (1/5)², (2/5)² times 0.01
    assert [r["lambda_d"] for r in log] == pytest.approx([0.0, 0.01 / 25, 0.04 / 25])


# ---------------------------------------------------------------- checkpoints and resume


def test_interrupted_run_resumes_from_its_checkpoint(tiny_mlm: Path, train_slice: Path, prepared: TrainingData,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import load_file

    raw = settings(tiny_mlm, tmp_path / "whole", train_slice, steps=6, checkpoint_every=3, log_every=1,
                   max_length=64, crop_fraction=0.3)
    whole = TrainConfig.from_dict(raw)
    data = prepared.with_config(whole)
    train(whole, data=data)

    config = TrainConfig.from_dict({**raw, "out_dir": str(tmp_path / "run")})
    real = data.batch
    calls = {"n": 0}

    def crash_on_fifth(rng: random.Random):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 5:  # step 5, after the checkpoint of step 3
            raise RuntimeError("simulated crash")
        return real(rng)

    monkeypatch.setattr(data, "batch", crash_on_fifth)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(config, data=data)
    checkpoint = tmp_path / "run" / "checkpoint"
    assert not (tmp_path / "run" / "model").exists()
    assert {"model.safetensors", "trainer_state.pt", "train_config.json"} <= {p.name for p in checkpoint.iterdir()}
    assert torch.load(checkpoint / "trainer_state.pt", weights_only=False)["step"] == 3
    assert json.loads((checkpoint / "train_config.json").read_text()) == json.loads(json.dumps(config.to_dict()))

    monkeypatch.setattr(data, "batch", real)
    result = train(config, resume=True, data=data)
    assert result["resumed_from"] == 3 and result["steps"] == 6
    assert result["last"]["step"] == 6 and result["first"]["step"] == 4
    assert not checkpoint.exists()
    # Model, optimiser, scheduler and RNG states were all restored: the same weights as the run never stopped.
    a = load_file(str(tmp_path / "whole" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)
    base = load_file(str(tiny_mlm / "model.safetensors"))
    assert any(not torch.equal(a[k], base[k]) for k in a if k in base)  # training did change the weights


def test_resume_false_starts_over(tiny_mlm: Path, train_slice: Path, prepared: TrainingData, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    config = TrainConfig.from_dict(settings(tiny_mlm, tmp_path / "run", train_slice, steps=4, checkpoint_every=2,
                                            log_every=1, max_length=48))
    data = prepared.with_config(config)
    real = data.batch
    calls = {"n": 0}

    def crash_on_fourth(rng: random.Random):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated crash")
        return real(rng)

    monkeypatch.setattr(data, "batch", crash_on_fourth)
    with pytest.raises(RuntimeError):
        train(config, data=data)
    assert (tmp_path / "run" / "checkpoint" / "trainer_state.pt").exists()
    monkeypatch.setattr(data, "batch", real)
    result = train(config, resume=False, data=data)
    assert result["resumed_from"] == 0 and result["first"]["step"] == 1



def test_time_budget_stops_early_and_still_saves_the_model(tiny_mlm: Path, train_slice: Path,
                                                          prepared: TrainingData, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import sparsearch.training.trainer as trainer_module

    class TickingClock:
        """Each reading is one second later: the budget check sees 1, 2, 3 ... seconds of training."""

        def __init__(self) -> None:
            self.now = 0.0

        def perf_counter(self) -> float:
            self.now += 1.0
            return self.now

    monkeypatch.setattr(trainer_module, "time", TickingClock())
    config = TrainConfig.from_dict(settings(tiny_mlm, tmp_path / "run", train_slice, steps=50, log_every=1,
                                            max_length=48, max_train_seconds=2.5))
    result = train(config, data=prepared.with_config(config))
    assert result["steps"] == 2 and result["last"]["step"] == 2
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()
    with pytest.raises(InputError, match="max_train_seconds"):
        TrainConfig.from_dict(settings(tiny_mlm, tmp_path / "x", train_slice, max_train_seconds=0))


# ---------------------------------------------------------------- configuration


def test_config_from_dict_and_files(tmp_path: Path) -> None:
    raw = {"kind": "inference-free", "base_model": "m", "out_dir": "o",
           "datasets": ["a", {"path": "b", "splits": ["train", "dev"]}], "teachers": ["bm25"], "steps": 7}
    config = TrainConfig.from_dict(raw)
    assert config.datasets == (DatasetSpec("a", ("train",)), DatasetSpec("b", ("train", "dev")))
    assert config.teachers == ("bm25",) and config.steps == 7 and config.lr == 5e-5
    assert config.document_flops == "idf"
    assert TrainConfig.from_dict({**raw, "kind": "splade"}).document_flops == "plain"
    assert TrainConfig.from_dict({**raw, "flops": "plain"}).document_flops == "plain"
    (tmp_path / "c.yaml").write_text(
        "kind: inference-free\nbase_model: m\nout_dir: o\ndatasets:\n  - a\n  - path: b\n    splits: [train, dev]\n"
        "teachers: [bm25]\nsteps: 7\n", encoding="utf-8")
    assert TrainConfig.from_file(tmp_path / "c.yaml") == config
    (tmp_path / "c.json").write_text(json.dumps(raw), encoding="utf-8")
    assert TrainConfig.from_file(tmp_path / "c.json") == config


@pytest.mark.parametrize("change, field", [
    ({"lamda_d": 0.1}, "lamda_d"),
    ({"kind": "dense"}, "kind"),
    ({"flops": "l1"}, "flops"),
    ({"teachers": ["bm25", "colbert"]}, "teachers"),
    ({"teachers": ["dense"]}, "dense_teacher"),
    ({"teachers": ["splade"]}, "splade_teacher"),
    ({"datasets": []}, "datasets"),
    ({"datasets": [{"splits": ["train"]}]}, "datasets"),
    ({"crop_fraction": 1.5}, "crop_fraction"),
    ({"crop_min": 0.6, "crop_max": 0.5}, "crop_min"),
    ({"steps": 0}, "steps"),
    ({"batch_size": 0}, "batch_size"),
])
def test_config_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    raw = {"kind": "splade", "base_model": "m", "out_dir": "o", "datasets": ["a"], "teachers": ["bm25"], **change}
    with pytest.raises(InputError) as info:
        TrainConfig.from_dict(raw, source="cfg.yaml")
    assert info.value.field == field
    assert field in str(info.value)


def test_config_missing_required_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="out_dir"):
        TrainConfig.from_dict({"kind": "splade", "base_model": "m", "datasets": ["a"], "teachers": ["bm25"]})
    with pytest.raises(FileNotFoundError):
        TrainConfig.from_file(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("kind: [splade\n", encoding="utf-8")
    with pytest.raises(InputError, match="YAML") as info:
        TrainConfig.from_file(tmp_path / "bad.yaml")
    assert info.value.line is not None
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(InputError, match="mapping"):
        TrainConfig.from_file(tmp_path / "list.json")


def test_config_single_strings_are_one_item_lists() -> None:
    """YAML ``teachers: bm25`` / ``splits: train`` mean one item, not a tuple of characters."""
    config = TrainConfig.from_dict({"kind": "splade", "base_model": "m", "out_dir": "o", "teachers": "bm25",
                                    "datasets": [{"path": "d", "splits": "dev"}]})
    assert config.teachers == ("bm25",)
    assert config.datasets[0].splits == ("dev",)


@pytest.mark.parametrize("name", ["inference_free_biomed.yaml", "splade_tiny.yaml", "splade_from_inference_free.yaml"])
def test_shipped_configs_parse_with_variables_expanded(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINILM", "/models/minilm")
    monkeypatch.setenv("SPLADE_TEACHER", "/models/splade")
    monkeypatch.setenv("SPARSEARCH_DATA", "/data")
    config = TrainConfig.from_file(Path(__file__).resolve().parents[2] / "configs" / name)
    assert config.datasets[0].path == "/data/beir/scifact"
    assert config.datasets[1].splits == ("train", "dev")
    assert config.dense_teacher == "/models/minilm"
    assert "$" not in config.base_model


def test_the_checkpoint_kept_is_the_best_on_validation(tiny_mlm: Path, train_slice: Path, prepared: TrainingData,
                                                       tmp_path: Path) -> None:
    """Validation every 2 steps and at the end; the saved model is the state of the best-scoring check."""
    from safetensors.torch import load_file

    config = TrainConfig.from_dict(settings(tiny_mlm, tmp_path / "run", train_slice, steps=5, lr=1e-2))
    marks = iter([0.2, 0.9, 0.5])
    states = []

    def validate(student) -> float:  # type: ignore[no-untyped-def]
        states.append({k: v.detach().clone() for k, v in student.model.state_dict().items()})
        return next(marks)

    summary = train(config, resume=False, data=prepared.with_config(config), validate=validate, validate_every=2)
    assert [v["step"] for v in summary["validation"]] == [2, 4, 5] and summary["kept_step"] == 4
    saved = load_file(str(Path(summary["model_dir"]) / "model.safetensors"))
    for name, tensor in saved.items():
        assert torch.equal(tensor, states[1][name].to(tensor.dtype)), name
    assert any(not torch.equal(states[1][n], states[2][n]) for n in saved)  # the last state differed

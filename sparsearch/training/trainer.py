"""The training loop: SPLADE or inference-free students, ensemble distillation, (IDF-aware) FLOPS.

Runs the same on CPU (tests, tiny models) and CUDA (bf16 autocast).  Every
``checkpoint_every`` steps the model, optimiser, scheduler, step and RNG
states go to ``out_dir/checkpoint`` (written to a temporary folder, then
renamed), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sparsearch.retriever.idf import idf_table, idf_vector, read_idf_json
from sparsearch.retriever.inference_free import IdfQueryEncoder
from sparsearch.retriever.mlm import save_masked_lm
from sparsearch.retriever.splade import SpladeModel, load_tokenizer
from sparsearch.training.base_model import trainable_base
from sparsearch.training.config import TrainConfig
from sparsearch.training.data import CropBatch, LabeledBatch, TrainingData
from sparsearch.training.device import resolve_device
from sparsearch.training.losses import ensemble_teacher_logits, info_nce, kl_distillation
from sparsearch.training.regularizers import flops, idf_flops
from sparsearch.training.schedules import QuadraticWarmup

log = logging.getLogger(__name__)


class Student:
    """The model being trained and how it turns text into ``[rows, vocab]`` weights.

    Built on the encoder modules: a :class:`~sparsearch.retriever.splade.SpladeModel` (loaded the way
    encoders load it, without the inference-only screening) encodes documents — and SPLADE
    queries — through its differentiable tokenise -> pad -> pool path; an inference-free student's
    queries are :class:`~sparsearch.retriever.inference_free.IdfQueryEncoder` lookups, and its
    documents keep only the terms a query can hold (``IdfQueryEncoder.queryable``), as the encoder's do.
    """

    def __init__(self, config: TrainConfig, idf: dict[str, float], device: torch.device) -> None:
        self.config = config
        self.device = device
        # The saved model is a plain Hugging Face MLM: train it with SPLADE's own activation.
        self.splade = SpladeModel(trainable_base(config.base_model), device, exact_screening=False,
                                  activation="relu")
        self.model = self.splade.model
        self.model.train()
        self.parts = self.splade.parts
        self.tokenizer = self.splade.tokenizer
        # The query side gets its own tokenizer copy (IdfQueryEncoder turns truncation off).
        self.idf_queries = IdfQueryEncoder(load_tokenizer(self.splade.layout.document_dir), idf)
        self.idf = torch.tensor(idf_vector(idf, self.tokenizer.get_vocab()), device=device)
        self.document_mask = torch.as_tensor(self.idf_queries.queryable, device=device)

    def encode(self, texts: list[str], max_length: int) -> torch.Tensor:
        vectors = self.splade.vectors(texts, max_length)
        if self.config.kind == "inference-free":
            # A token no query can carry (IDF 0: special tokens) is dead weight in a document vector.
            vectors = vectors * self.document_mask.to(vectors.dtype)
        return vectors

    def encode_queries(self, texts: list[str]) -> torch.Tensor:
        if self.config.kind == "splade":
            return self.encode(texts, self.config.query_max_length)
        batch = self.idf_queries.encode(texts)
        dense = torch.zeros((len(texts), self.idf.shape[0]), device=self.device)
        rows = torch.as_tensor(np.repeat(np.arange(len(texts)), np.diff(batch.offsets)), device=self.device)
        cols = torch.as_tensor(batch.term_ids.astype(np.int64), device=self.device)
        dense[rows, cols] = torch.as_tensor(batch.weights, device=self.device)
        return dense


def _device(name: str) -> torch.device:
    return torch.device(resolve_device(name))


def _idf_for(config: TrainConfig, data: TrainingData) -> dict[str, float]:
    if config.idf_path:
        return read_idf_json(config.idf_path)
    # BM25-form IDF over the training corpora, tokenized by the student's tokenizer.
    return idf_table(data.corpus, config.base_model)


def _lr_lambda(config: TrainConfig):  # type: ignore[no-untyped-def]
    def f(step: int) -> float:
        if step < config.lr_warmup_steps:
            return (step + 1) / max(1, config.lr_warmup_steps)
        rest = max(1, config.steps - config.lr_warmup_steps)
        return max(0.0, 1.0 - (step - config.lr_warmup_steps) / rest)
    return f


def _step_loss(student: Student, batch: LabeledBatch | CropBatch, config: TrainConfig, lambda_d: float,
               lambda_q: float) -> tuple[torch.Tensor, dict[str, float]]:
    q = student.encode_queries(batch.queries)
    d = student.encode(batch.documents, config.max_length)
    scores = q.float() @ d.float().t()  # [Q, all documents in the batch]
    logs: dict[str, float] = {}
    if isinstance(batch, LabeledBatch):
        g = batch.group
        positive = torch.arange(len(batch.queries), device=scores.device) * g
        loss = config.infonce_weight * info_nce(scores, positive)
        logs["infonce"] = float(loss.detach())
        if batch.teacher_scores:
            own = torch.stack([scores[i, i * g:(i + 1) * g] for i in range(len(batch.queries))])
            teacher = ensemble_teacher_logits([torch.as_tensor(t, device=scores.device) for t in batch.teacher_scores],
                                              config.teacher_scale)
            kl = kl_distillation(own, teacher)
            loss = loss + config.kl_weight * kl
            logs["kl"] = float(kl.detach())
    else:
        positive = torch.arange(len(batch.queries), device=scores.device)
        loss = info_nce(scores, positive)
        logs["crop_infonce"] = float(loss.detach())
    d32 = d.float()
    reg_d = idf_flops(d32, student.idf) if config.document_flops == "idf" else flops(d32)
    loss = loss + lambda_d * reg_d
    logs["flops_d"] = float(reg_d.detach())
    logs["nnz_d"] = float((d32 > 0).sum(dim=1).float().mean())
    if config.kind == "splade":
        reg_q = flops(q.float())
        loss = loss + lambda_q * reg_q
        logs["flops_q"] = float(reg_q.detach())
    logs["nnz_q"] = float((q > 0).sum(dim=1).float().mean())
    logs["loss"] = float(loss.detach())
    return loss, logs


def _save_checkpoint(path: Path, student: Student, optimizer, scheduler, step: int, rng: random.Random,  # type: ignore[no-untyped-def]
                     config: TrainConfig) -> None:
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    student.model.save_pretrained(tmp, safe_serialization=True)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                "python_rng": rng.getstate(), "torch_rng": torch.get_rng_state()}, tmp / "trainer_state.pt")
    (tmp / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2), encoding="utf-8")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


Validator = Callable[["Student"], float]


def train(config: TrainConfig, resume: bool = True, data: TrainingData | None = None,
          validate: Validator | None = None, validate_every: int = 0) -> dict[str, Any]:
    """Train, save ``out_dir/model`` (Hugging Face layout, + ``idf.json``) and return a summary.

    With ``validate`` (a score on held-out validation queries, higher is better), the student is scored
    every ``validate_every`` steps and at the end, and the saved model is the best-scoring state: the
    checkpoint is chosen on validation data, never on a test split.
    """
    device = _device(config.device)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    t0 = time.perf_counter()
    data = data or TrainingData.prepare(config)
    prep_seconds = time.perf_counter() - t0
    idf = _idf_for(config, data)
    student = Student(config, idf, device)
    checkpoint = out / "checkpoint"
    start = 0
    if resume and (checkpoint / "trainer_state.pt").exists():
        from safetensors.torch import load_file

        student.model.load_state_dict(load_file(str(checkpoint / "model.safetensors"), device=str(device)),
                                      strict=False)
        student.model.tie_weights()
    decay = [p for n, p in student.model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in student.model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config))
    if resume and (checkpoint / "trainer_state.pt").exists():
        state = torch.load(checkpoint / "trainer_state.pt", map_location=device, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = int(state["step"])
        rng.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed from step %d", start)
    lam_d = QuadraticWarmup(config.lambda_d, config.lambda_warmup_steps)
    lam_q = QuadraticWarmup(config.lambda_q, config.lambda_warmup_steps)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16 and device.type == "cuda")
    log_path = out / "train_log.jsonl"
    history: list[dict[str, float]] = []
    t1 = time.perf_counter()
    steps_done = config.steps
    validation: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None

    def check(step: int) -> None:
        nonlocal best
        if validate is None:
            return
        student.model.eval()
        with torch.no_grad():
            score = float(validate(student))
        student.model.train()
        validation.append({"step": step, "score": score})
        log.info("validation at step %d: %.4f", step, score)
        if best is None or score > best[0]:
            best = (score, step, {k: v.detach().to("cpu", copy=True) for k, v in student.model.state_dict().items()})

    with log_path.open("a", encoding="utf-8") as log_file:
        for step in range(start, config.steps):
            if config.max_train_seconds is not None and time.perf_counter() - t1 > config.max_train_seconds:
                # A time-boxed job (a rented GPU, a CI slot) keeps what it learned rather than nothing.
                log.warning("max_train_seconds %.0f reached: stopping at step %d of %d", config.max_train_seconds,
                            step, config.steps)
                steps_done = step
                break
            sums: dict[str, float] = {}
            for _ in range(config.grad_accum):
                batch = data.batch(rng)
                with autocast:
                    loss, logs = _step_loss(student, batch, config, lam_d(step), lam_q(step))
                if not math.isfinite(float(loss.detach())):
                    raise FloatingPointError(f"loss became {float(loss)} at step {step}")
                (loss / config.grad_accum).backward()
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v / config.grad_accum
            torch.nn.utils.clip_grad_norm_(student.model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            record = {"step": step + 1, "lambda_d": lam_d(step), "lambda_q": lam_q(step),
                      "lr": scheduler.get_last_lr()[0], **sums}
            history.append(record)
            if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                log.info("step %d loss %.4f nnz_d %.1f nnz_q %.1f", step + 1, sums.get("loss", 0.0),
                         sums.get("nnz_d", 0.0), sums.get("nnz_q", 0.0))
            if validate_every and (step + 1) % validate_every == 0 and step + 1 < config.steps:
                check(step + 1)
            if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
                _save_checkpoint(checkpoint, student, optimizer, scheduler, step + 1, rng, config)
    train_seconds = time.perf_counter() - t1
    check(steps_done)
    if best is not None and best[1] != steps_done:
        log.info("keeping the state of step %d (validation %.4f)", best[1], best[0])
        student.model.load_state_dict(best[2])
    student.model.eval()
    model_dir = out / "model"
    extra = {"sparsearch_training.json": json.dumps(config.to_dict(), indent=2).encode("utf-8")}
    if config.kind == "inference-free":
        extra["idf.json"] = json.dumps(idf, ensure_ascii=False).encode("utf-8")
    save_masked_lm(student.model, config.base_model, model_dir, fp16=config.save_fp16, extra_files=extra)
    shutil.rmtree(checkpoint, ignore_errors=True)
    return {"model_dir": str(model_dir), "steps": steps_done, "resumed_from": start,
            "prepare_seconds": prep_seconds, "train_seconds": train_seconds, "device": str(device),
            "first": history[0] if history else None, "last": history[-1] if history else None,
            "validation": validation, "kept_step": best[1] if best is not None else steps_done}

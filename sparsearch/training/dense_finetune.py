"""Supervised fine-tuning of a dense bi-encoder on training queries, with BM25-mined hard negatives.

The recipe of DPR (Karpukhin et al. 2020) as the field uses it for
sentence-transformers models: each training query is paired with one judged
relevant document and ``negatives_per_query`` hard negatives drawn from
BM25's top ``hard_negative_depth`` (judged positives excluded); the loss is
InfoNCE over every document of the batch (the query's own hard negatives and
all other queries' documents as negatives), at temperature 0.05 (MiniLM's
own training scale of 20).  An optional ``anchor`` adds the self-distillation
term of :mod:`sparsearch.training.dense_adapt` (KL to the frozen base model's
scores), since a few hundred in-domain queries can pull a model trained on a
billion pairs off what made it general.

Data preparation (splits, positives, the BM25 negative pools) is the learned
sparse trainer's own (:func:`sparsearch.training.data.prepare_dataset`), so
both kinds of model see the same examples; model loading, pooling, the
schedule and the saved folder are the dense adaptation's.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from sparsearch.retriever.dense import DenseModel
from sparsearch.training.config import DatasetSpec, TrainConfig
from sparsearch.training.data import TrainingData
from sparsearch.training.dense_adapt import (Stepper, _curve, anchor_kl, embed, frozen_copy, load_trainable,
                                             save_adapted)
from sparsearch.training.losses import info_nce

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DenseFinetuneConfig:
    """How :func:`finetune_dense` trains; ``datasets`` are BEIR folders with the splits whose queries train."""

    model: str = "all-minilm-l6-v2"
    datasets: tuple[DatasetSpec, ...] = ()
    steps: int = 200
    batch_size: int = 32
    negatives_per_query: int = 1
    hard_negative_depth: int = 30
    lr: float = 1e-5
    weight_decay: float = 0.01
    temperature: float = 0.05
    anchor: float = 0.0
    max_length: int | None = None
    warmup: int = 20
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    log_every: int = 20

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("at least one dataset (a BEIR folder with training queries) is needed")
        for key in ("steps", "batch_size", "negatives_per_query", "hard_negative_depth", "log_every"):
            if type(getattr(self, key)) is not int or getattr(self, key) < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {getattr(self, key)!r}")
        if not (self.lr > 0 and self.temperature > 0 and self.anchor >= 0 and self.weight_decay >= 0):
            raise ValueError("lr and temperature must be > 0; anchor and weight_decay >= 0")

    def mining(self) -> TrainConfig:
        """The sparse trainer's settings that :func:`prepare_dataset` reads: BM25 negatives only."""
        return TrainConfig(kind="inference-free", base_model=self.model, out_dir="", datasets=self.datasets,
                           teachers=("bm25",), negatives_per_query=self.negatives_per_query,
                           hard_negative_depth=self.hard_negative_depth, batch_size=self.batch_size,
                           crop_fraction=0.0, seed=self.seed, device=self.device)


def batch_loss(model: DenseModel, queries: Sequence[str], documents: Sequence[str], group: int, settings,  # type: ignore[no-untyped-def]
               temperature: float, teacher: DenseModel | None, anchor: float) -> torch.Tensor:
    """InfoNCE of each query over all ``len(documents)`` documents; its positive is ``documents[q * group]``."""
    q, d = embed(model, queries, settings), embed(model, documents, settings)
    target = torch.arange(len(queries), device=q.device) * group
    loss = info_nce(q @ d.T, target, temperature)
    if teacher is not None and anchor > 0:
        with torch.no_grad():
            base_q, base_d = embed(teacher, queries, settings), embed(teacher, documents, settings)
        loss = loss + anchor * anchor_kl(q, d, base_q, base_d, temperature)
    return loss


def finetune_dense(config: DenseFinetuneConfig, out_dir: str | Path, data: TrainingData | None = None) -> Path:
    """Fine-tune ``config.model`` on the datasets' training queries; save to ``out_dir`` (returned)."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    data = data or TrainingData.prepare(config.mining())
    from sparsearch.training.dense_adapt import DenseAdaptConfig

    model, settings, base, base_name = load_trainable(
        DenseAdaptConfig(model=config.model, corpus="-", max_length=config.max_length, device=config.device))
    teacher = frozen_copy(base, config.device, config.anchor)
    step_with = Stepper(model, config.lr, config.weight_decay, config.warmup, config.steps)
    use_amp = config.amp and model.device.type == "cuda"
    losses: list[float] = []
    started = time.perf_counter()
    for step in range(config.steps):
        batch = data.labeled_batch(rng)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            loss = batch_loss(model, batch.queries, batch.documents, batch.group, settings, config.temperature,
                              teacher, config.anchor)
        losses.append(step_with(loss))
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            recent = losses[-config.log_every:]
            log.info("step %d/%d loss %.4f", step + 1, config.steps, sum(recent) / len(recent))
    model.model.eval()
    record = {
        "method": "supervised fine-tuning, BM25 hard negatives, in-batch InfoNCE (Karpukhin et al. 2020)"
                  + (f", + {config.anchor} x KL to the frozen base model's scores" if config.anchor else ""),
        "base_model": base_name or str(base),
        "trained_on": [f"{Path(d.path).name}:{'+'.join(d.splits)}" for d in config.datasets],
        "training_queries": sum(len(d.queries) for d in data.datasets),
        "config": {**asdict(config), "datasets": [asdict(d) for d in config.datasets]},
        "device": str(model.device),
        "seconds": round(time.perf_counter() - started, 1),
        "loss": {"first": round(losses[0], 4), "last": round(losses[-1], 4), "curve": _curve(losses)},
    }
    return save_adapted(model, base, out, record)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m sparsearch.training.dense_finetune --dataset DIR[:split+split] ... --out O [--steps N ...]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--dataset", action="append", required=True, help="a BEIR folder, :splits (default train)")
    for name in ("model", "steps", "batch_size", "negatives_per_query", "hard_negative_depth", "lr", "anchor",
                 "max_length", "seed", "device"):
        default = DenseFinetuneConfig.__dataclass_fields__[name].default
        parser.add_argument("--" + name.replace("_", "-"), type=type(default) if default is not None else int,
                            default=default)
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    specs = []
    for item in args.pop("dataset"):
        path, _, splits = item.partition(":")
        specs.append(DatasetSpec(path=path, splits=tuple((splits or "train").split("+"))))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(finetune_dense(DenseFinetuneConfig(datasets=tuple(specs), **args), out))


if __name__ == "__main__":
    main()

"""Unsupervised domain adaptation of a dense bi-encoder with independent random crops.

Contriever (Izacard et al. 2021, "Unsupervised Dense Information Retrieval
with Contrastive Learning") shows that a bi-encoder learns retrieval from
unlabeled text alone: two crops drawn independently from one document are a
positive pair, the other documents' crops in the batch are negatives, and the
loss is InfoNCE at temperature 0.05.  Here the same recipe continues the
training of an already trained model (all-MiniLM-L6-v2 by default) on a
target corpus, so the learning rate is small (1e-5): the aim is to move the
model towards the corpus' vocabulary without forgetting what supervised
training taught it.

The model is loaded and pooled by the dense encoder's own code
(:class:`~sparsearch.retriever.dense.DenseModel`, :func:`~sparsearch.retriever.dense.pool`,
and the pooling/normalisation/length a :class:`~sparsearch.retriever.dense.DenseConfig`
settles from the folder), so the vectors trained are exactly those an index
would hold.  The result is a sentence-transformers folder (the base folder's
``modules.json``, ``1_Pooling`` and tokenizer files, new ``model.safetensors``)
with a ``sparsearch_training.json`` saying how it was made; it loads with
``build_encoder("dense", {"model_dir": out})``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from sparsearch.corpus import read_corpus
from sparsearch.retriever.dense import DenseConfig, DenseModel, pool
from sparsearch.retriever.resolve import resolve_model
from sparsearch.retriever.splade import pad_rows
from sparsearch.training.cropping import random_crop
from sparsearch.training.losses import info_nce

log = logging.getLogger(__name__)

#: Files of the base folder not copied to the output: the old weights and exported runtimes.
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.h5", "*.msgpack", "*.ot", "*.onnx", "*.pt", "*.ckpt",
                    "onnx", "openvino", "sparsearch_training.json")

RECORD_NAME = "sparsearch_training.json"


@dataclass(frozen=True)
class DenseAdaptConfig:
    """How :func:`adapt_dense` continues training a dense model on a corpus' own text.

    ``model`` is a folder, a shipped model's name or a Hugging Face id (as
    ``--model`` takes); ``corpus`` a BEIR ``corpus.jsonl`` (or its folder).
    Crops are ``min_ratio``–``max_ratio`` of a document's words with each word
    then dropped with probability ``word_delete`` (Contriever: 5–50 %, 10 %).
    ``max_length`` ``None`` keeps the model's own limit.  ``warmup`` steps of
    linear warm-up, then linear decay to zero (the usual BERT schedule: a
    large first update would undo the base model's training).  ``views``:
    ``"crops"`` (two independent crops, Contriever) or ``"crop-document"``
    (a crop against its whole document: the document side is then exactly
    what an index stores).  ``anchor``: weight of a self-distillation term,
    the KL divergence from the frozen base model's in-batch score
    distribution to the trained one's on the same pairs, which keeps what
    supervised training taught while the crop task moves the model toward
    the corpus (0: none; crop-only training forgot, docs/dense_hybrid.md).  ``amp`` runs
    the forward pass in bfloat16 on CUDA only; ``fp16`` saves the weights
    as float16 (half the size; the encoder loads them as float32 anyway).
    """

    model: str = "all-minilm-l6-v2"
    corpus: str = ""
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-5
    weight_decay: float = 0.01
    temperature: float = 0.05
    max_length: int | None = None
    min_ratio: float = 0.05
    max_ratio: float = 0.5
    word_delete: float = 0.1
    min_words: int = 8
    max_documents: int | None = None
    seed: int = 0
    warmup: int = 100
    device: str = "auto"
    amp: bool = True
    fp16: bool = False
    log_every: int = 50
    views: str = "crops"
    anchor: float = 0.0

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size", "min_words", "log_every"):
            if type(getattr(self, key)) is not int or getattr(self, key) < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {getattr(self, key)!r}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (in-batch negatives), got {self.batch_size}")
        if type(self.warmup) is not int or self.warmup < 0:
            raise ValueError(f"warmup must be an integer >= 0, got {self.warmup!r}")
        if not 0 < self.min_ratio <= self.max_ratio <= 1:
            raise ValueError(f"need 0 < min_ratio <= max_ratio <= 1, got {self.min_ratio}, {self.max_ratio}")
        if not 0 <= self.word_delete < 1:
            raise ValueError(f"word_delete must be in [0, 1), got {self.word_delete}")
        if not (self.lr > 0 and self.temperature > 0 and self.weight_decay >= 0):
            raise ValueError("lr and temperature must be > 0 and weight_decay >= 0")
        if self.max_documents is not None and self.max_documents < self.batch_size:
            raise ValueError(f"max_documents ({self.max_documents}) must be at least batch_size")
        if not self.corpus:
            raise ValueError("corpus is required (a BEIR corpus.jsonl or its folder)")
        if self.views not in ("crops", "crop-document"):
            raise ValueError(f"views must be 'crops' or 'crop-document', got {self.views!r}")
        if not self.anchor >= 0:
            raise ValueError(f"anchor must be >= 0, got {self.anchor!r}")


# ---------------------------------------------------------------- data


def load_texts(corpus: str | Path, min_words: int = 8, limit: int | None = None) -> list[str]:
    """``title text`` of each document with at least ``min_words`` words (a shorter one crops to almost nothing)."""
    texts = []
    for doc in read_corpus(corpus):
        text = doc.contents.strip()
        if len(text.split()) >= min_words:
            texts.append(text)
            if limit is not None and len(texts) >= limit:
                break
    return texts


def crop_views(text: str, rng: random.Random, config: DenseAdaptConfig) -> tuple[str, str]:
    """Two crops of ``text`` drawn independently: they may overlap, nest or be disjoint (Izacard et al. 2021)."""
    words = text.split()
    return tuple(random_crop(words, rng, config.min_ratio, config.max_ratio, config.word_delete)  # type: ignore
                 for _ in range(2))


def crop_batch(texts: Sequence[str], rng: random.Random, config: DenseAdaptConfig) -> tuple[list[str], list[str]]:
    """Crop pairs of ``batch_size`` distinct documents: a repeated document would be its own false negative."""
    chosen = rng.sample(range(len(texts)), config.batch_size)
    if config.views == "crop-document":
        return ([random_crop(texts[i].split(), rng, config.min_ratio, config.max_ratio, config.word_delete)
                 for i in chosen], [texts[i] for i in chosen])
    pairs = [crop_views(texts[i], rng, config) for i in chosen]
    return [a for a, _ in pairs], [b for _, b in pairs]


# ---------------------------------------------------------------- model


def embed(model: DenseModel, texts: Sequence[str], settings: DenseConfig) -> torch.Tensor:
    """``[len(texts), dim]`` vectors with gradients: :meth:`DenseModel.encode`'s path without ``inference_mode``.

    Tokenise, pad, run the transformer, pool and normalise with the dense
    encoder's own functions and settled settings, so training optimises the
    very vectors a :class:`~sparsearch.retriever.dense.DenseEncoder` produces.
    """
    ids = model.token_ids(list(texts), int(settings.max_length or 256))
    input_ids, mask = pad_rows(ids, model.pad_id, model.device)
    hidden = model.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
    vectors = pool(hidden.float(), mask, str(settings.pooling))
    if settings.normalize:
        vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
    return vectors


def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of ``a[i]`` against every ``b`` and of ``b[i]`` against every ``a``, averaged.

    Both crops play query and document in turn: neither view is special, so
    the loss should not be either.
    """
    scores = a @ b.T
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (info_nce(scores, target, temperature) + info_nce(scores.T, target, temperature))


def anchor_kl(a: torch.Tensor, b: torch.Tensor, base_a: torch.Tensor, base_b: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """KL(base ‖ trained) of the in-batch score distributions, rows and columns averaged.

    Self-distillation to the frozen starting model: the trained model may
    move its vectors as long as it ranks each batch the way the base model
    does, which is what its supervised training was for.
    """
    def kl(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.kl_div(torch.log_softmax(student / temperature, dim=1),
                                          torch.log_softmax(teacher / temperature, dim=1),
                                          reduction="batchmean", log_target=True)

    scores, base = a @ b.T, base_a @ base_b.T
    return 0.5 * (kl(scores, base) + kl(scores.T, base.T))


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate factor rising linearly over ``warmup`` steps, then falling linearly to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Stepper:
    """One optimiser step per call: AdamW (no decay on biases and LayerNorm weights, as BERT),
    gradients clipped at norm 1, the learning rate of :func:`linear_schedule`.

    Shared by the unsupervised adaptation and the supervised fine-tuning, which differ in their
    batches and losses only.
    """

    def __init__(self, model: DenseModel, lr: float, weight_decay: float, warmup: int, steps: int) -> None:
        self.params = [p for p in model.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW([{"params": [p for p in self.params if p.ndim >= 2],
                                             "weight_decay": weight_decay},
                                            {"params": [p for p in self.params if p.ndim < 2],
                                             "weight_decay": 0.0}], lr=lr)
        self.scheduler = linear_schedule(self.optimizer, warmup, steps)

    def __call__(self, loss: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]


def frozen_copy(base: Path, device: str, anchor: float) -> DenseModel | None:
    """The base model, frozen, as the anchor's teacher (None without an anchor)."""
    if anchor <= 0:
        return None
    teacher = DenseModel(base, device)
    teacher.model.eval().requires_grad_(False)
    return teacher


def load_trainable(config: DenseAdaptConfig) -> tuple[DenseModel, DenseConfig, Path, str | None]:
    """``(model, settled settings, base folder, base name)``: a private copy in train mode (dropout on)."""
    found = resolve_model(config.model)
    settings = DenseConfig(model_dir=str(found.path), max_length=config.max_length, device=config.device)
    model = DenseModel(found.path, config.device)  # not shared_dense_model: we change its weights
    model.model.train()
    return model, settings, Path(found.path), found.name


# ---------------------------------------------------------------- training


def _curve(losses: list[float], points: int = 50) -> list[float]:
    """The loss curve as at most ``points`` block means (a summary for the record, not every step)."""
    size = max(1, math.ceil(len(losses) / points))
    return [round(sum(losses[i:i + size]) / len(losses[i:i + size]), 4) for i in range(0, len(losses), size)]


def adapt_dense(config: DenseAdaptConfig, out_dir: str | Path) -> Path:
    """Train ``config.model`` on crop pairs of ``config.corpus`` and save it to ``out_dir`` (returned).

    ``out_dir`` must not exist or be empty; the folder is written beside it
    under a temporary name and renamed when complete, so a crashed run never
    leaves a half-written model that an index could pick up.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    texts = load_texts(config.corpus, config.min_words, config.max_documents)
    if len(texts) < config.batch_size:
        raise ValueError(f"{config.corpus}: {len(texts)} documents of >= {config.min_words} words, fewer than "
                         f"batch_size={config.batch_size}")
    model, settings, base, base_name = load_trainable(config)
    teacher = frozen_copy(base, config.device, config.anchor)
    step_with = Stepper(model, config.lr, config.weight_decay, config.warmup, config.steps)
    use_amp = config.amp and model.device.type == "cuda"
    losses: list[float] = []
    started = time.perf_counter()
    for step in range(config.steps):
        first, second = crop_batch(texts, rng, config)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            a, b = embed(model, first, settings), embed(model, second, settings)
            loss = symmetric_info_nce(a, b, config.temperature)
            if teacher is not None:
                with torch.no_grad():
                    base_a, base_b = embed(teacher, first, settings), embed(teacher, second, settings)
                loss = loss + config.anchor * anchor_kl(a, b, base_a, base_b, config.temperature)
        losses.append(step_with(loss))
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            recent = losses[-config.log_every:]
            log.info("step %d/%d loss %.4f lr %.2e", step + 1, config.steps, sum(recent) / len(recent),
                     step_with.lr)
    seconds = time.perf_counter() - started
    model.model.eval()
    record = {
        "method": ("contriever-independent-crops (Izacard et al. 2021)" if config.views == "crops" else
                   "crop against its whole document") + ", symmetric in-batch InfoNCE"
                  + (f", + {config.anchor} x KL to the frozen base model's in-batch scores" if config.anchor else ""),
        "base_model": base_name or str(base),
        "base_folder": str(base),
        "corpus": str(config.corpus),
        "documents": len(texts),
        "config": asdict(config),
        "encoding": {"pooling": settings.pooling, "normalize": settings.normalize,
                     "max_length": settings.max_length},
        "device": str(model.device),
        "seconds": round(seconds, 1),
        "loss": {"first": round(losses[0], 4), "last": round(losses[-1], 4), "min": round(min(losses), 4),
                 "curve": _curve(losses)},
    }
    return save_adapted(model, base, out, record, config.fp16)


def save_adapted(model: DenseModel, base: Path, out: Path, record: dict[str, Any], fp16: bool = False) -> Path:
    """Copy the base folder without its weights, write the trained ones (``model.safetensors``) and the record."""
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(base, tmp, ignore=shutil.ignore_patterns(*_WEIGHT_PATTERNS))
    transformer_dir = tmp / model.layout.transformer_dir.relative_to(model.layout.root)
    network = model.model
    if fp16:
        network = network.to(torch.float16)
    network.save_pretrained(transformer_dir, safe_serialization=True)
    if fp16:
        model.model.to(torch.float32)
    (tmp / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        out.rmdir()  # empty: checked before training
    tmp.rename(out)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m sparsearch.training.dense_adapt --corpus C --out O [--model M --steps N ...]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", required=True)
    fields = DenseAdaptConfig.__dataclass_fields__
    for name, field in fields.items():
        kind = type(field.default) if field.default is not None else int
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            parser.add_argument(flag, type=kind, default=field.default)
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(adapt_dense(DenseAdaptConfig(**args), out))


if __name__ == "__main__":
    main()

"""``sparsearch adapt``: fit an inference-free model to a corpus from its documents alone.

No queries and no labels: the corpus supplies pseudo-queries (a sentence
or a short span of words from a document, whose source document is the
positive — Contriever's and ICT's self-supervision), and a GPL-like
ensemble of teachers scores each pseudo-query's candidates: BM25 on this
corpus, the model being adapted as it was before adaptation (``self``), and
optionally a dense bi-encoder.  The student starts from the model and is
trained with the recipe of :mod:`sparsearch.training.trainer` (KL to the
ensemble + InfoNCE + IDF-aware FLOPS), with query weights recomputed as the
BM25-form IDF of this corpus's text (Izacard et al. 2022; Wang et al. 2022
GPL; Geng et al. 2024, methods.md).

Hyperparameters are fixed defaults chosen before any evaluation; there is no
target-domain label to choose them on (300 steps: the setting measured on the
four shared sets, docs/general_model.md).  A GPU adapts a corpus of a few
thousand documents in one to two minutes.  A CPU runs the same steps in
passes of a few queries (:func:`micro_batch`, ~8 GB peak) but slowly: about
two minutes a step on 2 cores, hours for a whole run; tiny models (the tests)
take seconds.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from sparsearch.errors import InputError
from sparsearch.types import Document

log = logging.getLogger(__name__)

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class AdaptConfig:
    model: str  # an inference-free model folder (MLM + tokenizer + idf.json)
    corpus: str  # a BEIR folder or its corpus.jsonl
    out: str
    dense_teacher: str | None = None  # a sentence-transformers folder or name (e.g. all-minilm-l6-v2)
    # ... or its embeddings of this run's documents and pseudo-queries, saved ahead (teacher_embeddings.py)
    dense_embeddings: str | None = None
    max_queries: int = 20000  # pseudo-queries: min(2 per document, this)
    min_words: int = 4
    max_words: int = 24
    steps: int = 300
    batch_size: int = 32
    negatives_per_query: int = 7
    hard_negative_depth: int = 50
    lr: float = 2e-5
    lambda_d: float = 0.07
    infonce_weight: float = 0.5
    crop_fraction: float = 0.1
    max_length: int = 256
    device: str = "auto"
    seed: int = 13
    # Pseudo-queries per forward pass (gradients accumulate to batch_size): None = all of them on a GPU,
    # CPU_MICRO_BATCH on a CPU.  Each query brings 1 + negatives_per_query documents of up to max_length tokens
    # through a 30,522-wide MLM head: the default batch in one pass is tens of GB by the tensor sizes.
    micro_batch: int | None = None

    def __post_init__(self) -> None:
        for key in ("max_queries", "min_words", "steps", "batch_size", "negatives_per_query", "hard_negative_depth"):
            if type(getattr(self, key)) is not int or getattr(self, key) < 1:
                raise InputError(f"{key} must be an integer >= 1, got {getattr(self, key)!r}", field=key)
        if self.max_words < self.min_words:
            raise InputError("max_words must be >= min_words", field="max_words")
        if not self.lr > 0 or self.lambda_d < 0:
            raise InputError("lr must be > 0 and lambda_d >= 0", field="lr")
        if self.micro_batch is not None and (type(self.micro_batch) is not int or self.micro_batch < 1
                                             or self.batch_size % self.micro_batch):
            raise InputError(f"micro_batch must divide batch_size ({self.batch_size}), got {self.micro_batch!r}",
                             field="micro_batch")
        if self.dense_teacher and self.dense_embeddings:
            raise InputError("give the dense teacher or its saved embeddings, not both", field="dense_embeddings")


#: Pseudo-queries per forward pass on a CPU: 4 x 8 documents x 256 tokens x 30,522 logits is ~1 GB in float32.
CPU_MICRO_BATCH = 4


def micro_batch(config: AdaptConfig, on_gpu: bool) -> int:
    """Pseudo-queries per forward pass: ``config.micro_batch``, else the whole batch on a GPU and on a CPU the
    largest divisor of ``batch_size`` up to :data:`CPU_MICRO_BATCH`.

    One optimiser step still sees ``batch_size`` queries.  The KL term to the
    teachers is per query, so its gradient adds up the same; the InfoNCE term's
    in-batch negatives and the FLOPS term (a squared mean activation per term)
    are computed over each pass, so a CPU step is close to, not equal to, a GPU
    step (a squared mean over fewer documents is larger in expectation: a CPU
    run sparsifies somewhat harder).
    """
    if config.micro_batch is not None:
        return config.micro_batch
    if on_gpu:
        return config.batch_size
    return max(d for d in range(1, min(CPU_MICRO_BATCH, config.batch_size) + 1) if config.batch_size % d == 0)


def pseudo_queries(documents: Sequence[Document], n: int, rng: random.Random, min_words: int = 4,
                   max_words: int = 24) -> tuple[list[str], list[int]]:
    """``n`` (query, source document row) pairs: half a sentence of the document, half a random word span."""
    usable = [i for i, d in enumerate(documents) if len(d.contents.split()) >= min_words]
    longest_span = max_words // 2 if max_words >= 2 * min_words else max_words  # spans are shorter than sentences
    if not usable:
        raise InputError(f"no document has {min_words} or more words to draw pseudo-queries from")
    queries, rows = [], []
    for _ in range(n):
        row = rng.choice(usable)
        text = documents[row].contents
        sentences = [s.split() for s in _SENTENCE.split(text)]
        sentences = [s for s in sentences if len(s) >= min_words]
        if sentences and rng.random() < 0.5:
            words = rng.choice(sentences)
            if len(words) > max_words:
                start = rng.randrange(len(words) - max_words + 1)
                words = words[start:start + max_words]
        else:
            words = text.split()
            length = rng.randint(min_words, min(longest_span, len(words)))
            start = rng.randrange(len(words) - length + 1)
            words = words[start:start + length]
        queries.append(" ".join(words))
        rows.append(row)
    return queries, rows


def corpus_and_pseudo_queries(config: AdaptConfig) -> tuple[list[Document], list[str], list[int]]:
    """The corpus's documents and this configuration's pseudo-queries with their source rows (seeded).

    Shared by :func:`adapt` and :func:`save_dense_embeddings`, so embeddings
    saved ahead belong to exactly the queries the run draws.
    """
    from sparsearch.corpus import read_corpus

    documents = list(read_corpus(config.corpus))
    if len(documents) < 2:
        raise InputError(f"{config.corpus}: adaptation needs at least 2 documents, found {len(documents)}")
    rng = random.Random(config.seed)
    n_queries = min(config.max_queries, 2 * len(documents))
    queries, sources = pseudo_queries(documents, n_queries, rng, config.min_words, config.max_words)
    return documents, queries, sources


def save_dense_embeddings(config: AdaptConfig, teacher: str, out: str | Path) -> Path:
    """The dense ``teacher``'s embeddings of what ``adapt(config)`` will score, saved to ``out`` (.npz).

    A later ``adapt`` with ``dense_embeddings=out`` and the same corpus, seed
    and pseudo-query settings uses them as its dense teacher.
    """
    from sparsearch.training.teacher_embeddings import save_teacher_embeddings

    documents, queries, _ = corpus_and_pseudo_queries(config)
    return save_teacher_embeddings(out, teacher, documents, queries, config.device)


def adapt(config: AdaptConfig) -> Path:
    """Adapt ``config.model`` to ``config.corpus``; the model folder ``config.out`` (written whole, then renamed)."""
    from sparsearch.retriever.idf import idf_table, write_idf_json
    from sparsearch.retriever.inference_free import InferenceFreeConfig, InferenceFreeEncoder
    from sparsearch.retriever.resolve import resolve_model
    from sparsearch.retriever.st_format import describe_model
    from sparsearch.training.config import DatasetSpec, TrainConfig
    from sparsearch.training.data import DatasetExamples, TrainingData
    from sparsearch.training.device import resolve_device
    from sparsearch.training.pools import mine_pools
    from sparsearch.training.scorers import bm25_scorer, dense_scorer, sparse_encoder_scorer
    from sparsearch.training.trainer import train

    out = Path(config.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not an empty folder: choose a new --out")
    model_dir = resolve_model(config.model).path
    layout = describe_model(model_dir)
    if layout.kind != "inference-free" or layout.format != "native":
        raise InputError(f"{model_dir}: sparsearch adapt takes a native inference-free model folder "
                         f"(an MLM with idf.json); this one is a {layout.format} {layout.kind} model")
    started = time.perf_counter()
    documents, queries, sources = corpus_and_pseudo_queries(config)
    teacher_file = None
    if config.dense_embeddings:  # checked before any training work: a mismatched file fails fast
        from sparsearch.training.teacher_embeddings import load_teacher_scorer

        teacher_file = load_teacher_scorer(config.dense_embeddings, documents, queries, config.device)
    work = out.with_name(out.name + ".adapting")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        idf = idf_table((d.contents for d in documents), model_dir)
        write_idf_json(idf, work / "corpus_idf.json")
        log.info("adapt: %d documents, %d pseudo-queries", len(documents), len(queries))
        own = InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(model_dir), device=config.device, batch_size=64))
        own = InferenceFreeEncoder(own.settings, tokenizer=own.queries.tokenizer, idf=idf)
        scorers = {"bm25": bm25_scorer(documents, queries),
                   "self": sparse_encoder_scorer("self", own, documents, queries)}
        if config.dense_teacher:
            scorers["dense"] = dense_scorer(resolve_model(config.dense_teacher).path, documents, queries, config.device)
        elif teacher_file is not None:
            scorers["dense"] = teacher_file
        positives = [np.array([s], np.int64) for s in sources]
        pools, negatives = mine_pools(scorers, positives, config.hard_negative_depth, tuple(scorers), None,
                                      min_negatives=config.negatives_per_query, n_docs=len(documents),
                                      seed=config.seed)
        teachers = tuple(sorted(scorers))
        per_pass = micro_batch(config, resolve_device(config.device).startswith("cuda"))
        log.info("adapt: teachers %s; %d pseudo-queries a step in passes of %d", ", ".join(teachers),
                 config.batch_size, per_pass)
        train_config = TrainConfig(
            kind="inference-free", base_model=str(model_dir), out_dir=str(work / "run"),
            datasets=(DatasetSpec(str(config.corpus), ()),), teachers=(), idf_path=str(work / "corpus_idf.json"),
            kl_weight=1.0, infonce_weight=config.infonce_weight, crop_fraction=config.crop_fraction, flops="idf",
            lambda_d=config.lambda_d, lambda_q=0.0, lambda_warmup_steps=1, steps=config.steps,
            batch_size=per_pass, grad_accum=config.batch_size // per_pass, negatives_per_query=config.negatives_per_query,
            hard_negative_depth=config.hard_negative_depth, lr=config.lr, lr_warmup_steps=max(1, config.steps // 10),
            max_length=config.max_length, device=config.device, seed=config.seed,
            log_every=max(1, config.steps // 20), checkpoint_every=10**9, save_fp16=True)
        examples = DatasetExamples(Path(str(config.corpus)).name, documents, queries, positives, negatives, pools)
        summary = train(train_config, resume=False, data=TrainingData([examples], train_config))
        model_out = Path(summary["model_dir"])
        record = {"method": "sparsearch adapt: pseudo-queries from the corpus, GPL-like teacher ensemble, corpus IDF",
                  "adapted_from": str(config.model), "corpus": str(config.corpus), "documents": len(documents),
                  "pseudo_queries": len(queries), "teachers": list(teachers), "config": asdict(config),
                  "steps": summary["steps"], "seconds": round(time.perf_counter() - started, 1),
                  "device": summary["device"], "queries_per_pass": per_pass, "labels_used": "none: documents only"}
        (model_out / "sparsearch_adapt.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
        (model_out / "README.md").write_text(_card(record), encoding="utf-8")
        if out.exists():
            out.rmdir()
        model_out.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _card(record: dict) -> str:
    return (f"# Adapted inference-free model\n\nMade by `sparsearch adapt` from `{record['adapted_from']}` on "
            f"`{record['corpus']}` ({record['documents']:,} documents, {record['pseudo_queries']:,} pseudo-queries, "
            f"{record['steps']} steps, teachers: {', '.join(record['teachers'])}).\n\n"
            "Trained on this corpus's documents only: no queries, no relevance labels. Its `idf.json` is the "
            "BM25-form IDF of this corpus's text. Evaluate it on this corpus's queries as an in-domain, "
            "unsupervised adaptation, never as a zero-shot figure.\n")

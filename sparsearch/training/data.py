"""Training examples from BEIR train splits, hard negatives and random crops.

The mix (documented in docs/learned_sparse.md): each optimiser step draws a
batch of labeled queries — a positive from the qrels plus hard negatives
sampled from the union of BM25's and the dense teacher's top
``hard_negative_depth`` (qrels positives excluded), each candidate carrying
every teacher's score — or, with probability ``crop_fraction``, a batch of
crop pairs from the corpora.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sparsearch.eval.datasets import load_beir
from sparsearch.training.config import TrainConfig
from sparsearch.training.cropping import crop_pair
from sparsearch.training.pools import CandidatePools, mine_pools
from sparsearch.training.scorers import PairScorer, bm25_scorer, dense_scorer, sparse_encoder_scorer
from sparsearch.types import Document

log = logging.getLogger(__name__)


@dataclass
class LabeledBatch:
    queries: list[str]
    documents: list[str]  # group g of query q at [q*G : (q+1)*G], positive first
    group: int
    teacher_scores: list[np.ndarray]  # one [Q, G] per teacher


@dataclass
class CropBatch:
    queries: list[str]
    documents: list[str]  # documents[i] is the positive of queries[i]


@dataclass
class DatasetExamples:
    name: str
    documents: list[Document]
    queries: list[str]
    positives: list[np.ndarray]
    negatives: list[np.ndarray]
    pools: CandidatePools

    @property
    def teachers(self) -> tuple[str, ...]:
        return self.pools.teachers


def teacher_scorers(config: TrainConfig, documents: Sequence[Document], texts: Sequence[str]) -> dict[str, PairScorer]:
    """The configured teachers (and BM25, always a miner) as pair scorers over this corpus and these queries."""
    scorers: dict[str, PairScorer] = {"bm25": bm25_scorer(documents, texts)}
    if config.dense_teacher and ("dense" in config.teachers):
        scorers["dense"] = dense_scorer(config.dense_teacher, documents, texts, config.device)
    if config.splade_teacher and ("splade" in config.teachers):
        from sparsearch.retriever.registry import build_encoder

        encoder = build_encoder("splade", {"model_dir": str(config.splade_teacher), "device": config.device,
                                           "batch_size": 64})
        scorers["splade"] = sparse_encoder_scorer("splade", encoder, documents, texts)
    return scorers


def examples_from(name: str, documents: list[Document], texts: list[str], positives: list[np.ndarray],
                  scorers: dict[str, PairScorer], config: TrainConfig) -> DatasetExamples:
    """Hard negatives from the union of BM25's and the dense teacher's top ``hard_negative_depth``
    (positives excluded), every configured teacher scoring every candidate."""
    keep = [t for t in config.teachers if t in scorers]
    pools, negatives = mine_pools(scorers, positives, config.hard_negative_depth, ("bm25", "dense"), keep,
                                  min_negatives=config.negatives_per_query, n_docs=len(documents), seed=config.seed)
    return DatasetExamples(name, documents, texts, positives, negatives, pools)


def prepare_dataset(path: str, splits: tuple[str, ...], config: TrainConfig) -> DatasetExamples:
    """Queries of ``splits`` with positives, hard-negative pools and teacher scores."""
    qrels: dict[str, dict[str, int]] = {}
    query_text: dict[str, str] = {}
    dataset = None
    for split in splits:
        dataset = load_beir(path, split)  # a split's queries are those its qrels judge
        query_text.update(dataset.queries)
        for q, judged in dataset.qrels.items():
            qrels.setdefault(q, {}).update(judged)
    assert dataset is not None
    documents = list(dataset.corpus())
    column = {d.doc_id: i for i, d in enumerate(documents)}
    query_ids = [q for q in qrels if q in query_text and any(r > 0 for r in qrels[q].values())]
    texts = [query_text[q] for q in query_ids]
    positives = [np.array([column[d] for d, r in qrels[q].items() if r > 0 and d in column], np.int64)
                 for q in query_ids]
    log.info("%s: %d training queries, %d documents", dataset.name, len(texts), len(documents))
    return examples_from(dataset.name, documents, texts, positives, teacher_scorers(config, documents, texts), config)


class TrainingData:
    """Samples labeled and crop batches across datasets (datasets chosen in proportion to their queries)."""

    def __init__(self, datasets: list[DatasetExamples], config: TrainConfig) -> None:
        self.datasets = [d for d in datasets if d.queries]
        if not self.datasets:
            raise ValueError("no training queries with positives in the configured splits")
        self.config = config
        sizes = np.array([len(d.queries) for d in self.datasets], np.float64)
        self.weights = sizes / sizes.sum()
        self.corpus = [d.contents for ds in self.datasets for d in ds.documents]

    def with_config(self, config: TrainConfig) -> "TrainingData":
        """The same examples under another run's settings, keeping only its teachers (experiments share prep)."""
        missing = set(config.teachers) - set().union(*(d.teachers for d in self.datasets))
        if missing:
            raise ValueError(f"teachers {sorted(missing)} were not prepared")
        views = [DatasetExamples(d.name, d.documents, d.queries, d.positives, d.negatives,
                                 d.pools.keep([t for t in d.teachers if t in config.teachers])) for d in self.datasets]
        return TrainingData(views, config)

    @classmethod
    def prepare(cls, config: TrainConfig) -> "TrainingData":
        return cls([prepare_dataset(d.path, d.splits, config) for d in config.datasets], config)

    def batch(self, rng: random.Random) -> LabeledBatch | CropBatch:
        if rng.random() < self.config.crop_fraction:
            return self.crop_batch(rng)
        return self.labeled_batch(rng)

    def crop_batch(self, rng: random.Random) -> CropBatch:
        c = self.config
        pairs = [crop_pair(rng.choice(self.corpus), rng, c.crop_min, c.crop_max, c.crop_delete)
                 for _ in range(c.batch_size)]
        return CropBatch([a for a, _ in pairs], [b for _, b in pairs])

    def labeled_batch(self, rng: random.Random) -> LabeledBatch:
        c = self.config
        ds = self.datasets[int(np.searchsorted(np.cumsum(self.weights), rng.random(), side="right").clip(
            0, len(self.datasets) - 1))]
        group = 1 + c.negatives_per_query
        picks = rng.sample(range(len(ds.queries)), min(c.batch_size, len(ds.queries)))
        queries, documents = [], []
        teacher_names = sorted(ds.teachers)
        scores = {t: np.zeros((len(picks), group), np.float32) for t in teacher_names}
        for row, qi in enumerate(picks):
            pos = int(rng.choice(list(ds.positives[qi])))
            pool = ds.negatives[qi]
            if len(pool) >= group - 1:
                negs = [int(x) for x in rng.sample(list(pool), group - 1)]
            elif len(pool):  # a corpus smaller than a group (mine_pools padded what it could): repeat negatives
                negs = [int(x) for x in rng.choices(list(pool), k=group - 1)]
            else:
                raise ValueError(f"{ds.name}: query {ds.queries[qi]!r} has no negative (every document is a positive)")
            cands = [pos] + negs
            queries.append(ds.queries[qi])
            documents.extend(ds.documents[i].contents for i in cands)
            for t in teacher_names:
                scores[t][row] = ds.pools.lookup(t, qi, cands)
        return LabeledBatch(queries, documents, group, [scores[t] for t in teacher_names])

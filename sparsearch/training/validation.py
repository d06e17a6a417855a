"""Held-out validation for checkpoint and setting selection: NDCG@10 of the student in training.

Selection must never look at a test split, so a training source sets aside a
validation split (``dev``) of its own queries.  Scoring every validation query
against the whole training corpus at every check would cost as much as the
training steps between checks, so the check searches a fixed, seeded sample:
every judged document of the validation queries plus ``n_docs`` random
others.  The figure is comparable between checks and runs of one sample —
which is all selection needs — but not with full-corpus numbers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from sparsearch.eval.datasets import load_beir
from sparsearch.eval.metrics import evaluate


@dataclass
class ValidationSet:
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    doc_ids: list[str]
    texts: list[str]

    @classmethod
    def from_beir(cls, path: str, split: str = "dev", n_docs: int = 20000, seed: int = 13,
                  max_queries: int | None = None) -> "ValidationSet":
        dataset = load_beir(path, split)
        query_ids = sorted(dataset.queries)
        if max_queries is not None and len(query_ids) > max_queries:
            query_ids = sorted(random.Random(seed).sample(query_ids, max_queries))
        qrels = {q: dataset.qrels[q] for q in query_ids if q in dataset.qrels}
        judged = {d for judged in qrels.values() for d in judged}
        documents = list(dataset.corpus())
        others = [i for i, d in enumerate(documents) if d.doc_id not in judged]
        keep = set(random.Random(seed).sample(others, min(n_docs, len(others))))
        chosen = [d for i, d in enumerate(documents) if d.doc_id in judged or i in keep]
        return cls({q: dataset.queries[q] for q in qrels}, qrels, [d.doc_id for d in chosen],
                   [d.contents for d in chosen])

    def ndcg10(self, student, max_length: int = 256, batch_size: int = 128, depth: int = 100) -> float:  # type: ignore[no-untyped-def]
        """The student's NDCG@10 (pytrec_eval, all validation queries) on this sample."""
        ids = list(self.queries)
        with torch.no_grad():
            q = student.encode_queries([self.queries[i] for i in ids]).float()
            scores = torch.empty((len(ids), len(self.texts)), device=q.device)
            for lo in range(0, len(self.texts), batch_size):
                d = student.encode(self.texts[lo:lo + batch_size], max_length).float()
                scores[:, lo:lo + d.shape[0]] = q @ d.T
            top = torch.topk(scores, min(depth, len(self.texts)), dim=1)
        values, rows = top.values.cpu().numpy(), top.indices.cpu().numpy()
        run = {qid: {self.doc_ids[r]: float(v) for r, v in zip(rows[i], values[i]) if v > 0}
               for i, qid in enumerate(ids)}
        return evaluate(self.qrels, run)["ndcg_cut_10"]

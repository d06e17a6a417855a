"""Metrics on a small fixed run, against hand computation."""

from __future__ import annotations

import math

import pytest

from sparsearch.eval.metrics import evaluate, per_query
from sparsearch.eval.runs import read_trec, write_trec
from sparsearch.types import Hits

QRELS = {"q1": {"d1": 2, "d2": 1}, "q2": {"d9": 1}, "q3": {"r": 1}}
RUN = {
    "q1": {"d2": 3.0, "dx": 2.0, "d1": 1.0},  # ranks: d2, dx, d1
    # q2: no hits at all -> counts 0
    "q3": {**{f"n{i}": 100.0 - i for i in range(10)}, "r": 1.0},  # relevant doc at rank 11
}


def test_ndcg_recall_mrr_by_hand() -> None:
    pq = per_query(QRELS, RUN)
    dcg = 1 / math.log2(2) + 2 / math.log2(4)  # trec_eval gain = relevance grade
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert pq["q1"]["ndcg_cut_10"] == pytest.approx(dcg / idcg)
    assert pq["q1"]["recip_rank"] == 1.0
    assert pq["q2"] == {"ndcg_cut_10": 0.0, "recall_100": 0.0, "recall_1000": 0.0, "recip_rank": 0.0}
    assert pq["q3"]["recip_rank"] == 0.0  # MRR@10: rank 11 is past the cut
    assert pq["q3"]["recall_100"] == 1.0
    means = evaluate(QRELS, RUN)
    assert means["ndcg_cut_10"] == pytest.approx(dcg / idcg / 3)  # mean over all 3 judged queries
    assert means["recall_100"] == pytest.approx(2 / 3)
    assert means["recip_rank"] == pytest.approx(1 / 3)


def test_unjudged_queries_in_the_run_are_ignored() -> None:
    assert evaluate(QRELS, {**RUN, "zz": {"d1": 1.0}}) == evaluate(QRELS, RUN)


def test_trec_run_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    hits = [Hits(["a", "b"], np.array([2.5, 1.25], np.float32)), Hits([], np.zeros(0, np.float32))]
    path = tmp_path / "run.trec"
    write_trec(path, ["q1", "q2"], hits, tag="t")
    assert path.read_text().splitlines() == ["q1 Q0 a 1 2.500000 t", "q1 Q0 b 2 1.250000 t"]
    assert read_trec(path) == {"q1": {"a": 2.5, "b": 1.25}}


def test_ranking_run_evaluates_the_returned_order_not_docid_ties(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from sparsearch.eval.runs import ranking_run

    qrels = {"q": {"a": 1}}
    tied = [Hits(["a", "b"], np.array([1.0, 1.0], np.float32))]  # engine put "a" first
    # By score, trec_eval ranks ties by descending doc id: "b" first, reciprocal rank 1/2.
    assert evaluate(qrels, {"q": {"a": 1.0, "b": 1.0}})["recip_rank"] == 0.5
    assert evaluate(qrels, ranking_run(["q"], tied))["recip_rank"] == 1.0
    write_trec(tmp_path / "r.trec", ["q"], tied)
    assert evaluate(qrels, read_trec(tmp_path / "r.trec", by_rank=True))["recip_rank"] == 1.0

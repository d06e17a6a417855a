"""One query at a time (``Retriever.search``) takes a lean path: it must return exactly what a batch returns.

``Retriever.search`` encodes a plain query with the encoder's one-query row
and scores it with ``InvertedIndex.hits_one`` (one kernel call, no batch
objects).  Every hit, its order and its float32 score must equal the batch
path's, before and after the snapshot switches to precomputed BM25 impacts,
with deleted documents, with k above the live count, and where the lean path
declines (several segments) and hands over to the general one.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparsearch import Index
from sparsearch.index import impacts, small
from sparsearch.index.impacts import ImpactPolicy
from sparsearch.types import Document

WORDS = ("protein folding yeast heat shock response vitamin deficiency bone density fracture risk aspirin "
         "platelet cohort study patient trial dose insulin glucose kidney liver cell membrane receptor gene "
         "expression tumour growth factor immune response infection virus vaccine antibody").split()


@pytest.fixture(autouse=True)
def compiled_paths(monkeypatch: pytest.MonkeyPatch):
    """Test-sized segments would take the NumPy path; the lean path serves compiled-kernel segments."""
    monkeypatch.setattr(small, "ENABLED", False)
    yield
    impacts.set_policy(None)


def corpus(n: int, seed: int) -> list[Document]:
    rng = np.random.default_rng(seed)
    return [Document(f"d{i}", "", " ".join(rng.choice(WORDS, size=int(rng.integers(3, 40)))))
            for i in range(n)]


def queries(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 8)))) for _ in range(n)]
    return out + ["", "unknownword", "the of and", "Protein PROTEIN folding, folding!"]


def same(one, batch) -> None:
    assert one.ids == batch.ids
    assert one.internal_ids.tolist() == batch.internal_ids.tolist()
    assert one.scores.view(np.uint32).tolist() == batch.scores.view(np.uint32).tolist()


def test_one_query_equals_its_row_of_a_batch_before_and_after_impacts() -> None:
    index = Index.build(corpus(400, 1))
    qs = queries(40, 2)
    expected = index.search_batch(qs, k=10, threads=1)
    for q, batch_hits in zip(qs, expected):  # the first queries score on the fly, later ones over impacts
        same(index.search(q, k=10), batch_hits)
    snapshot = index.writer.snapshot
    assert snapshot._single is not None, "the lean path was never taken"
    assert [s.ready is not None for s in snapshot._impacts.values()] == [True]
    for q, batch_hits in zip(qs, expected):
        same(index.search(q, k=10), batch_hits)


def test_the_encoders_one_query_row_is_row_zero_of_a_batch() -> None:
    index = Index.build(corpus(200, 3))
    stats = index.writer.snapshot.stats
    for q in queries(30, 4):
        term_ids, weights = index.encoder.encode_query(q, stats)
        row = index.encoder.encode_queries([q], stats)
        assert term_ids.dtype == np.int32 and weights.dtype == np.float32
        assert term_ids.tolist() == row.term_ids.tolist()
        assert weights.view(np.uint32).tolist() == row.weights.view(np.uint32).tolist()


def test_deletes_k_above_the_live_count_and_no_impacts(tmp_path) -> None:
    impacts.set_policy(ImpactPolicy(max_bytes=0))  # declined: the lean path keeps the raw arguments
    index = Index.build(corpus(60, 5), path=tmp_path / "idx")
    index.delete([f"d{i}" for i in range(0, 60, 3)])
    index.commit()
    assert len(index.writer.snapshot.segments) == 1 and index.n_docs == 40
    for q in queries(20, 6):
        one = index.search(q, k=100)
        same(one, index.search_batch([q] * 13, k=100, threads=1)[0])
        assert not {f"d{i}" for i in range(0, 60, 3)} & set(one.ids)
    assert index.writer.snapshot._single is not None
    assert 0 < len(index.search("protein yeast heat", k=1000)) <= 40


def test_several_segments_take_the_general_path_with_the_same_hits(tmp_path) -> None:
    docs = corpus(300, 7)
    index = Index.create_live(tmp_path / "live", Index.build(docs[:1]).encoder)
    index.add(docs[:150])
    index.commit()
    index.add(docs[150:])
    index.delete([f"d{i}" for i in range(0, 300, 7)])
    index.commit()
    assert len(index.writer.snapshot.segments) > 1
    qs = queries(25, 8)
    expected = index.search_batch(qs, k=10, threads=1)
    for q, batch_hits in zip(qs, expected):
        same(index.search(q, k=10), batch_hits)
    assert index.writer.snapshot._single is None  # declined: no single-segment arguments were kept


def test_bad_k_and_a_closed_index_are_refused() -> None:
    index = Index.build(corpus(50, 9))
    with pytest.raises(ValueError, match="k must be at least 1"):
        index.search("protein", k=0)
    index.close()
    with pytest.raises(Exception, match="closed"):
        index.search("protein")

"""BM25 query rows built for a whole batch (``retriever.query_batch``) equal the per-query loop's, row by row.

Term order matters as much as the terms: the kernels add a query's
contributions in row order, so a different order changes float32 scores.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparsearch.retriever import query_batch
from sparsearch.retriever.bm25 import BM25Encoder
from sparsearch.types import CollectionStats, Document, SparseBatch

CORPUS = [
    "Protein folding in yeast cells and the heat-shock response.",
    "Vitamin D deficiency, bone density and the risk of fractures in older adults.",
    "The café served naïve résumé writers: Ünïcödé text and 3.14 digits, U.S. spelling.",
    "Aspirin's effect on platelets; o'neill's cohort study of 1,000 patients.",
    "Heat shock proteins fold other proteins; folding fails at high temperature.",
]
QUERIES = [
    "protein folding", "Protein PROTEIN protein folding yeast", "the of and a", "", "   ", "zzzqqq unknownword",
    "café résumé naïve", "o'neill's aspirin cohort", "3.14 digits U.S.", "x" * 300 + " protein",
    "heat shock; heat shock proteins fold", "Ünïcödé ünïcödé text", "fracture fractures fractured bone",
    "vitamin d deficiency in older adults and the risk of fractures", "yeast", "platelets aspirin aspirin",
]


def stats_of(encoder: BM25Encoder, texts: list[str]) -> CollectionStats:
    docs = encoder.encode_documents([Document(str(i), "", t) for i, t in enumerate(texts)])
    df = np.bincount(docs.term_ids, minlength=len(encoder.vocab)).astype(np.int64)
    return CollectionStats(len(texts), float(docs.lengths.sum()), df)


def rows(batch: SparseBatch) -> list[tuple[list[int], list[int]]]:
    return [(batch.term_ids[batch.offsets[i]:batch.offsets[i + 1]].tolist(),
             batch.weights[batch.offsets[i]:batch.offsets[i + 1]].view(np.uint32).tolist()) for i in range(len(batch))]


def test_a_batch_gives_each_query_its_own_row_to_the_bit() -> None:
    encoder = BM25Encoder()
    stats = stats_of(encoder, CORPUS)
    queries = QUERIES * 2 + [q.upper() for q in QUERIES]
    assert len(queries) >= query_batch.MIN_BATCH
    batch = encoder.encode_queries(queries, stats)
    singles = [rows(encoder.encode_queries([q], stats))[0] for q in queries]
    assert rows(batch) == singles
    assert any(len(r[0]) > 1 for r in singles) and any(len(r[0]) == 0 for r in singles)
    # A repeated term is one entry weighted by its count: "protein" three times in the second query.
    protein = encoder.vocab.get(encoder.analyzer.analyze("protein")[0])
    ids, _ = singles[1]
    assert ids.count(protein) == 1


def test_all_ascii_and_mixed_batches_tokenize_like_the_analyzer() -> None:
    encoder = BM25Encoder()
    ascii_queries = [q for q in QUERIES if q.isascii()]
    for queries in (ascii_queries, QUERIES):
        assert query_batch.raw_token_rows(queries, encoder._lucene.raw_tokens) == [
            encoder._lucene.raw_tokens(q) for q in queries]


def test_a_word_unknown_at_first_is_found_once_it_is_indexed() -> None:
    """Unknown tokens are cached only until the vocabulary grows, in both the batch and the one-query path."""
    encoder = BM25Encoder()
    stats = stats_of(encoder, CORPUS[:2])
    queries = ["zebrafish protein"] * query_batch.MIN_BATCH
    assert len(encoder.encode_queries(queries, stats).term_ids) == query_batch.MIN_BATCH  # protein only
    assert len(encoder.encode_queries(queries[:1], stats).term_ids) == 1
    stats = stats_of(encoder, CORPUS[:2] + ["zebrafish embryos"])
    zebrafish = encoder.vocab.get(encoder.analyzer.analyze("zebrafish")[0])
    assert zebrafish >= 0
    batch = encoder.encode_queries(queries, stats)
    assert batch.term_ids[: 2].tolist() == [zebrafish, encoder.vocab.get("protein")]
    assert encoder.encode_queries(queries[:1], stats).term_ids.tolist() == batch.term_ids[:2].tolist()


def test_distinct_counts_by_hand() -> None:
    ids = np.array([5, 3, 5, -1, 2, 2, 2, -1, 9])
    offsets, term_ids, counts = query_batch.distinct_counts(ids, np.array([4, 0, 3, 2]), 10)
    assert offsets.tolist() == [0, 2, 2, 3, 4]
    assert term_ids.tolist() == [5, 3, 2, 9]
    assert counts.tolist() == [2, 1, 3, 1]


@pytest.mark.parametrize("n", [query_batch.MIN_BATCH - 1, query_batch.MIN_BATCH])
def test_terms_no_live_document_holds_are_dropped_on_both_paths(n: int) -> None:
    encoder = BM25Encoder()
    stats_of(encoder, CORPUS)  # "yeast" enters the vocabulary...
    stats = stats_of(encoder, CORPUS[1:])  # ...but no document of these statistics holds it
    batch = encoder.encode_queries(["yeast vitamin"] * n, stats)
    assert batch.term_ids.tolist() == [encoder.vocab.get(encoder.analyzer.analyze("vitamin")[0])] * n


def _distinct_counts_reference(ids: np.ndarray, lengths: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    offsets, term_ids, counts, lo = [0], [], [], 0
    for n in lengths.tolist():
        row: dict[int, int] = {}
        for t in ids[lo:lo + n].tolist():
            if t >= 0:
                row[t] = row.get(t, 0) + 1  # dicts keep first-insertion order
        term_ids += list(row)
        counts += list(row.values())
        offsets.append(len(term_ids))
        lo += n
    return offsets, term_ids, counts


@pytest.mark.parametrize("seed", range(4))
def test_distinct_counts_equal_a_dict_per_row_short_and_long_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 200, 60)  # rows past 64 ids take the sorting branch
    lengths[:3] = [0, 64, 65]
    ids = rng.integers(-3, 40, int(lengths.sum()))
    offsets, term_ids, counts = query_batch.distinct_counts(ids, lengths, 40)
    assert (offsets.tolist(), term_ids.tolist(), counts.tolist()) == _distinct_counts_reference(ids, lengths)


def test_distinct_counts_refuse_an_id_outside_the_vocabulary() -> None:
    with pytest.raises(ValueError, match="outside the vocabulary of 10"):
        query_batch.distinct_counts(np.array([3, 10]), np.array([2]), 10)

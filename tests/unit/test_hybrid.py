"""HybridRetriever: the parts' rankings fused as the fusion module says, and Li et al.'s PRF pipeline.

The dense part is a toy encoder (letter counts, unit length) so that every
score can be recomputed with NumPy here, independently of the index.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
import pytest

pytest.importorskip("faiss")

from sparsearch import BM25Encoder, Document, Retriever  # noqa: E402
from sparsearch.retriever.fusion import FusionConfig, fuse  # noqa: E402
from sparsearch.retriever.hybrid import HybridRetriever, HybridSettings  # noqa: E402
from sparsearch.types import CollectionStats  # noqa: E402

LETTERS = "abcdefgh"
DOCS = [
    Document("d1", "", "apple banana cherry"),
    Document("d2", "", "banana bread"),
    Document("d3", "", "cherry cake and apple cake"),
    Document("d4", "", "deep green hedge"),
    Document("d5", "", "a bad egg"),
    Document("d6", "", "fig and date"),
]


def letters(text: str) -> np.ndarray:
    v = np.array([text.count(c) for c in LETTERS], np.float32) + 0.01
    return v / np.linalg.norm(v)


class LetterEncoder:
    """A dense encoder whose vectors are normalised letter counts (a..h)."""

    name: ClassVar[str] = "letters"

    def encode_documents(self, documents: Sequence[Document]) -> np.ndarray:
        return np.array([letters(d.contents) for d in documents], np.float32).reshape(-1, len(LETTERS))

    def encode_queries(self, queries: Sequence[str], stats: CollectionStats | None = None) -> np.ndarray:
        return np.array([letters(q) for q in queries], np.float32).reshape(-1, len(LETTERS))

    def config(self) -> dict[str, Any]:
        return {}

    def state_files(self) -> dict[str, bytes]:
        return {}


@pytest.fixture(scope="module")
def parts() -> tuple[Retriever, Retriever]:
    return Retriever.build(DOCS, encoder=BM25Encoder()), Retriever.build(DOCS, encoder=LetterEncoder())


def dense_scores(query_vector: np.ndarray) -> dict[str, float]:
    return {d.doc_id: float(letters(d.contents) @ query_vector) for d in DOCS}


def test_the_dense_part_scores_inner_products(parts: tuple[Retriever, Retriever]) -> None:
    _, dense = parts
    hits = dense.search("apple cake", 6)
    want = dense_scores(letters("apple cake"))
    assert hits.ids == sorted(want, key=lambda d: -want[d])
    np.testing.assert_allclose(hits.scores, [want[d] for d in hits.ids], rtol=1e-5)


@pytest.mark.parametrize("method", ["minmax", "zscore", "rrf"])
def test_hybrid_equals_fusing_the_parts_rankings(parts: tuple[Retriever, Retriever], method: str) -> None:
    bm25, dense = parts
    config = FusionConfig(method=method, alpha=None if method == "rrf" else 0.3)
    hybrid = HybridRetriever([bm25, dense], HybridSettings(fusion=config, depth=6))
    for query in ("apple cake", "banana", "egg date"):
        want = fuse([bm25.search(query, 6), dense.search(query, 6)], config, k=3)
        got = hybrid.search(query, 3)
        assert got.ids == want.ids
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)


def test_prf_defaults_are_the_settings_chosen_on_training_queries() -> None:
    """benchmarks/prf_select.py's choice (docs/dense_hybrid.md): 3 documents, RM3 weight 0.5, Rocchio 0.7/0.3."""
    s = HybridSettings()
    assert (s.fb_docs, s.rm3.original_query_weight, s.rocchio_alpha, s.rocchio_beta) == (3, 0.5, 0.7, 0.3)


def test_rocchio_moves_the_dense_query_toward_the_fused_top(parts: tuple[Retriever, Retriever]) -> None:
    """Li et al.: feedback from the fused ranking, Rocchio on the dense part, fused again."""
    bm25, dense = parts
    config = FusionConfig(method="minmax", alpha=0.5)
    settings = HybridSettings(fusion=config, depth=6, prf="rocchio", fb_docs=2, rocchio_alpha=0.4, rocchio_beta=0.6)
    query = "apple cake"
    first_bm25, first_dense = bm25.search(query, 6), dense.search(query, 6)
    top2 = fuse([first_bm25, first_dense], config).ids[:2]
    q = 0.4 * letters(query) + 0.6 * np.mean([letters(next(d.contents for d in DOCS if d.doc_id == i))
                                               for i in top2], axis=0)
    moved = dense_scores(q.astype(np.float32))
    second_dense = {d: s for d, s in sorted(moved.items(), key=lambda x: -x[1])}
    want = fuse([first_bm25, second_dense], config, k=6)
    got = HybridRetriever([bm25, dense], settings).search(query, 6)
    assert got.ids == want.ids
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)


def test_rm3_needs_the_documents_text(parts: tuple[Retriever, Retriever]) -> None:
    with pytest.raises(ValueError, match="text_of"):
        HybridRetriever(list(parts), HybridSettings(prf="rm3"))
    texts = {d.doc_id: d for d in DOCS}
    hybrid = HybridRetriever(list(parts), HybridSettings(prf="both", depth=6, fb_docs=2), texts.get)
    hits = hybrid.search("apple", 6)
    assert set(hits.ids) <= set(texts) and len(hits) > 0

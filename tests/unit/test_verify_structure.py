"""Structural checks: every invariant a scoring kernel trusts is verified, and a break is named."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import pytest

from sparsearch.index import kernels
from sparsearch.index.config import IndexConfig
from sparsearch.index.segment import DocIds, Segment, StoredField, build_segment
from sparsearch.index.verify import structure_problems
from sparsearch.types import SparseBatch


def make_segment(quantization: str = "uint8", n_docs: int = 300, n_terms: int = 40) -> Segment:
    rng = np.random.default_rng(7)
    rows, lengths = [], []
    for _ in range(n_docs):
        terms = rng.choice(n_terms, size=int(rng.integers(1, 8)), replace=False)
        weights = rng.gamma(1.0, 1.0, len(terms)) + 0.01
        rows.append(dict(zip(terms.tolist(), weights.tolist())))
        lengths.append(float(len(terms)))
    batch = SparseBatch.from_dicts(rows, lengths)
    stored = [{"title": f"title {i}", "metadata": {"n": i}} for i in range(n_docs)]
    config = IndexConfig(quantization=quantization, stored_fields=("title", "metadata"))  # type: ignore[arg-type]
    return build_segment(batch, [f"d{i}" for i in range(n_docs)], stored, n_terms, config)


def test_a_built_segment_has_no_problems() -> None:
    for quantization in ("uint8", "none"):
        seg = make_segment(quantization)
        assert structure_problems(seg, deep=True) == []


def _with(seg: Segment, **parts: Any) -> Segment:
    return dataclasses.replace(seg, **parts)


def _copy(a: np.ndarray) -> np.ndarray:
    return np.array(a, copy=True)


def bad_doc_id(seg: Segment) -> Segment:
    docs = _copy(seg.postings_docs)
    docs[len(docs) // 2] = seg.n_docs + 5
    return _with(seg, postings_docs=docs)


def huge_doc_id(seg: Segment) -> Segment:
    docs = _copy(seg.postings_docs)
    docs[3] |= np.uint32(1 << 31)  # the bit flip that segfaulted `sparsearch search`
    return _with(seg, postings_docs=docs)


def unordered_docs(seg: Segment) -> Segment:
    docs = _copy(seg.postings_docs)
    t = int(np.argmax(np.diff(seg.postings_offsets)))
    lo = int(seg.postings_offsets[t])
    docs[lo], docs[lo + 1] = docs[lo + 1], docs[lo]
    return _with(seg, postings_docs=docs)


def offsets_backwards(seg: Segment) -> Segment:
    offsets = _copy(seg.postings_offsets)
    offsets[5] = offsets[7] + 1
    return _with(seg, postings_offsets=offsets)


def offsets_past_end(seg: Segment) -> Segment:
    offsets = _copy(seg.postings_offsets)
    offsets[-1] += 1000
    return _with(seg, postings_offsets=offsets)


def nan_weight(seg: Segment) -> Segment:
    weights = _copy(seg.postings_weights)
    weights[2] = np.nan
    return _with(seg, postings_weights=weights)


def negative_weight(seg: Segment) -> Segment:
    weights = _copy(seg.postings_weights)
    weights[2] = -1.0
    return _with(seg, postings_weights=weights)


def infinite_scale(seg: Segment) -> Segment:
    scales = np.ones(seg.n_terms, np.float32)
    scales[1] = np.inf
    return _with(seg, term_scales=scales)


def short_norms(seg: Segment) -> Segment:
    return _with(seg, doc_norms=seg.doc_norms[:-1])


def wrong_dtype(seg: Segment) -> Segment:
    return _with(seg, postings_docs=seg.postings_docs.astype(np.int64))


def id_offsets_beyond_data(seg: Segment) -> Segment:
    offsets = _copy(seg.doc_ids.offsets)  # type: ignore[union-attr]
    offsets[10] = 10**6
    return _with(seg, doc_ids=DocIds(offsets, seg.doc_ids.data))  # type: ignore[union-attr]


def field_offsets_beyond_data(seg: Segment) -> Segment:
    title = seg.fields["title"]
    offsets = _copy(title.offsets)
    offsets[-1] += 1
    return _with(seg, fields={**seg.fields, "title": StoredField(offsets, title.data, False)})


def deletion_mask_garbage(seg: Segment) -> Segment:
    mask = np.zeros(seg.n_docs, np.uint8)
    mask[4] = 7
    return _with(seg, deleted=mask)


def float_length_nan(seg: Segment) -> Segment:
    lengths = seg.doc_lengths.astype(np.float32)
    lengths[0] = np.nan
    return _with(seg, doc_lengths=lengths)


CASES: dict[str, tuple[Callable[[Segment], Segment], str, str]] = {
    "doc id >= n_docs": (bad_doc_id, "uint8", "doc id >="),
    "flipped high bit": (huge_doc_id, "uint8", "doc id >="),
    "doc ids out of order": (unordered_docs, "uint8", "out of order"),
    "offsets decrease": (offsets_backwards, "uint8", "not monotone"),
    "offsets past the end": (offsets_past_end, "uint8", "not monotone"),
    "NaN weight": (nan_weight, "none", "must be finite"),
    "negative weight": (negative_weight, "none", "must be finite"),
    "infinite term scale": (infinite_scale, "uint8", "term scale 1"),
    "arrays of different lengths": (short_norms, "uint8", "doc_norms has"),
    "unexpected dtype": (wrong_dtype, "uint8", "dtype int64"),
    "id offsets beyond the id bytes": (id_offsets_beyond_data, "uint8", "doc id offsets"),
    "field offsets beyond the data": (field_offsets_beyond_data, "uint8", "stored field 'title'"),
    "deletion mask not 0/1": (deletion_mask_garbage, "uint8", "deletion mask"),
    "NaN document length": (float_length_nan, "uint8", "length of document 0"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_broken_invariant_is_reported(case: str) -> None:
    damage, quantization, expected = CASES[case]
    problems = structure_problems(damage(make_segment(quantization)), first_only=True)
    assert len(problems) == 1 and expected in problems[0], problems


def test_manifest_counts_must_agree() -> None:
    from sparsearch.index.manifest import SegmentInfo

    seg = make_segment()
    info = SegmentInfo("seg", seg.n_docs + 1, seg.n_postings, seg.n_terms, {})
    assert "the manifest says" in structure_problems(seg, info)[0]


def test_deep_check_finds_bad_utf8_and_json() -> None:
    seg = make_segment()
    data = _copy(seg.doc_ids.data)  # type: ignore[union-attr]
    data[0] = 0xFF
    broken = _with(seg, doc_ids=DocIds(seg.doc_ids.offsets, data))  # type: ignore[union-attr]
    assert structure_problems(broken) == []  # bytes are not decoded on open ...
    assert "not valid UTF-8" in structure_problems(broken, deep=True)[0]  # ... but by `sparsearch check`
    meta = seg.fields["metadata"]
    mdata = _copy(meta.data)
    mdata[int(meta.offsets[3])] = ord("[")
    broken = _with(seg, fields={**seg.fields, "metadata": StoredField(meta.offsets, mdata, True)})
    assert "stored field 'metadata' of document 3" in structure_problems(broken, deep=True)[0]


def test_validation_kernels_match_numpy() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        n_terms, n_docs = int(rng.integers(1, 30)), int(rng.integers(1, 50))
        lists = [np.sort(rng.choice(n_docs, size=int(rng.integers(0, n_docs + 1)), replace=False))
                 for _ in range(n_terms)]
        offsets = np.zeros(n_terms + 1, np.int64)
        np.cumsum([len(x) for x in lists], out=offsets[1:])
        docs = np.concatenate(lists).astype(np.uint32) if offsets[-1] else np.zeros(0, np.uint32)
        bounds = np.array([0, n_terms // 2, n_terms], np.int64)
        assert kernels.first_bad_offset(offsets, len(docs)) == -1
        assert kernels.first_bad_posting_list(offsets, docs, n_docs, bounds) == -1
        if len(docs):
            p = int(rng.integers(0, len(docs)))
            docs[p] = n_docs + int(rng.integers(0, 100))
            term = int(np.searchsorted(offsets, p, side="right")) - 1
            assert kernels.first_bad_posting_list(offsets, docs, n_docs, bounds) == term
    weights = np.ones(1000, np.float32)
    assert kernels.first_bad_weight(weights, 4) == -1
    weights[[700, 300]] = [np.inf, -0.5]
    assert kernels.first_bad_weight(weights, 4) == 300
    assert kernels.first_bad_offset(np.array([1, 2], np.uint32), 2) == 0
    assert kernels.first_bad_offset(np.array([0, 2, 1], np.uint32), 1) == 2
    assert kernels.first_bad_offset(np.array([0, 2, 3], np.uint32), 4) == 2

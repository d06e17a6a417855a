"""The acceleration structures on disk: written at flush and merge, checked, and optional.

An index written without them (before they existed, or of segments too small
to get them) opens and searches in every mode, building them in memory; one
written with them keeps them through reopening, merging and ``sparsearch check``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sparsearch import Index
from sparsearch.errors import IndexFormatError
from sparsearch.index import accel as accel_mod
from sparsearch.index.approx import ApproxSettings
from sparsearch.index.manifest import Manifest
from sparsearch.index.verify import check_index
from sparsearch.vectors_io import build_from_vectors, query_vector_batch, read_vector_collection


def write_vectors(path: Path, n: int, seed: int, first: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with path.open("w") as f:
        for i in range(first, first + n):
            terms = np.unique(np.minimum(rng.zipf(1.3, 40), 400))
            vector = {f"t{t}": round(float(rng.random() + 0.01), 4) for t in terms}
            f.write(json.dumps({"id": f"d{i}", "vector": vector}) + "\n")
    return path


def queries(seed: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    return [{f"t{t}": float(rng.random() + 0.1) for t in np.unique(np.minimum(rng.zipf(1.3, 8), 400))}
            for _ in range(15)]


def same_in_every_mode(index: Index) -> None:
    batch = query_vector_batch(index, queries(99))
    snap = index.writer.snapshot
    expected = snap.hits(batch, 10)
    for mode, settings in (("bmp", None), ("approx", ApproxSettings.exhaustive())):
        got = snap.hits(batch, 10, mode=mode, approx=settings)
        for e, g in zip(expected, got):
            assert g.ids == e.ids and np.array_equal(g.scores, e.scores)


def accel_files(directory: Path) -> list[list[str]]:
    return [sorted(f for f in info.files if f.startswith("accel.")) for info in Manifest.read(directory).segments]


def test_index_without_the_files_opens_and_searches_in_every_mode(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel_mod, "MIN_BUILD_POSTINGS", 1 << 40)  # as written before the structures existed
    out = tmp_path / "idx"
    build_from_vectors(write_vectors(tmp_path / "v.jsonl", 500, 1), out)
    assert accel_files(out) == [[]]
    index = Index.open(out)
    assert index.writer.snapshot.segments[0].accel == {}
    same_in_every_mode(index)
    assert set(index.writer.snapshot.segments[0].accel) == set(accel_mod.STEMS)  # built in memory, on demand
    assert accel_files(out) == [[]] and check_index(out).ok


def test_files_are_written_at_flush_and_merge_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel_mod, "MIN_BUILD_POSTINGS", 0)
    out = tmp_path / "idx"
    build_from_vectors(write_vectors(tmp_path / "v.jsonl", 400, 2), out)
    expected = [f"accel.{s}.npy" for s in sorted(accel_mod.STEMS)]
    assert accel_files(out) == [expected]
    index = Index.open(out)
    index.add(read_vector_collection(write_vectors(tmp_path / "w.jsonl", 300, 3, first=1000)))
    index.delete([f"d{i}" for i in range(0, 400, 7)])
    index.commit()
    assert accel_files(out) == [expected, expected]
    same_in_every_mode(Index.open(out))
    index.merge(merge_everything())
    index.commit()
    assert accel_files(out) == [expected]
    merged = Index.open(out)
    seg = merged.writer.snapshot.segments[0]
    assert seg.n_docs == 700 - len(range(0, 400, 7))
    same_in_every_mode(merged)
    report = check_index(out)
    assert report.ok, report.problems


def test_a_corrupt_structure_is_refused_on_open_and_reported_by_check(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel_mod, "MIN_BUILD_POSTINGS", 0)
    out = tmp_path / "idx"
    build_from_vectors(write_vectors(tmp_path / "v.jsonl", 300, 4), out)
    seg_dir = out / Manifest.read(out).segments[0].name
    terms = np.load(seg_dir / "accel.fwd_terms.npy")
    terms[3] = 60000  # a term id no vocabulary of this index holds: the kernels would read past their tables
    np.save(seg_dir / "accel.fwd_terms.npy", terms)
    report = check_index(out)
    assert not report.ok and any("accel.fwd_terms.npy" in p for p in report.problems)
    with pytest.raises(IndexFormatError, match="accel.fwd_terms.npy"):
        Index.open(out)
    info = Manifest.read(out).segments[0]
    arrays = {s: np.load(seg_dir / f"accel.{s}.npy") for s in accel_mod.STEMS}
    assert accel_mod.structure_problem(arrays, info.n_docs, info.n_terms, info.n_postings) == \
        f"accel.fwd_terms.npy holds a value outside [0, {info.n_terms})"


def merge_everything():  # type: ignore[no-untyped-def]
    from sparsearch.index.merge import MergePolicy

    return MergePolicy(merge_factor=2)

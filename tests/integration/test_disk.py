"""Build -> save -> memory-mapped open -> search, and the manifest's defences."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sparsearch import Index, read_corpus
from sparsearch.errors import IndexExistsError, IndexFormatError, IndexNotFoundError
from sparsearch.index.manifest import MANIFEST_NAME


@pytest.fixture(scope="module")
def built(scifact_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Index, Path]:
    path = tmp_path_factory.mktemp("idx") / "index"
    return Index.build(read_corpus(scifact_slice), path=path), path


def test_round_trip_through_memory_map(built: tuple[Index, Path], scifact_queries: list[str]) -> None:
    memory, path = built
    opened = Index.open(path)
    seg = opened.inverted.segments[0]
    # Files up to 1 MiB are read (and checksummed), larger ones memory-mapped without keeping a file
    # descriptor (test_integrity.py); either way Numba gets a plain read-only ndarray.
    assert type(seg.postings_docs) is np.ndarray
    assert not seg.postings_docs.flags.writeable
    assert opened.n_docs == memory.n_docs == 1500
    assert opened.encoder.vocab.terms == memory.encoder.vocab.terms
    queries = scifact_queries[:200]
    for a, b in zip(memory.search_batch(queries, 20), opened.search_batch(queries, 20)):
        assert a.ids == b.ids
        np.testing.assert_array_equal(a.scores, b.scores)
    top = opened.search(queries[0], 3)
    assert opened.stored_fields(int(top.internal_ids[0]))["title"]


def test_info_reports_statistics(built: tuple[Index, Path]) -> None:
    info = Index.open(built[1]).info()
    assert info["n_docs"] == 1500 and info["generation"] == 1
    assert info["n_postings"] > info["n_terms"] > 1000
    assert info["index_bytes"] > 0 and info["config"]["quantization"] == "uint8"


def test_existing_index_refused_without_overwrite(built: tuple[Index, Path], scifact_slice: Path) -> None:
    _, path = built
    with pytest.raises(IndexExistsError, match="--overwrite"):
        Index.build(read_corpus(scifact_slice), path=path)


def test_overwrite_replaces_and_sweeps_old_files(tmp_path: Path, scifact_slice: Path) -> None:
    path = tmp_path / "index"
    Index.build(read_corpus(scifact_slice), path=path)
    from sparsearch.types import Document

    Index.build([Document("only", "t", "one small document")], path=path, overwrite=True)
    opened = Index.open(path)
    assert opened.n_docs == 1 and opened.inverted.manifest.generation == 2
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith(".")) == [
        MANIFEST_NAME, "seg-000002-000", "vocab-000002.json"]


def test_refuses_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    from sparsearch.types import Document

    with pytest.raises(IndexExistsError, match="not a sparsearch index"):
        Index.build([Document("a", "", "x")], path=tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_corrupt_manifest_is_a_clear_error(built: tuple[Index, Path], tmp_path: Path) -> None:
    path = _copy(built[1], tmp_path / "c1")
    (path / MANIFEST_NAME).write_text((path / MANIFEST_NAME).read_text()[:100])
    with pytest.raises(IndexFormatError, match="corrupt manifest"):
        Index.open(path)


def test_tampered_manifest_fails_checksum(built: tuple[Index, Path], tmp_path: Path) -> None:
    path = _copy(built[1], tmp_path / "c2")
    body = json.loads((path / MANIFEST_NAME).read_text())
    body["segments"][0]["n_docs"] += 1
    (path / MANIFEST_NAME).write_text(json.dumps(body))
    with pytest.raises(IndexFormatError, match="checksum"):
        Index.open(path)


def test_newer_format_version_is_refused(built: tuple[Index, Path], tmp_path: Path) -> None:
    path = _copy(built[1], tmp_path / "c3")
    body = json.loads((path / MANIFEST_NAME).read_text())
    body["format_version"] = 99
    (path / MANIFEST_NAME).write_text(json.dumps(body))
    with pytest.raises(IndexFormatError, match="newer than this sparsearch supports"):
        Index.open(path)


def test_truncated_segment_file_is_detected(built: tuple[Index, Path], tmp_path: Path) -> None:
    path = _copy(built[1], tmp_path / "c4")
    target = path / "seg-000001-000" / "postings_docs.npy"
    target.write_bytes(target.read_bytes()[:-8])
    with pytest.raises(IndexFormatError, match="differs from the manifest"):
        Index.open(path)


def test_missing_index(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError):
        Index.open(tmp_path / "nothing")
    with pytest.raises(IndexNotFoundError, match="not a sparsearch index"):
        Index.open(tmp_path)

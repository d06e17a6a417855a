"""Corrupt files give a clear error (never a crash), `sparsearch check`, format-1 indexes, file descriptors.

Crash-prone cases (a search over a corrupt posting list used to segfault)
run in a subprocess, so a regression fails the test instead of killing pytest.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sparsearch import Index
from sparsearch.cli import app
from sparsearch.errors import IndexFormatError, StorageError, TooManyOpenFilesError
from sparsearch.index import manifest as manifest_module
from sparsearch.index import segment as segment_module
from sparsearch.index.checksum import read_error
from sparsearch.index.config import IndexConfig
from sparsearch.index.manifest import MANIFEST_NAME, Manifest, _checksum
from sparsearch.index.merge import merge_segments
from sparsearch.index.verify import check_index
from sparsearch.types import Document

WORDS = ("protein cell growth heart disease vitamin deficiency gene expression tumour blood pressure insulin "
         "receptor signal pathway brain neuron memory sleep").split()
QUERY = "protein cell heart"


def corpus(n: int = 400, seed: int = 0) -> list[Document]:
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 30))))
        docs.append(Document(f"doc-{i}", f"title {i} {rng.choice(WORDS)}", text, {"rank": i, "tag": "é"}))
    return docs


CONFIG = IndexConfig(quantization="uint8", stored_fields=("title", "metadata"))


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A format-2 index with stored text and JSON fields and a deletion mask."""
    path = tmp_path_factory.mktemp("integrity") / "index"
    index = Index.build(corpus(), path=path, config=CONFIG)
    index.delete(["doc-3", "doc-7"])
    index.commit()
    return path


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def data_offset(path: Path) -> int:
    """Where the array data of a ``.npy`` file starts (after its header)."""
    return path.stat().st_size - np.load(path, mmap_mode="r").nbytes


def flip_bit(path: Path, position: int, bit: int = 0) -> None:
    """Flip one bit in place: the file keeps its size, so only a checksum or a structural check can notice."""
    raw = bytearray(path.read_bytes())
    raw[position] ^= 1 << bit
    path.write_bytes(bytes(raw))


def segment_dir(path: Path) -> Path:
    return path / Manifest.read(path).segments[0].name


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})


# Run the CLI with every file mapped and no checksum verified on open: the path large indexes take,
# where only the structural checks stand between a corrupt posting list and the kernels.
LAZY_CLI = """
    import sys
    from sparsearch.index import segment
    segment.SMALL_FILE_BYTES = 0
    segment.VERIFY_ON_OPEN_BYTES = 0
    from sparsearch.cli import run
    sys.argv = ["sparsearch", *sys.argv[1:]]
    run()
"""


def _posting_position(path: Path, word: str) -> tuple[Path, int]:
    """Byte position of the highest byte of a posting (doc id) of ``word``'s list."""
    index = Index.open(path)
    term = index.encoder.encode_queries([word], index.inverted.stats).term_ids[0]
    seg = index.inverted.segments[0]
    p = int(seg.postings_offsets[term]) + 1
    target = segment_dir(path) / "postings_docs.npy"
    return target, data_offset(target) + 4 * p + 3


# ------------------------------------------------------------------ item 6: corrupt files


def test_flipped_doc_id_bit_gives_an_error_not_a_segfault(healthy: Path, tmp_path: Path) -> None:
    """The issue's reproduction: one flipped bit in postings_docs.npy used to crash `sparsearch search`."""
    path = copy(healthy, tmp_path / "flip")
    target, position = _posting_position(path, "protein")
    flip_bit(target, position, 6)  # doc id + 2^30: far beyond n_docs
    for code in ("from sparsearch.cli import run; import sys; sys.argv = ['sparsearch', *sys.argv[1:]]; run()",
                 LAZY_CLI):
        r = run_python(code, "search", str(path), "protein")
        assert r.returncode == 2, (r.returncode, r.stderr[-2000:])  # -11 was the segfault
        assert "postings_docs" in r.stderr or "posting list" in r.stderr
        assert "index is corrupt" in r.stderr or "checksum mismatch" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_corrupt_offsets_are_refused_by_structure_alone(healthy: Path, tmp_path: Path) -> None:
    path = copy(healthy, tmp_path / "offsets")
    target = segment_dir(path) / "postings_offsets.npy"
    flip_bit(target, data_offset(target) + 8 * 5 + 4, 0)  # term 5's offset + 2^32
    r = run_python(LAZY_CLI, "search", str(path), QUERY)
    assert r.returncode == 2 and "postings offsets are not monotone" in r.stderr, r.stderr[-2000:]


def _files_of_every_kind(path: Path) -> list[str]:
    manifest = Manifest.read(path)
    info = manifest.segments[0]
    kinds = [f"{info.name}/{name}" for name in sorted(info.files)]
    return kinds + sorted(manifest.files)


def test_the_fixture_has_every_kind_of_file(healthy: Path) -> None:
    names = {Path(n).name for n in _files_of_every_kind(healthy)}
    assert {"postings_offsets.npy", "postings_docs.npy", "postings_weights.npy", "doc_lengths.npy", "doc_norms.npy",
            "doc_ids.offsets.npy", "doc_ids.data.npy", "field.title.text.offsets.npy", "field.title.text.data.npy",
            "field.metadata.json.offsets.npy", "field.metadata.json.data.npy"} <= names
    assert any(n.startswith("del-") for n in names) and any(n.startswith("vocab-") for n in names)


KINDS = ["postings_offsets", "postings_docs", "postings_weights", "doc_lengths", "doc_norms", "doc_ids.offsets",
         "doc_ids.data", "field.title.text.offsets", "field.title.text.data", "field.metadata.json.offsets",
         "field.metadata.json.data", "del-", "vocab-"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_flipped_bit_in_each_kind_of_file_is_caught(healthy: Path, tmp_path: Path, kind: str) -> None:
    path = copy(healthy, tmp_path / "c")
    name = next(n for n in _files_of_every_kind(path) if Path(n).name.startswith(kind + ("" if kind.endswith("-")
                                                                                         else ".npy")))
    target = path / name
    size = target.stat().st_size
    if target.suffix == ".npy":
        start = data_offset(target)
        position = start + (size - start) // 2
        bit = 0
    else:  # the vocabulary: flip a letter into another printable character, so the JSON stays valid
        raw = target.read_bytes()
        position = next(i for i in range(len(raw) // 2, len(raw)) if 0x61 <= raw[i] <= 0x7A)
        bit = 0
    flip_bit(target, position, bit)
    assert target.stat().st_size == size
    with pytest.raises(IndexFormatError, match="checksum mismatch") as caught:
        Index.open(path)
    assert Path(name).name in str(caught.value)
    report = check_index(path)
    assert not report.ok and any(Path(name).name in p and "checksum mismatch" in p for p in report.problems)
    r = CliRunner().invoke(app, ["check", str(path)])
    assert r.exit_code == 2 and Path(name).name in r.output


def test_lazy_checksums_catch_what_structure_cannot(healthy: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Large files are mapped and summed lazily: a flipped weight opens, but check and merge refuse it."""
    monkeypatch.setattr(segment_module, "SMALL_FILE_BYTES", 0)
    monkeypatch.setattr(segment_module, "VERIFY_ON_OPEN_BYTES", 0)
    path = copy(healthy, tmp_path / "lazy")
    target = segment_dir(path) / "postings_weights.npy"
    flip_bit(target, data_offset(target) + 10, 1)
    index = Index.open(path)  # structurally sound: a weight of 3 instead of 1 is still a weight
    seg = index.inverted.segments[0]
    assert type(seg.postings_docs.base).__name__ == "_Mapping"
    assert "postings_weights.npy" in seg.source.unverified  # type: ignore[union-attr]
    with pytest.raises(IndexFormatError, match="postings_weights.npy: checksum mismatch"):
        merge_segments([seg], index.encoder.n_terms, index.inverted.config)
    with pytest.raises(IndexFormatError, match="checksum mismatch"):
        seg.verify_checksums()  # still pending after the failed merge: it fails again, every time
    assert any("postings_weights.npy: checksum mismatch" in p for p in check_index(path).problems)
    from sparsearch.index.inverted import InvertedIndex

    with pytest.raises(IndexFormatError, match="checksum mismatch"):
        InvertedIndex.open(path, Manifest.read(path), verify_checksums="full")


def test_check_passes_on_a_healthy_index(healthy: Path) -> None:
    r = CliRunner().invoke(app, ["check", str(healthy)])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("ok: ") and "1 segments, 400 documents" in r.output
    report = check_index(healthy)
    assert report.ok and report.files == len(_files_of_every_kind(healthy)) and report.format_version == 2


def test_check_lists_every_problem_one_line_each(healthy: Path, tmp_path: Path) -> None:
    path = copy(healthy, tmp_path / "two")
    for stem in ("doc_norms", "field.title.text.data"):
        target = segment_dir(path) / f"{stem}.npy"
        flip_bit(target, target.stat().st_size - 1)
    r = CliRunner().invoke(app, ["check", str(path)])
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 2
    assert all(line.startswith("error: ") for line in lines)
    r = CliRunner().invoke(app, ["check", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "no such index directory" in r.output


def test_a_truncated_header_or_garbage_file_is_a_format_error(healthy: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segment_module, "SMALL_FILE_BYTES", 0)
    monkeypatch.setattr(segment_module, "VERIFY_ON_OPEN_BYTES", 0)
    path = copy(healthy, tmp_path / "garbage")
    target = segment_dir(path) / "doc_lengths.npy"
    target.write_bytes(b"\x00" * target.stat().st_size)
    with pytest.raises(IndexFormatError, match="doc_lengths.npy: unreadable segment file header"):
        Index.open(path)


# ------------------------------------------------------------------ format 1 still opens


def downgrade_to_format_1(path: Path) -> None:
    """Rewrite a format-2 index as sparsearch 0.1 wrote it: fixed-width ids, no checksums, version 1."""
    body = json.loads((path / MANIFEST_NAME).read_text())
    for s in body["segments"]:
        seg = path / s["name"]
        offsets = np.load(seg / "doc_ids.offsets.npy")
        data = np.load(seg / "doc_ids.data.npy").tobytes()
        ids = [data[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
        np.save(seg / "doc_ids.npy", np.array(ids, dtype=f"S{max(map(len, ids))}"))
        for stale in ("doc_ids.offsets.npy", "doc_ids.data.npy"):
            (seg / stale).unlink()
            del s["files"][stale]
        s["files"]["doc_ids.npy"] = (seg / "doc_ids.npy").stat().st_size
        del s["crc32"]
    del body["crc32"], body["checksum"]
    body["format_version"] = 1
    body["checksum"] = _checksum(body)
    (path / MANIFEST_NAME).write_text(json.dumps(body))


def test_format_1_index_opens_searches_and_upgrades(healthy: Path, tmp_path: Path) -> None:
    path = copy(healthy, tmp_path / "v1")
    downgrade_to_format_1(path)
    old = Index.open(path)
    new = Index.open(healthy)
    assert type(old.inverted.segments[0].doc_ids).__name__ == "FixedWidthIds"
    assert old.inverted.manifest.version == 1  # type: ignore[union-attr]
    a, b = old.search(QUERY, 20), new.search(QUERY, 20)
    assert a.ids == b.ids and np.array_equal(a.scores, b.scores)
    assert old.get("doc-10") == new.get("doc-10") and old.get("doc-3") is None
    r = CliRunner().invoke(app, ["check", str(path)])
    assert r.exit_code == 0 and "format 1" in r.output, r.output
    old.add([Document("new-doc", "fresh", "protein protein")])
    old.commit()
    upgraded = Manifest.read(path)
    assert upgraded.version == 2 and upgraded.files_without_checksum() == []
    assert check_index(path).ok
    reopened = Index.open(path)
    assert reopened.search("protein", 1000).ids.count("new-doc") == 1
    merged = merge_segments(reopened.inverted.segments, reopened.encoder.n_terms, reopened.inverted.config)
    assert type(merged.doc_ids).__name__ == "DocIds" and "doc-10" in merged.doc_ids.tolist()


def test_format_1_manifest_tampering_is_still_caught(healthy: Path, tmp_path: Path) -> None:
    path = copy(healthy, tmp_path / "v1t")
    downgrade_to_format_1(path)
    body = json.loads((path / MANIFEST_NAME).read_text())
    body["format_version"] = 2  # claims checksums it does not have
    body["checksum"] = _checksum({k: v for k, v in body.items() if k != "checksum"})
    (path / MANIFEST_NAME).write_text(json.dumps(body))
    with pytest.raises(IndexFormatError, match="no checksum for"):
        Index.open(path)


# ------------------------------------------------------------------ item 7: ids


ODD_IDS = ["z\x00", "z", "𝔘𝔫𝔦", "line\nbreak", "", "../../victim", "é" * 512]


def test_odd_ids_round_trip_through_disk_delete_and_merge(tmp_path: Path) -> None:
    from sparsearch.index.merge import MergePolicy

    docs = [Document(doc_id, "", f"protein {i} " + "cell " * i) for i, doc_id in enumerate(ODD_IDS)]
    path = tmp_path / "ids"
    Index.build(docs, path=path)
    index = Index.open(path)
    assert sorted(index.search("protein", 100).ids) == sorted(ODD_IDS)  # "z\0" and "z": two hits, two names
    assert index.get("z\x00") is not None and index.get("z") is not None
    assert index.delete(["z\x00"]) == ["z\x00"]
    index.commit()
    added = ["new\x00", "new", "new\n", "😀", "n4", "n5"]  # six live documents: the same merge tier as the first segment
    index.add([Document(doc_id, "", "protein cell") for doc_id in added])
    index.commit()
    reopened = Index.open(path)
    assert len(reopened.inverted.segments) == 2
    expected = sorted([i for i in ODD_IDS if i != "z\x00"] + added)
    assert sorted(reopened.search("protein", 100).ids) == expected
    assert reopened.merge(MergePolicy(merge_factor=2))
    merged = Index.open(path)
    assert len(merged.inverted.segments) == 1
    assert sorted(merged.search("protein", 100).ids) == expected
    assert sorted(merged.inverted.resolve_ids(np.arange(merged.inverted.id_space))) == expected  # the bulk table
    assert check_index(path).ok


def test_overlong_id_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from sparsearch.errors import InputError

    docs = [Document(f"d{i}", "", "protein") for i in range(2000)] + [Document("L" * 100_000, "", "protein")]
    with pytest.raises(InputError, match="100000 bytes long in UTF-8; ids are limited to 2048") as caught:
        Index.build(docs, path=tmp_path / "big")
    assert "'LLLL" in str(caught.value) and len(str(caught.value)) < 300
    assert not (tmp_path / "big" / MANIFEST_NAME).exists()


def test_index_size_follows_the_id_bytes(tmp_path: Path) -> None:
    """One long id among 2,000 short ones used to widen every id to its length (167 KB -> 191 MB)."""
    docs = [Document(f"d{i}", "", "protein") for i in range(2000)] + [Document("L" * 1000, "", "protein")]
    path = tmp_path / "sized"
    Index.build(docs, path=path)
    seg = segment_dir(path)
    id_bytes = sum(len(d.doc_id.encode()) for d in docs)
    data_file = (seg / "doc_ids.data.npy").stat().st_size
    assert id_bytes <= data_file <= id_bytes + 256  # the bytes plus a .npy header
    assert (seg / "doc_ids.offsets.npy").stat().st_size <= 4 * (len(docs) + 1) + 256
    total = sum(f.stat().st_size for f in seg.iterdir())
    assert total < 100_000  # fixed width would hold 2,001 x 1,000 bytes of ids alone


# ------------------------------------------------------------------ item 9: file descriptors


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def mappings_of(path: Path) -> int:
    with open("/proc/self/maps") as f:
        return sum(str(path) in line for line in f)


def test_opening_100_indexes_keeps_no_file_descriptors(healthy: Path, tmp_path: Path) -> None:
    paths = [copy(healthy, tmp_path / f"c{i}") for i in range(100)]
    Index.open(paths[0])
    before = open_fds()
    opened = [Index.open(p) for p in paths]
    assert open_fds() - before <= 2, open_fds() - before  # was ~11 per index (one per mapped .npy)
    assert all(len(o.search(QUERY, 5).ids) == 5 for o in opened)


def test_mapped_files_keep_no_descriptor_and_are_unmapped_when_dropped(
        healthy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segment_module, "SMALL_FILE_BYTES", 0)
    path = copy(healthy, tmp_path / "mapped")
    baseline = Index.open(healthy)
    before = open_fds()
    opened = [Index.open(path) for _ in range(30)]
    assert open_fds() - before <= 2
    assert mappings_of(path) >= 30 * 10  # every segment file of every open is a mapping
    assert not opened[0].inverted.segments[0].postings_docs.flags.writeable
    for o in opened:
        assert o.search(QUERY, 10).ids == baseline.search(QUERY, 10).ids
    del opened, o
    gc.collect()
    assert mappings_of(path) == 0


def test_running_out_of_descriptors_is_reported_as_a_limit(healthy: Path) -> None:
    r = run_python("""
        import errno, json, os, resource, sys
        from pathlib import Path
        from sparsearch import Index
        from sparsearch.errors import IndexFormatError, TooManyOpenFilesError
        from sparsearch.index.manifest import Manifest
        from sparsearch.index.segment import open_segment

        path = Path(sys.argv[1])
        info = Manifest.read(path).segments[0]
        Index.open(path)  # everything imported and compiled before the limit bites
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
        held = []
        try:
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError as e:
            assert e.errno == errno.EMFILE
        out = []
        for attempt in (lambda: Index.open(path), lambda: open_segment(path, info)):
            try:
                attempt()
                out.append("opened")
            except TooManyOpenFilesError as e:
                out.append("limit: " + str(e))
            except IndexFormatError as e:
                out.append("format: " + str(e))
        print(json.dumps(out))
    """, str(healthy))
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(results) == 2
    for result in results:
        assert result.startswith("limit: ") and "file descriptors" in result and "not corruption" in result, result


def test_io_errors_are_storage_errors_not_corruption(healthy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_read(fd: int, size: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(segment_module, "_read_all", failing_read)
    with pytest.raises(StorageError, match="Input/output error") as caught:
        Index.open(healthy)
    assert not isinstance(caught.value, IndexFormatError) and caught.value.errno == errno.EIO
    monkeypatch.undo()

    def failing_open(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(manifest_module, "open", failing_open, raising=False)
    with pytest.raises(StorageError, match="reading the manifest failed"):
        Manifest.read(healthy)


def test_read_errors_map_to_their_cause(tmp_path: Path) -> None:
    cases = {errno.EMFILE: TooManyOpenFilesError, errno.ENFILE: TooManyOpenFilesError, errno.EIO: StorageError,
             errno.EACCES: StorageError, errno.ENOENT: IndexFormatError}
    for code, kind in cases.items():
        error = read_error(OSError(code, os.strerror(code)), tmp_path / "f.npy")
        assert type(error) is kind, (code, error)
    assert not isinstance(read_error(OSError(errno.EIO, "x"), "f"), IndexFormatError)


def test_without_libc_mmap_numpy_maps_large_files(healthy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ctypes cannot reach mmap(2), NumPy's mapping (one descriptor per file) is the fallback."""
    expected = Index.open(healthy).search(QUERY, 10).ids
    monkeypatch.setattr(segment_module, "_libc", None)
    monkeypatch.setattr(segment_module, "SMALL_FILE_BYTES", 0)
    opened = Index.open(healthy)
    seg = opened.inverted.segments[0]
    assert isinstance(seg.postings_docs.base, np.memmap) and type(seg.postings_docs) is np.ndarray
    assert opened.search(QUERY, 10).ids == expected
    seg.verify_checksums()

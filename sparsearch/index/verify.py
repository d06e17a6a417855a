"""Integrity of an index: structural checks on every open, and the full check behind ``sparsearch check``.

Two defences, because they catch different damage:

* **Structure** (:func:`structure_problems`, run by every ``open_segment``):
  the invariants the Numba kernels rely on without bounds checks — dtypes,
  array lengths that agree with each other and the manifest, CSR offsets
  that start at 0, never decrease and end at the data's length, posting doc
  ids below ``n_docs`` and in order, finite non-negative weights, scales and
  lengths.  Corrupt data then raises :class:`~sparsearch.errors.IndexFormatError`
  on open instead of crashing the process on the first query.  One parallel
  pass over the postings: ~0.1 s per 10^8 postings (docs/design.md).
* **Checksums** (CRC-32 per file, manifest format 2): catch what is
  structurally plausible but wrong, e.g. a flipped bit in a weight, a term
  frequency or a stored title.  Files read into memory on open are summed
  on open; large mapped ones lazily (see ``segment.VERIFY_ON_OPEN_BYTES``)
  and always by :func:`check_index`.

:func:`check_index` reads every byte: all checksums, the structure of every
segment, and what only a full decode finds (ids and stored fields that are
not valid UTF-8 or JSON, id offsets inside a character).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sparsearch.errors import SparsearchError
from sparsearch.index import kernels, small
from sparsearch.index.checksum import crc32_of_file, file_size, format_crc

if TYPE_CHECKING:
    from sparsearch.index.manifest import Manifest, SegmentInfo
    from sparsearch.index.segment import Segment

_OFFSET_DTYPES = (np.dtype(np.uint32), np.dtype(np.int64))
_EXPECTED_DTYPES: dict[str, tuple[np.dtype, ...]] = {
    "postings_offsets": (np.dtype(np.int64),),
    "postings_docs": (np.dtype(np.uint32),),
    "postings_weights": (np.dtype(np.uint8), np.dtype(np.float32)),
    "doc_lengths": (np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.float32)),
    "doc_norms": (np.dtype(np.uint8),),
}
#: Postings per parallel task of the doc-id pass: large enough to amortise scheduling.
_POSTINGS_PER_TASK = 1 << 20


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())


def _dtype_problem(name: str, array: Any, allowed: tuple[np.dtype, ...]) -> str | None:
    if not isinstance(array, np.ndarray):
        return f"{name} is not an array"
    if array.ndim != 1:
        return f"{name} has {array.ndim} dimensions, expected 1"
    if array.dtype not in allowed:
        return f"{name} has dtype {array.dtype}, expected {' or '.join(str(d) for d in allowed)}"
    return None


def _offsets_problem(name: str, offsets: np.ndarray, n_rows: int, data: np.ndarray) -> str | None:
    problem = _dtype_problem(f"{name} offsets", offsets, _OFFSET_DTYPES) or _dtype_problem(
        f"{name} data", data, (np.dtype(np.uint8),))
    if problem:
        return problem
    if len(offsets) != n_rows + 1:
        return f"{name} offsets have {len(offsets)} entries for {n_rows} documents"
    first_bad_offset = small.first_bad_offset if small.small_build(len(offsets)) else kernels.first_bad_offset
    bad = int(first_bad_offset(offsets, len(data)))
    if bad >= 0:
        return f"{name} offsets are not monotone within the data ({len(data)} bytes) at entry {bad}"
    return None


def _term_bounds(postings_offsets: np.ndarray, n_postings: int) -> np.ndarray:
    """Term ranges of similar posting counts, one per parallel task (offsets already validated)."""
    n_chunks = max(1, min(4 * _threads(), n_postings // _POSTINGS_PER_TASK + 1))
    targets = (np.arange(n_chunks + 1, dtype=np.int64) * n_postings) // n_chunks
    bounds = np.searchsorted(postings_offsets, targets, side="left").astype(np.int64)
    bounds[0], bounds[-1] = 0, len(postings_offsets) - 1
    return np.maximum.accumulate(np.minimum(bounds, len(postings_offsets) - 1))


def structure_problems(seg: "Segment", info: "SegmentInfo | None" = None, deep: bool = False,
                       first_only: bool = False) -> list[str]:
    """What is structurally wrong with a segment (empty: nothing), cheapest checks first.

    ``deep`` adds the checks that decode every id and stored value (for
    ``sparsearch check``); ``first_only`` stops at the first problem (on open).
    Later checks assume earlier ones passed, so after a problem in the
    postings' shape the postings' contents are not inspected.
    """
    from sparsearch.index.segment import DocIds, FixedWidthIds

    out: list[str] = []

    def found(problem: str | None) -> bool:
        if problem:
            out.append(problem)
        return bool(problem) and first_only

    shape_ok = True
    for name, allowed in _EXPECTED_DTYPES.items():
        problem = _dtype_problem(name, getattr(seg, name), allowed)
        shape_ok &= problem is None
        if found(problem):
            return out
    if not shape_ok:
        return out
    n_docs, n_terms = len(seg.doc_lengths), len(seg.postings_offsets) - 1
    n_postings = len(seg.postings_docs)
    if n_terms < 0:
        found("postings offsets are empty")
        return out
    checks = [
        (len(seg.doc_norms) != n_docs, f"doc_norms has {len(seg.doc_norms)} entries for {n_docs} documents"),
        (len(seg.postings_weights) != n_postings,
         f"postings_weights has {len(seg.postings_weights)} entries for {n_postings} postings"),
        (len(seg.doc_ids) != n_docs, f"doc ids hold {len(seg.doc_ids)} entries for {n_docs} documents"),
    ]
    if info is not None:
        checks += [
            (info.n_docs != n_docs, f"segment holds {n_docs} documents, the manifest says {info.n_docs}"),
            (info.n_terms != n_terms, f"segment holds {n_terms} terms, the manifest says {info.n_terms}"),
            (info.n_postings != n_postings, f"segment holds {n_postings} postings, the manifest says {info.n_postings}"),
        ]
    for broken, problem in checks:
        if broken and found(problem):
            return out
    if any(broken for broken, _ in checks):
        return out
    # A small segment is checked by the NumPy twins of the kernels (same answers, no JIT: index/small.py).
    numpy_path = small.small_build(max(n_postings, n_terms + 1, n_docs))
    first_bad_offset = small.first_bad_offset if numpy_path else kernels.first_bad_offset

    def first_bad_weight(values: np.ndarray, n_chunks: int) -> int:
        return small.first_bad_weight(values) if numpy_path else kernels.first_bad_weight(values, n_chunks)

    bad = int(first_bad_offset(seg.postings_offsets, n_postings))
    if bad >= 0:
        found(f"postings offsets are not monotone from 0 to {n_postings} (entry {bad})")
        return out
    if numpy_path:
        term = small.first_bad_posting_list(seg.postings_offsets, seg.postings_docs, n_docs)
    else:
        term = int(kernels.first_bad_posting_list(seg.postings_offsets, seg.postings_docs, n_docs,
                                                  _term_bounds(seg.postings_offsets, n_postings)))
    if term >= 0 and found(f"posting list of term {term} holds a doc id >= {n_docs} documents or out of order"):
        return out
    n_chunks = 1 if numpy_path else max(1, min(4 * _threads(), n_postings // _POSTINGS_PER_TASK + 1))
    if seg.postings_weights.dtype == np.float32:
        i = int(first_bad_weight(seg.postings_weights, n_chunks))
        if i >= 0 and found(f"posting weight {i} is {seg.postings_weights[i]} (must be finite and >= 0)"):
            return out
    if seg.term_scales is not None:
        problem = _dtype_problem("term_scales", seg.term_scales, (np.dtype(np.float32),))
        if problem is None and len(seg.term_scales) != n_terms:
            problem = f"term_scales has {len(seg.term_scales)} entries for {n_terms} terms"
        if problem is None:
            i = int(first_bad_weight(seg.term_scales, 1))
            problem = None if i < 0 else f"term scale {i} is {seg.term_scales[i]} (must be finite and >= 0)"
        if found(problem):
            return out
    if seg.doc_lengths.dtype == np.float32:
        i = int(first_bad_weight(seg.doc_lengths, 1))
        if i >= 0 and found(f"length of document {i} is {seg.doc_lengths[i]} (must be finite and >= 0)"):
            return out
    if seg.deleted is not None:
        problem = _dtype_problem("deletion mask", seg.deleted, (np.dtype(np.uint8),))
        if problem is None and len(seg.deleted) != n_docs:
            problem = f"deletion mask has {len(seg.deleted)} entries for {n_docs} documents"
        if problem is None and len(seg.deleted) and int(seg.deleted.max()) > 1:
            problem = "deletion mask holds values other than 0 and 1"
        if found(problem):
            return out
    ids = seg.doc_ids
    if isinstance(ids, DocIds):
        if found(_offsets_problem("doc id", ids.offsets, n_docs, ids.data)):
            return out
    elif isinstance(ids, FixedWidthIds):
        if (ids.array.ndim != 1 or ids.array.dtype.kind != "S") and found(
                f"doc ids have dtype {ids.array.dtype}, expected fixed-width bytes"):
            return out
    for name, f in seg.fields.items():
        if found(_offsets_problem(f"stored field {name!r}", f.offsets, n_docs, f.data)):
            return out
    if seg.text_tokens is not None and found(_text_tokens_problem(seg.text_tokens, n_docs, n_terms)):
        return out
    if deep and not out:
        out += _decoding_problems(seg)
    return out


def _text_tokens_problem(sets: Any, n_docs: int, n_terms: int) -> str | None:
    """Text token sets (``text_tokens.*.npy``): one row per document, ids below ``n_terms``, ascending and
    distinct within a row (a repeated id would count a document twice in a document frequency)."""
    offsets, ids = sets.offsets, sets.ids
    problem = _dtype_problem("text_tokens offsets", offsets, _OFFSET_DTYPES) or _dtype_problem(
        "text_tokens ids", ids, (np.dtype(np.uint16), np.dtype(np.uint32)))
    if problem:
        return problem
    if len(offsets) != n_docs + 1:
        return f"text_tokens offsets have {len(offsets)} entries for {n_docs} documents"
    bad = int(small.first_bad_offset(offsets, len(ids)))
    if bad >= 0:
        return f"text_tokens offsets are not monotone from 0 to {len(ids)} (entry {bad})"
    if len(ids) and int(ids.max()) >= n_terms:
        return f"text_tokens hold a token id >= {n_terms} terms"
    if len(ids) > 1:
        rising = np.diff(ids.astype(np.int64)) > 0
        starts = np.asarray(offsets[1:-1], np.int64)
        starts = starts[(starts > 0) & (starts < len(ids))]
        rising[starts - 1] = True  # a row may start below where the previous one ended
        if not rising.all():
            return f"text_tokens are not ascending and distinct within a document (entry {int(np.argmin(rising)) + 1})"
    return None


def _utf8_problem(what: str, offsets: np.ndarray, data: np.ndarray) -> str | None:
    """Whether the bytes decode as UTF-8 and every value starts on a character boundary."""
    inner = offsets[:-1][offsets[:-1] < len(data)].astype(np.int64)
    if len(inner) and bool(((data[inner] & 0xC0) == 0x80).any()):
        return f"{what} offsets point inside a UTF-8 character"
    try:
        data.tobytes().decode("utf-8")
    except UnicodeDecodeError as e:
        return f"{what} are not valid UTF-8 ({e.reason} at byte {e.start})"
    return None


def _decoding_problems(seg: "Segment") -> list[str]:
    """Problems only a full decode finds: bad UTF-8 or JSON, offsets inside a character."""
    from sparsearch.index.segment import DocIds

    out = []
    ids = seg.doc_ids
    if isinstance(ids, DocIds):
        problem = _utf8_problem("doc ids", ids.offsets, ids.data)
        if problem:
            out.append(problem)
    else:
        try:
            ids.tolist()
        except UnicodeDecodeError as e:
            out.append(f"doc ids are not valid UTF-8 ({e.reason})")
    for name, f in seg.fields.items():
        problem = _utf8_problem(f"stored field {name!r} values", f.offsets, f.data)
        if problem:
            out.append(problem)
            continue
        if not f.is_json:
            continue
        blob = f.data.tobytes()
        offsets = f.offsets.tolist()
        for local in range(len(offsets) - 1):
            lo, hi = offsets[local], offsets[local + 1]
            if lo == hi:
                continue
            try:
                json.loads(blob[lo:hi])
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                out.append(f"stored field {name!r} of document {local} is unreadable ({type(e).__name__}: {e})")
                break
    return out


def first_problem(seg: "Segment", info: "SegmentInfo | None" = None) -> str | None:
    """The first structural problem of a segment, or None (what ``open_segment`` runs)."""
    problems = structure_problems(seg, info, first_only=True)
    return problems[0] if problems else None


# ------------------------------------------------------------------ sparsearch check


@dataclass
class CheckReport:
    """Outcome of :func:`check_index`: problems (one line each) and what was covered."""

    directory: Path
    problems: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    segments: int = 0
    documents: int = 0
    format_version: int | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def _file_problem(path: Path, size: int | None, crc: int | None) -> tuple[str | None, int]:
    """Size and checksum of one file: (problem or None, bytes read)."""
    try:
        actual_size = file_size(path)
        if size is not None and actual_size != size:
            return f"{path}: size {actual_size} differs from the manifest's {size}", 0
        if crc is not None:
            actual = crc32_of_file(path)
            if actual != crc:
                return (f"{path}: checksum mismatch (CRC-32 {format_crc(actual)}, manifest says "
                        f"{format_crc(crc)})"), actual_size
        return None, actual_size
    except SparsearchError as e:
        return f"{path}: {e}", 0


def check_index(directory: Path) -> CheckReport:
    """Verify everything an index directory holds; never raises for a damaged index.

    Every file the manifest names is read whole and its size and CRC-32
    compared (files in parallel: ``zlib.crc32`` releases the GIL); every
    segment's structure is checked, ids and stored fields decoded; the
    encoder's state loaded.  A segment with a file that fails its size or
    checksum is not opened (its problems are already reported).
    """
    from sparsearch.index.manifest import Manifest
    from sparsearch.index.segment import open_segment

    started = time.perf_counter()
    report = CheckReport(directory)
    try:
        manifest = Manifest.read(directory)
    except (SparsearchError, OSError) as e:
        report.problems.append(str(e))
        return report
    report.format_version = manifest.version
    dense = manifest.config.get("format") == "dense"  # segments of a dense index hold vectors, not postings
    masks = {info.deletes for info in manifest.segments if info.deletes}
    jobs: list[tuple[int, Path, int | None, int | None]] = []  # (segment index or -1, path, size, crc)
    for name in sorted(manifest.files):
        if name not in masks:
            jobs.append((-1, directory / name, manifest.files[name], manifest.crc32.get(name)))
    for i, info in enumerate(manifest.segments):
        for name in sorted(info.files):
            jobs.append((i, directory / info.name / name, info.files[name], info.crc32.get(name)))
        if info.deletes:
            jobs.append((i, directory / info.deletes, manifest.files.get(info.deletes), info.crc32.get(info.deletes)))
    with ThreadPoolExecutor(max_workers=max(1, min(4, _threads()))) as pool:
        results = list(pool.map(lambda job: _file_problem(*job[1:]), jobs))
    unsound: set[int] = set()
    for (segment, _, _, _), (problem, n_bytes) in zip(jobs, results):
        if problem:
            report.problems.append(problem)
            unsound.add(segment)
        else:
            report.files += 1
            report.bytes += n_bytes
    for i, info in enumerate(manifest.segments):
        report.segments += 1
        if i in unsound:
            continue
        try:
            # Checksums were verified just above; opening re-checks sizes and headers and the structure.
            if dense:
                from sparsearch.index.dense_segment import open_dense_segment, structure_problem

                seg = open_dense_segment(directory, info, mmap=True,
                                         deletes_size=manifest.files.get(info.deletes or ""))
                found = structure_problem(seg, info)
                problems = [] if found is None else [found]
            else:
                seg = open_segment(directory, info, mmap=True, deletes_size=manifest.files.get(info.deletes or ""),
                                   verify_checksums="lazy")
                problems = structure_problems(seg, info, deep=True)
        except (SparsearchError, OSError) as e:
            report.problems.append(str(e))
            continue
        report.documents += seg.n_docs
        report.problems += [f"{directory / info.name}: {p}" for p in problems]
    _check_encoder(report, directory, manifest)
    report.seconds = time.perf_counter() - started
    return report


def _check_encoder(report: CheckReport, directory: Path, manifest: "Manifest") -> None:
    from sparsearch.retriever.registry import encoder_class

    spec = manifest.encoder
    try:
        encoder_class(spec["name"]).load(
            spec.get("config", {}), {kind: directory / name for kind, name in spec.get("files", {}).items()})
    except Exception as e:  # any failure to load the encoder's state is a problem of this index
        report.problems.append(f"{directory}: encoder {spec.get('name')!r} does not load ({type(e).__name__}: {e})")

"""The in-memory segment: its arrays, external ids, stored fields, and where its files came from.

A :class:`Segment` is immutable arrays (read into memory or memory-mapped by
:func:`sparsearch.index.segment.open_segment`, or just built by
:func:`sparsearch.index.segment_build.build_segment`); only its deletion mask
is swapped, by :meth:`Segment.with_deletes`, as snapshots change.  Doc ids
inside it are segment-local; :class:`DocIds` maps them to external ids.

Size matters as much as speed here, so every array takes the narrowest dtype
that holds it: term frequencies in one byte, lengths in two when they fit,
stored text and external ids as raw UTF-8 with 32-bit offsets, and per-term
scales only when quantisation was actually lossy.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from sparsearch.errors import IndexFormatError, InputError
from sparsearch.index import kernels, small
from sparsearch.index.checksum import crc32_of_file, format_crc
from sparsearch.types import TokenSets

#: Arrays every segment has, by file stem (plus its ids: :data:`ID_STEMS`, or ``doc_ids`` in format 1).
POSTINGS_ARRAYS = ("postings_offsets", "postings_docs", "postings_weights", "doc_lengths", "doc_norms")
#: Variable-length external ids (format 2): offsets into UTF-8 bytes, like a stored field.
ID_STEMS = ("doc_ids.offsets", "doc_ids.data")
#: Format-1 ids: one fixed-width ``S<n>`` array (NumPy drops trailing NULs; kept only to open old indexes).
LEGACY_ID_STEM = "doc_ids"
TEXT_FIELDS = ("title", "text")
#: Each document's distinct text token ids (:class:`~sparsearch.types.TokenSets`), only in segments of an
#: index whose encoder asks for collection text statistics (inference-free with ``idf="collection"``).
TEXT_TOKEN_STEMS = ("text_tokens.offsets", "text_tokens.ids")

#: Longest external id, in UTF-8 bytes.  2,048 is the HTTP API's limit of 512 characters
#: (``service/schemas.py``) at UTF-8's worst case of 4 bytes each, so every id the service
#: accepts can be stored (the log is written before the buffer segment is built: an id refused
#: there would be durable but unappliable).  Percent-encoded (at most 6 KiB) such an id still
#: fits the 8 KiB request line that HTTP servers and proxies accept by default (nginx; Apache's
#: 8,190), so every stored id can be read and deleted over HTTP; it is 4x Elasticsearch's and
#: OpenSearch's 512 bytes, so their ids always fit.  Larger "ids" are mistakes (a document body
#: in the id column), and one of them used to inflate every id of a fixed-width segment to its width.
MAX_ID_BYTES = 2048


class DocIds:
    """External ids, variable-length: id ``i`` is ``data[offsets[i]:offsets[i+1]]`` as UTF-8.

    Exact for every string (trailing NULs, newlines, 4-byte UTF-8), and an
    index holding long ids grows by their bytes, not by the longest id times
    the number of documents as a fixed-width array does.
    """

    __slots__ = ("offsets", "data")

    def __init__(self, offsets: np.ndarray, data: np.ndarray) -> None:
        self.offsets = offsets  # uint32 (int64 past 4 GiB) [n_docs + 1]
        self.data = data  # uint8 [total bytes]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, local: int) -> str:
        lo, hi = int(self.offsets[local]), int(self.offsets[local + 1])
        return bytes(self.data[lo:hi]).decode("utf-8")

    def tolist(self) -> list[str]:
        """Every id, decoded at once: ~5x faster than ``np.char.decode`` of the old fixed-width array.

        The blob is decoded once; ids are then sliced out of the string at
        character offsets (byte offsets minus UTF-8 continuation bytes before them).
        """
        blob = self.data.tobytes()
        text = blob.decode("utf-8")
        if len(text) == len(blob):  # ASCII: byte offsets are character offsets
            cuts = self.offsets.tolist()
        else:
            starts = np.zeros(len(self.data) + 1, np.int64)
            np.cumsum((self.data & 0xC0) != 0x80, out=starts[1:])
            cuts = starts[self.offsets].tolist()
        return [text[a:b] for a, b in zip(cuts[:-1], cuts[1:])]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"doc_ids.offsets": self.offsets, "doc_ids.data": self.data}

    @classmethod
    def encode(cls, ids: Sequence[str], max_bytes: int | None = MAX_ID_BYTES) -> "DocIds":
        """Pack ids, refusing one that is not valid Unicode or longer than ``max_bytes`` of UTF-8."""
        joined = "".join(ids)
        if joined.isascii():
            lengths = np.fromiter(map(len, ids), np.int64, len(ids))
            data = joined.encode("ascii")
        else:
            blobs = [_encode_id(d) for d in ids]
            lengths = np.fromiter(map(len, blobs), np.int64, len(blobs))
            data = b"".join(blobs)
        if max_bytes is not None and len(lengths) and int(lengths.max()) > max_bytes:
            i = int(np.argmax(lengths))
            raise InputError(f"document id {_preview(ids[i])} is {int(lengths[i])} bytes long in UTF-8; ids are "
                             f"limited to {max_bytes} bytes", field="_id")
        offsets = np.zeros(len(ids) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if offsets[-1] < 2**32:
            offsets = offsets.astype(np.uint32)
        return cls(offsets, np.frombuffer(data, np.uint8))


class FixedWidthIds:
    """Format-1 ids (``S<n>``), read-only: opened so that old indexes keep working.

    NumPy strips trailing NUL bytes from such strings, so an id ending in
    NUL reads back shortened; rewriting the segment (a merge) moves it to
    :class:`DocIds` with what is left.
    """

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def get(self, local: int) -> str:
        return bytes(self.array[local]).decode("utf-8")

    def tolist(self) -> list[str]:
        return np.char.decode(self.array, "utf-8").tolist()

    def arrays(self) -> dict[str, np.ndarray]:
        return DocIds.encode(self.tolist(), max_bytes=None).arrays()


IdTable = Union[DocIds, FixedWidthIds]


def _encode_id(doc_id: str) -> bytes:
    try:
        return doc_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"document id {_preview(doc_id)} is not valid Unicode (it holds an unpaired surrogate)",
                         field="_id") from None


def _preview(doc_id: str, limit: int = 60) -> str:
    """An id for an error message: repr'd (NULs and newlines visible), long ones truncated."""
    return repr(doc_id) if len(doc_id) <= limit else f"{doc_id[:limit]!r}... ({len(doc_id)} characters)"


def check_doc_id(doc_id: str) -> None:
    """Refuse an id that no segment could store (for callers that accept ids before building)."""
    encoded = _encode_id(doc_id)
    if len(encoded) > MAX_ID_BYTES:
        raise InputError(f"document id {_preview(doc_id)} is {len(encoded)} bytes long in UTF-8; ids are limited "
                         f"to {MAX_ID_BYTES} bytes", field="_id")


def decode_fields(fields: dict[str, "StoredField"], local: int, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Stored fields of one document (only ``names``, when given): absent values are left out."""
    out = {}
    for name in fields if names is None else names:
        f = fields.get(name)
        value = None if f is None else f.get(local)
        if value is not None:
            out[name] = value
    return out


@dataclass
class StoredField:
    """Variable-length per-document values: document ``i`` is ``data[offsets[i]:offsets[i+1]]``."""

    offsets: np.ndarray
    data: np.ndarray
    is_json: bool

    def get(self, local: int) -> Any:
        lo, hi = int(self.offsets[local]), int(self.offsets[local + 1])
        if hi == lo:
            return None
        raw = bytes(self.data[lo:hi]).decode("utf-8")
        return json.loads(raw) if self.is_json else raw

    @classmethod
    def encode(cls, values: Sequence[Any], is_json: bool) -> "StoredField":
        blobs = [b"" if v in (None, "", {}) else
                 (json.dumps(v, ensure_ascii=False) if is_json else v).encode("utf-8") for v in values]
        offsets = np.zeros(len(blobs) + 1, np.int64)
        np.cumsum([len(b) for b in blobs], out=offsets[1:])
        if offsets[-1] < 2**32:
            offsets = offsets.astype(np.uint32)
        return cls(offsets, np.frombuffer(b"".join(blobs), dtype=np.uint8), is_json)


class SegmentSource:
    """Where an opened segment's files live, and which of them still await their checksum.

    Large mapped files are not summed on open (that would read the whole
    index); :meth:`verify` sums them on demand, once: before a merge rewrites
    the segment (so corruption is never laundered into a file with a fresh,
    valid checksum) and in ``sparsearch check``.
    """

    def __init__(self, path: Path, pending: dict[str, int]) -> None:
        self.path = path
        self._pending = dict(pending)  # file name -> expected CRC-32
        self._lock = threading.Lock()

    @property
    def unverified(self) -> list[str]:
        return sorted(self._pending)

    def verify(self) -> None:
        """Checksum every file not verified yet; raises :class:`IndexFormatError` on a mismatch."""
        with self._lock:
            if not self._pending:
                return
            names = sorted(self._pending)
            with ThreadPoolExecutor(max_workers=min(4, len(names))) as pool:
                actual = dict(zip(names, pool.map(lambda n: crc32_of_file(self.path / n), names)))
            for name in names:
                if actual[name] != self._pending[name]:
                    raise IndexFormatError(_crc_message(self.path / name, actual[name], self._pending[name]))
            self._pending.clear()


def _crc_message(path: Path, actual: int, expected: int) -> str:
    return (f"{path}: checksum mismatch (CRC-32 {format_crc(actual)}, manifest says {format_crc(expected)}): "
            f"the file is corrupt; restore the index from a copy or rebuild it")


@dataclass
class Segment:
    """Arrays of one segment (in memory or memory-mapped); doc ids are segment-local."""

    postings_offsets: np.ndarray  # int64 [n_terms + 1]
    postings_docs: np.ndarray  # uint32 [n_postings]
    postings_weights: np.ndarray  # float32 or uint8 [n_postings]
    doc_lengths: np.ndarray  # uint16 / uint32 / float32 [n_docs]
    doc_norms: np.ndarray  # uint8 [n_docs]: Lucene one-byte length
    doc_ids: IdTable  # external ids: DocIds (variable-length UTF-8), FixedWidthIds in old indexes
    term_scales: np.ndarray | None = None  # float32 [n_terms]: real weight = stored * scale; None = 1
    fields: dict[str, StoredField] = field(default_factory=dict)
    deleted: np.ndarray | None = None  # uint8 [n_docs], 1 = deleted; kept in its own file, outside the segment
    _ones: np.ndarray | None = field(default=None, repr=False)
    source: SegmentSource | None = field(default=None, repr=False)  # on-disk origin, for lazy checksums
    # Optional acceleration structures (index/accel.py), saved as accel.<name>.npy; shared by every view.
    accel: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    # Optional distinct text token ids per document (TEXT_TOKEN_STEMS): never searched, only counted for
    # collection statistics (CollectionStats.text_doc_freq); shared by every view, with its cached counts.
    text_tokens: TokenSets | None = field(default=None, repr=False)

    @property
    def n_docs(self) -> int:
        return len(self.doc_lengths)

    @property
    def n_terms(self) -> int:
        return len(self.postings_offsets) - 1

    @property
    def n_postings(self) -> int:
        return int(self.postings_offsets[-1])

    @property
    def scales(self) -> np.ndarray:
        """Per-term dequantisation scales (all ones when stored exactly)."""
        if self.term_scales is not None:
            return self.term_scales
        if self._ones is None or len(self._ones) != self.n_terms:
            self._ones = np.ones(self.n_terms, np.float32)
        return self._ones

    def doc_freq(self) -> np.ndarray:
        """Documents per term, deleted ones excluded."""
        if self.deleted is None:
            return np.diff(self.postings_offsets)
        live_doc_freq = small.live_doc_freq if small.small_build(self.n_postings) else kernels.live_doc_freq
        return live_doc_freq(self.postings_offsets, self.postings_docs, self.deleted)

    def doc_freq_all(self) -> np.ndarray:
        """Postings per term, deleted documents included (the CSR row lengths)."""
        return np.diff(self.postings_offsets)

    def live_mask(self) -> np.ndarray:
        return np.ones(self.n_docs, bool) if self.deleted is None else self.deleted == 0

    def with_deletes(self, deleted: np.ndarray | None) -> "Segment":
        """The same immutable arrays under another deletion mask (a new snapshot's view)."""
        return Segment(self.postings_offsets, self.postings_docs, self.postings_weights, self.doc_lengths,
                       self.doc_norms, self.doc_ids, self.term_scales, self.fields, deleted, source=self.source,
                       accel=self.accel, text_tokens=self.text_tokens)

    def external_id(self, local: int) -> str:
        return self.doc_ids.get(local)

    def verify_checksums(self) -> None:
        """Checksum the files that opening left unverified (a no-op for in-memory segments)."""
        if self.source is not None:
            self.source.verify()

    def stored(self, local: int) -> dict[str, Any]:
        return decode_fields(self.fields, local)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array to save, by file stem."""
        out = {name: getattr(self, name) for name in POSTINGS_ARRAYS}
        out.update(self.doc_ids.arrays())
        if self.term_scales is not None:
            out["term_scales"] = self.term_scales
        for name, f in self.fields.items():
            kind = "json" if f.is_json else "text"
            out[f"field.{name}.{kind}.offsets"] = f.offsets
            out[f"field.{name}.{kind}.data"] = f.data
        out.update({f"accel.{name}": a for name, a in self.accel.items()})
        if self.text_tokens is not None:
            out.update(zip(TEXT_TOKEN_STEMS, (self.text_tokens.offsets, self.text_tokens.ids)))
        return out

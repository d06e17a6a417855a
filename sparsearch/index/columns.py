"""The metadata column index of a segment, and filters evaluated on it.

Each immutable segment gets a column index of its stored metadata, built on
first use and cached for the segment's life (:func:`segment_columns`):

* keywords: value -> ascending local doc ids;
* numbers: all values ascending, with their doc ids (a range is two binary
  searches and a slice, whatever its width; a field holding a list of
  numbers has one entry per element);
* booleans: the ids holding ``true`` and those holding ``false``;
* lists and objects as whole values (the flat form's exact equality), and the
  ids holding any non-null value (``exists``);
* a boolean mask besides the ids of every value held by more than
  1/:data:`DENSE_SHARE` of the documents, so that ``lang = en and ...`` is
  not a scatter of half the segment.

:func:`filter_masks` evaluates a filter on every segment of a snapshot: the
live documents it matches, as ids while they are few, else as a mask.
"""

from __future__ import annotations

import json
import math
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from sparsearch.filters import And, Eq, Exists, Filter, FlatEquals, In, Not, Or, Range, check_against, kind_of
from sparsearch.index.inverted import InvertedIndex
from sparsearch.index.segment import Segment, StoredField

#: A value held by more than 1/DENSE_SHARE of a segment's documents also gets a boolean mask in the
#: column index (at most DENSE_SHARE such masks per field and kind: n_docs bytes each).
DENSE_SHARE = 32


# ---------------------------------------------------------------- column index


@dataclass
class FieldColumn:
    """One metadata field of one segment, indexed."""

    kinds: set[str] = field(default_factory=set)
    keywords: dict[str, np.ndarray] = field(default_factory=dict)
    numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    number_docs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    trues: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    falses: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    wholes: dict[str, np.ndarray] = field(default_factory=dict)
    present: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    #: Boolean masks of the values held by more than 1/DENSE_SHARE of the documents, by ``id()`` of
    #: their id array: such a value (``lang = en``) is combined without an O(n_docs) scatter.
    masks: dict[int, np.ndarray] = field(default_factory=dict)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """``ids`` itself, or its mask when precomputed."""
        return self.masks.get(id(ids), ids)


@dataclass
class SegmentColumns:
    n_docs: int
    fields: dict[str, FieldColumn]


class _Builder:
    __slots__ = ("kinds", "keywords", "numbers", "number_docs", "trues", "falses", "wholes", "present")

    def __init__(self) -> None:
        self.kinds: set[str] = set()
        self.keywords: dict[str, list[int]] = {}
        self.numbers: list[float] = []
        self.number_docs: list[int] = []
        self.trues: list[int] = []
        self.falses: list[int] = []
        self.wholes: dict[str, list[int]] = {}
        self.present: list[int] = []

    def add(self, doc: int, value: Any) -> None:
        if value is None:
            return
        self.present.append(doc)
        if isinstance(value, (list, dict)):
            self.wholes.setdefault(_canonical(value), []).append(doc)
            if isinstance(value, dict) or not value:
                self.kinds.add("other")  # an object, or an empty list: known to "exists", never equal to a scalar
                return
            seen = set()
            for v in value:
                key = (kind_of(v), v) if not isinstance(v, (list, dict)) else None
                if key is None:
                    self.kinds.add("other")  # nested lists and objects: matched only as part of the whole value
                elif key not in seen:  # an element repeated in a list counts once
                    seen.add(key)
                    self.scalar(doc, v)
        else:
            self.scalar(doc, value)

    def scalar(self, doc: int, value: Any) -> None:
        if value is True or value is False:
            self.kinds.add("boolean")
            (self.trues if value else self.falses).append(doc)
        elif isinstance(value, str):
            self.kinds.add("string")
            self.keywords.setdefault(value, []).append(doc)
        elif isinstance(value, (int, float)):
            self.kinds.add("number")
            number = float(value) if abs(value) < 1e308 or isinstance(value, float) else math.copysign(math.inf, value)
            if not math.isnan(number):
                self.numbers.append(number)
                self.number_docs.append(doc)
        elif value is not None:
            self.kinds.add("other")

    def column(self, n_docs: int) -> FieldColumn:
        if not self.kinds:
            self.kinds.add("other")  # lists of nulls only: present, equal to nothing

        def ids(values: list[int]) -> np.ndarray:
            return np.asarray(values, np.int32)

        values = np.asarray(self.numbers, np.float64)
        docs = ids(self.number_docs)
        order = np.argsort(values, kind="stable")
        col = FieldColumn(self.kinds, {k: ids(v) for k, v in self.keywords.items()}, values[order], docs[order],
                          ids(self.trues), ids(self.falses), {k: ids(v) for k, v in self.wholes.items()},
                          ids(self.present))
        for array in [*col.keywords.values(), col.trues, col.falses, col.present]:
            if len(array) * DENSE_SHARE > n_docs:
                col.masks[id(array)] = _dense(array, n_docs)
        return col


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _decode_json(stored: StoredField, n_docs: int) -> list[Any]:
    """Every document's value of a JSON stored field, decoded in one ``json.loads`` (``None`` where empty)."""
    offsets = np.asarray(stored.offsets, np.int64).tolist()
    blob = np.asarray(stored.data).tobytes()
    pieces = [blob[a:b] if b > a else b"null" for a, b in zip(offsets[:-1], offsets[1:])]
    try:
        values = json.loads(b"[" + b",".join(pieces) + b"]")
        if len(values) == n_docs:
            return values
    except ValueError:
        pass
    out = []  # one bad value (not JSON) must not hide the others
    for i in range(n_docs):
        try:
            out.append(stored.get(i))
        except ValueError:
            out.append(None)
    return out


def build_columns(seg: Segment) -> SegmentColumns:
    """Index a segment's metadata: the ``metadata`` stored field, or else its other JSON stored fields."""
    builders: dict[str, _Builder] = {}
    meta = seg.fields.get("metadata")
    if meta is not None and meta.is_json:
        for doc, obj in enumerate(_decode_json(meta, seg.n_docs)):
            if isinstance(obj, dict):
                for key, value in obj.items():
                    b = builders.get(key)
                    if b is None:
                        b = builders[key] = _Builder()
                    b.add(doc, value)
    else:
        # Index.build stores a metadata key ``k`` as its own field when stored_fields names it.
        for name, stored in seg.fields.items():
            if stored.is_json and name != "metadata":
                b = builders[name] = _Builder()
                for doc, value in enumerate(_decode_json(stored, seg.n_docs)):
                    b.add(doc, value)
    return SegmentColumns(seg.n_docs, {name: b.column(seg.n_docs) for name, b in builders.items() if b.present})


_cache: dict[int, tuple[Any, Any, SegmentColumns]] = {}
_cache_lock = threading.Lock()
_build_lock = threading.Lock()


def segment_columns(seg: Segment) -> SegmentColumns:
    """The column index of ``seg``'s metadata, built once per immutable segment.

    Cached by the identity of the segment's ``doc_lengths`` array, which every
    view of it (``with_deletes``, each snapshot) shares, under a weak
    reference: the entry goes when the segment's arrays do.
    """
    anchor = seg.doc_lengths
    key = id(anchor)
    entry = _cache.get(key)
    if entry is not None and entry[0]() is anchor and entry[1] is seg.fields:
        return entry[2]
    with _build_lock:  # one build at a time: concurrent searches wait for it rather than repeat it
        entry = _cache.get(key)
        if entry is not None and entry[0]() is anchor and entry[1] is seg.fields:
            return entry[2]
        columns = build_columns(seg)
        try:
            ref = weakref.ref(anchor, lambda r, key=key: _forget(key, r))
        except TypeError:
            return columns
        with _cache_lock:
            _cache[key] = (ref, seg.fields, columns)
        return columns


def _forget(key: int, ref: Any) -> None:
    with _cache_lock:
        entry = _cache.get(key)
        if entry is not None and entry[0] is ref:
            del _cache[key]


def field_kinds(columns: Sequence[SegmentColumns]) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = {}
    for cols in columns:
        for name, col in cols.fields.items():
            kinds.setdefault(name, set()).update(col.kinds)
    return kinds


# ---------------------------------------------------------------- evaluation
#
# A clause evaluates to the documents it matches as either a boolean mask over the segment
# (dense: ``not``, a frequent value) or int32 ids (sparse: a keyword's list, a range's slice), in
# any order and possibly repeated (a document with two values in a range); masks and ids may be
# the column index's own arrays, so nothing here writes into an evaluated array.  A selective
# filter thus never costs an O(n_docs) pass before the scorer builds its bitset.


def _dense(m: np.ndarray, n: int) -> np.ndarray:
    if m.dtype == bool:
        return m
    out = np.zeros(n, bool)
    out[m] = True
    return out


def evaluate(flt: Filter, cols: SegmentColumns) -> np.ndarray:
    """The segment's documents (deleted or not) matching ``flt``: int32 ids (any order), or a boolean mask."""
    n = cols.n_docs
    if isinstance(flt, (And, FlatEquals)):
        parts = ([evaluate(c, cols) for c in flt.clauses] if isinstance(flt, And)
                 else [_flat_equals(cols.fields.get(name), value, n) for name, value in flt.items])
        sparse = sorted((p for p in parts if p.dtype != bool), key=len)
        dense = [p for p in parts if p.dtype == bool]
        if not sparse:
            out = dense[0] & dense[1] if len(dense) > 1 else dense[0].copy()
            for p in dense[2:]:
                out &= p
            return out
        ids = sparse[0]
        for p in dense + sparse[1:]:
            if not len(ids):
                break
            ids = ids[_dense(p, n)[ids]]
        return ids
    if isinstance(flt, Or):
        parts = [evaluate(c, cols) for c in flt.clauses]
        if all(p.dtype != bool for p in parts) and sum(map(len, parts)) * DENSE_SHARE < n:
            return np.concatenate(parts)
        out = np.zeros(n, bool)
        for p in parts:
            if p.dtype == bool:
                out |= p
            else:
                out[p] = True
        return out
    if isinstance(flt, Not):
        return ~_dense(evaluate(flt.clause, cols), n)
    col = cols.fields.get(flt.field)
    if isinstance(flt, Exists):
        present = col.lookup(col.present) if col is not None else _NONE
        return present if flt.exists else ~_dense(present, n)
    if col is None:
        return _NONE
    if isinstance(flt, Eq):
        return _equal(col, flt.value)
    if isinstance(flt, In):
        found = [_equal(col, v) for v in flt.values]
        if len(found) <= 1:
            return found[0] if found else _NONE
        if any(f.dtype == bool for f in found):
            return evaluate(Or([Eq(flt.field, v) for v in flt.values]), cols)
        return np.concatenate(found)
    return _range(col, flt)


_NONE = np.zeros(0, np.int32)


def _equal(col: FieldColumn, value: Any) -> np.ndarray:
    kind = kind_of(value)
    if kind == "string":
        ids = col.keywords.get(value)
        return _NONE if ids is None else col.lookup(ids)
    if kind == "boolean":
        return col.lookup(col.trues if value else col.falses)
    if kind == "number":
        x = float(value)
        return col.number_docs[np.searchsorted(col.numbers, x, "left"):np.searchsorted(col.numbers, x, "right")]
    return _NONE


def _range(col: FieldColumn, r: Range) -> np.ndarray:
    values = col.numbers
    lo, hi = 0, len(values)
    if r.gt is not None:
        lo = max(lo, int(np.searchsorted(values, r.gt, "right")))
    if r.gte is not None:
        lo = max(lo, int(np.searchsorted(values, r.gte, "left")))
    if r.lt is not None:
        hi = min(hi, int(np.searchsorted(values, r.lt, "left")))
    if r.lte is not None:
        hi = min(hi, int(np.searchsorted(values, r.lte, "right")))
    return col.number_docs[lo:hi] if lo < hi else _NONE


def _flat_equals(col: FieldColumn | None, value: Any, n: int) -> np.ndarray:
    """The old ``metadata.get(key) == value``: a missing key matches only ``None``."""
    if value is None:
        return ~_dense(col.lookup(col.present), n) if col is not None else np.ones(n, bool)
    if col is None:
        return _NONE
    if isinstance(value, (list, dict)):
        return col.wholes.get(_canonical(value), _NONE)
    return _equal(col, value)


@dataclass
class SegmentMatch:
    """The live documents of one segment that a filter matches: ids (any order, maybe repeated) or a mask."""

    ids: np.ndarray | None
    mask: np.ndarray | None
    count: int  # len(ids) (an upper bound: ids may repeat) or the mask's count

    def as_mask(self, n: int) -> np.ndarray:
        if self.mask is None:
            self.mask = _dense(self.ids, n)
        return self.mask

    def as_ids(self) -> np.ndarray:
        if self.ids is None:
            self.ids = np.flatnonzero(self.mask).astype(np.int32)
        return self.ids


_kinds: "weakref.WeakKeyDictionary[InvertedIndex, dict[str, set[str]]]" = weakref.WeakKeyDictionary()


def filter_masks(inverted: InvertedIndex, flt: Filter, where: str = "this index") -> list[SegmentMatch]:
    """Per segment, the live documents matching ``flt``; raises ``FilterError`` when it does not fit the data."""
    columns = [segment_columns(s) for s in inverted.segments]
    kinds = _kinds.get(inverted)
    if kinds is None:
        kinds = _kinds[inverted] = field_kinds(columns)
    check_against(flt, kinds, inverted.id_space, where)
    out = []
    for seg, cols in zip(inverted.segments, columns):
        m = evaluate(flt, cols)
        if m.dtype == bool:
            m = m & (seg.deleted == 0) if seg.deleted is not None else m
            out.append(SegmentMatch(None, m, int(np.count_nonzero(m))))
        else:
            if seg.deleted is not None and len(m):
                m = m[seg.deleted[m] == 0]
            out.append(SegmentMatch(m, None, len(m)))
    return out



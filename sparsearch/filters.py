"""Metadata filters: one small language, the same JSON in Python, the CLI and HTTP.

A filter is a tree of clauses over the documents' metadata fields::

    {"field": "lang", "eq": "en"}                    keyword, number or boolean equality
    {"field": "tag", "in": ["a", "b"]}               any of the values
    {"field": "year", "gte": 2000, "lt": 2010}       numeric range (gt, gte, lt, lte; any combination)
    {"field": "doi", "exists": true}                 the field holds a value (not null)
    {"and": [...]}, {"or": [...]}, {"not": {...}}    combinations

A field holding a list matches when any element does (``{"tags": ["a", "b"]}``
matches ``{"field": "tags", "eq": "a"}``).  Booleans are not numbers:
``true`` never equals ``1``.

The older flat form, ``{"lang": "en", "year": 2001}``, still works and means
the AND of those equalities, with its old leniency: a key no document has, or
a value of another type, simply matches nothing; a ``null`` value matches
documents without the key; a list or object value matches that whole value.
A dict is read as the new form when it holds one of the keys ``field``,
``and``, ``or`` or ``not`` (so those are reserved in the flat form).

Everything checkable without data is checked by :func:`parse_filter`
(unknown operators, a range bound that is not a number, ``in`` without a
list, ...); the index checks the rest against what the collection holds (a
field no document has, a range on a field of strings) when it evaluates the
filter.  Both raise :class:`FilterError`, an :class:`InputError` naming the
field: the CLI prints it on one line, the service answers 422.

This module only describes filters; :mod:`sparsearch.index.filtering`
evaluates them as bitsets per segment.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from typing import Any, Hashable, Mapping, Sequence, Union

from sparsearch.errors import InputError

Scalar = Union[str, int, float, bool]

RANGE_OPS = ("gt", "gte", "lt", "lte")
FIELD_OPS = ("eq", "in") + RANGE_OPS + ("exists",)
RESERVED = ("field", "and", "or", "not")
#: Deepest nesting of and/or/not accepted (a request cannot make the evaluator recurse without bound).
MAX_DEPTH = 32
#: Most clauses (leaves and combinations) in one filter.
MAX_CLAUSES = 1024
_MISSING = object()


class FilterError(InputError):
    """A filter that is malformed, or does not fit the collection's fields; the message names the field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        # "filter field 'lang': ..." (InputError would say "field 'lang': ...", ambiguous next to a request's fields)
        super().__init__(f"filter field {field!r}: {message}" if field is not None else f"filter: {message}")
        self.field = field
        self.reason = message


_KINDS = {str: "string", bool: "boolean", int: "number", float: "number"}


def kind_of(value: Any) -> str:
    """The filter kind of a scalar: ``string``, ``number`` or ``boolean`` (``other`` for anything else)."""
    kind = _KINDS.get(type(value))
    if kind is not None:
        return kind
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, numbers.Real):  # float and int subclasses, NumPy's numbers
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


# ---------------------------------------------------------------- clauses
#
# The clauses check their own values when built, so a filter written in Python
# is checked like one parsed from JSON.


def _check_field(field: Any) -> None:
    if not isinstance(field, str) or not field:
        raise FilterError(f"'field' names a metadata field (a non-empty string), not {_describe(field)}")


def _check_scalar(value: Any, op: str, field: str) -> None:
    kind = kind_of(value)
    if kind == "other":
        hint = " (use 'in' for several values)" if isinstance(value, (list, tuple)) and op == "eq" else ""
        hint = " (use 'exists': false for a missing field)" if value is None else hint
        raise FilterError(f"{op!r} takes strings, numbers or booleans, not {_describe(value)}{hint}", field)
    if kind == "number" and not math.isfinite(value):
        raise FilterError(f"{op!r} takes finite numbers, not {value}", field)


@dataclass(frozen=True)
class Eq:
    """``field`` equals ``value`` (a string, a number or a boolean)."""

    field: str
    value: Scalar

    def __post_init__(self) -> None:
        _check_field(self.field)
        _check_scalar(self.value, "eq", self.field)

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "eq": self.value}


@dataclass(frozen=True)
class In:
    """``field`` equals one of ``values``."""

    field: str
    values: tuple[Scalar, ...]

    def __init__(self, field: str, values: Sequence[Scalar]) -> None:
        _check_field(field)
        if not isinstance(values, (list, tuple)):
            raise FilterError(f"'in' takes a list of values, not {_describe(values)}", field)
        for v in values:
            _check_scalar(v, "in", field)
        object.__setattr__(self, "field", field)
        object.__setattr__(self, "values", tuple(values))

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "in": list(self.values)}


@dataclass(frozen=True)
class Range:
    """A numeric range: every bound given must hold (``gt``/``gte`` below, ``lt``/``lte`` above)."""

    field: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def __post_init__(self) -> None:
        _check_field(self.field)
        if not self.bounds():
            raise FilterError("a range needs at least one of gt, gte, lt, lte", self.field)
        for op, value in self.bounds().items():
            if kind_of(value) != "number":
                raise FilterError(f"{op!r} takes a number, not {_describe(value)}", self.field)
            if not math.isfinite(value):
                raise FilterError(f"{op!r} takes a finite number, not {value}", self.field)

    def bounds(self) -> dict[str, float]:
        return {op: getattr(self, op) for op in RANGE_OPS if getattr(self, op) is not None}

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, **self.bounds()}


@dataclass(frozen=True)
class Exists:
    """``field`` holds a non-null value (``exists=False``: it does not)."""

    field: str
    exists: bool = True

    def __post_init__(self) -> None:
        _check_field(self.field)
        if not isinstance(self.exists, bool):
            raise FilterError(f"'exists' takes true or false, not {_describe(self.exists)}", self.field)

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "exists": self.exists}


def _check_clauses(op: str, clauses: Any) -> tuple["Filter", ...]:
    if not isinstance(clauses, (list, tuple)):
        raise FilterError(f"{op!r} takes a list of clauses, not {_describe(clauses)}")
    if not clauses:
        raise FilterError(f"{op!r} needs at least one clause")
    for c in clauses:
        if not isinstance(c, FILTER_TYPES):
            raise FilterError(f"{op!r} takes filter clauses, not {_describe(c)}")
    return tuple(clauses)


@dataclass(frozen=True)
class And:
    clauses: tuple["Filter", ...]

    def __init__(self, clauses: Sequence["Filter"]) -> None:
        object.__setattr__(self, "clauses", _check_clauses("and", clauses))

    def to_json(self) -> dict[str, Any]:
        return {"and": [c.to_json() for c in self.clauses]}


@dataclass(frozen=True)
class Or:
    clauses: tuple["Filter", ...]

    def __init__(self, clauses: Sequence["Filter"]) -> None:
        object.__setattr__(self, "clauses", _check_clauses("or", clauses))

    def to_json(self) -> dict[str, Any]:
        return {"or": [c.to_json() for c in self.clauses]}


@dataclass(frozen=True)
class Not:
    clause: "Filter"

    def __post_init__(self) -> None:
        if not isinstance(self.clause, FILTER_TYPES):
            raise FilterError(f"'not' takes one filter clause, not {_describe(self.clause)}")

    def to_json(self) -> dict[str, Any]:
        return {"not": self.clause.to_json()}


@dataclass(frozen=True)
class FlatEquals:
    """The old flat form ``{"key": value, ...}``: AND of equalities, never an error about the data.

    ``items`` keeps the pairs in order; values are JSON (a scalar compares like
    :class:`Eq`, ``None`` means "missing or null", a list or object must equal
    the field's whole value).
    """

    items: tuple[tuple[str, Any], ...]

    def __post_init__(self) -> None:
        for key, value in self.items:
            if isinstance(value, float) and not math.isfinite(value):
                raise FilterError(f"value {value} is not a finite number", key)

    def to_json(self) -> dict[str, Any]:
        return dict(self.items)


Filter = Union[Eq, In, Range, Exists, And, Or, Not, FlatEquals]
FILTER_TYPES = (Eq, In, Range, Exists, And, Or, Not, FlatEquals)


def cache_key(flt: Filter) -> Hashable:
    """A key equal for two filters exactly when they match the same documents by construction.

    Dataclass equality is not that: ``Eq("f", True) == Eq("f", 1)`` in Python,
    but ``true`` is not the number 1 here; the key carries each value's kind.
    Made on every filtered search (the plan cache's key), so one dict lookup
    by type finds how.
    """
    make = _KEY_MAKERS.get(type(flt))
    if make is None:  # a subclass of a clause
        make = next((m for t, m in _KEY_MAKERS.items() if isinstance(flt, t)), None)
        if make is None:
            raise TypeError(f"not a filter: {flt!r}")
    return make(flt)


def _flat_key(flt: FlatEquals) -> Hashable:
    items = []
    for key, v in flt.items:
        kind = kind_of(v)
        if kind == "other" and v is not None:
            return ("flat", json.dumps(flt.items, sort_keys=True))
        items.append((key, kind, v))
    return ("flat", tuple(items))


_KEY_MAKERS: dict[type, Any] = {
    Eq: lambda f: ("in", f.field, ((kind_of(f.value), f.value),)),
    In: lambda f: ("in", f.field, tuple([(kind_of(v), v) for v in f.values])),
    Range: lambda f: ("range", f.field, f.gt, f.gte, f.lt, f.lte),
    Exists: lambda f: ("exists", f.field, f.exists),
    And: lambda f: ("And", tuple([cache_key(c) for c in f.clauses])),
    Or: lambda f: ("Or", tuple([cache_key(c) for c in f.clauses])),
    Not: lambda f: ("not", cache_key(f.clause)),
    FlatEquals: _flat_key,
}


# ---------------------------------------------------------------- parsing


def parse_filter(spec: Any) -> Filter | None:
    """A filter from its JSON form (a dict, or a JSON string), a :data:`Filter`, or ``None``/``{}`` for none.

    Raises :class:`FilterError` naming the field (or the operator) at fault.
    """
    if spec is None or isinstance(spec, FILTER_TYPES):
        return spec
    if isinstance(spec, (str, bytes)):
        try:
            spec = json.loads(spec)
        except ValueError as e:
            raise FilterError(f"filter is not valid JSON ({e})") from None
    if type(spec) is not dict and not isinstance(spec, Mapping):
        raise FilterError(f"a filter is a JSON object, not {_type_name(spec)}")
    if not spec:
        return None
    counter = [0]
    return _parse(spec, 0, counter)


def _parse(spec: Any, depth: int, counter: list[int]) -> Filter:
    counter[0] += 1
    if counter[0] > MAX_CLAUSES:
        raise FilterError(f"filter has more than {MAX_CLAUSES} clauses")
    if depth > MAX_DEPTH:
        raise FilterError(f"filter nests deeper than {MAX_DEPTH} levels")
    if type(spec) is not dict and not isinstance(spec, Mapping):
        raise FilterError(f"a filter clause is a JSON object, not {_type_name(spec)}")
    if not spec:
        raise FilterError("empty filter clause {} (give a field and an operator, or and/or/not)")
    for key in spec:
        if type(key) is not str:
            raise FilterError(f"filter keys are strings, not {_type_name(key)}")
    if "field" in spec:
        return _field_clause(spec)
    reserved = [k for k in RESERVED if k in spec]
    if not reserved:
        return FlatEquals(tuple(spec.items()))
    if len(spec) != 1:
        raise FilterError(f"{reserved[0]!r} must be alone in its clause, found also "
                          f"{', '.join(repr(k) for k in spec if k != reserved[0])} (put clauses inside it)")
    (op, arg), = spec.items()
    if op == "not":
        if not isinstance(arg, Mapping):
            raise FilterError(f"'not' takes one clause (a JSON object), not {_type_name(arg)}")
        return Not(_parse(arg, depth + 1, counter))
    if not isinstance(arg, list):
        raise FilterError(f"{op!r} takes a list of clauses, not {_type_name(arg)}")
    if not arg:
        raise FilterError(f"{op!r} needs at least one clause")
    children = [_parse(c, depth + 1, counter) for c in arg]
    return And(children) if op == "and" else Or(children)


def _field_clause(spec: Mapping[str, Any]) -> Filter:
    field = spec["field"]
    if len(spec) == 2 and type(field) is str and field:  # the common {"field": ..., "eq"/"in": ...}: one look-up
        value = spec.get("eq", _MISSING)
        if value is not _MISSING:
            return Eq(field, value)
        value = spec.get("in", _MISSING)
        if type(value) is list:
            return In(field, value)
    _check_field(field)
    ops = [k for k in spec if k != "field"]
    if not ops:
        raise FilterError(f"no operator (one of {', '.join(FIELD_OPS)})", field)
    unknown = [k for k in ops if k not in FIELD_OPS]
    if unknown:
        raise FilterError(f"unknown operator {unknown[0]!r} (expected {', '.join(FIELD_OPS)})", field)
    ranges = [op for op in ops if op in RANGE_OPS]
    others = [op for op in ops if op not in RANGE_OPS]
    if len(others) > 1 or (others and ranges):
        raise FilterError(f"one operator per clause: {' and '.join(repr(o) for o in ops)} given together "
                          f"(only range bounds combine; use 'and' for the rest)", field)
    if ranges:
        return Range(field, **{op: spec[op] for op in ranges})
    op = others[0]
    if op == "exists":
        return Exists(field, spec[op])
    if op == "in":
        if not isinstance(spec[op], list):
            raise FilterError(f"'in' takes a list of values, not {_describe(spec[op])}", field)
        return In(field, spec[op])
    return Eq(field, spec[op])


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", str: "a string", int: "a number", float: "a number", list: "a list",
            dict: "an object", tuple: "a list"}.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    if isinstance(value, (str, bool, int, float)):
        return f"{_type_name(value)} ({json.dumps(value)})"
    return _type_name(value)


# ---------------------------------------------------------------- checks against the data


def check_against(flt: Filter, kinds: Mapping[str, set[str]], n_docs: int, where: str = "this index") -> None:
    """Refuse a filter that does not fit the data: a field no document holds, or a type it never holds.

    ``kinds``: field -> the value kinds (``string``, ``number``, ``boolean``,
    ``other``) found in the collection.  Nothing is refused while the
    collection holds no document at all (nothing is known about its fields).
    """
    if n_docs == 0:
        return
    _check(flt, kinds, where)


def _check(flt: Filter, kinds: Mapping[str, set[str]], where: str) -> None:
    if isinstance(flt, (And, Or)):
        for c in flt.clauses:
            _check(c, kinds, where)
        return
    if isinstance(flt, Not):
        _check(flt.clause, kinds, where)
        return
    if isinstance(flt, FlatEquals):
        return
    have = kinds.get(flt.field)
    if not have:
        known = sorted(kinds)
        listed = ", ".join(repr(k) for k in known[:20]) + (", ..." if len(known) > 20 else "")
        raise FilterError(f"no document in {where} has this field"
                          + (f" (fields: {listed})" if known else " (it stores no metadata)"), flt.field)
    if isinstance(flt, Range) and "number" not in have:
        raise FilterError(f"a range needs numbers, and this field holds {_kinds(have)}", flt.field)
    if isinstance(flt, (Eq, In)):
        values = (flt.value,) if isinstance(flt, Eq) else flt.values
        for v in values:
            if kind_of(v) not in have:
                op = "eq" if isinstance(flt, Eq) else "in"
                raise FilterError(f"{op!r} compares {_describe(v)}, and this field holds {_kinds(have)}", flt.field)


def _kinds(have: set[str]) -> str:
    names = {"string": "strings", "number": "numbers", "boolean": "booleans", "other": "lists or objects"}
    return " and ".join(names[k] for k in sorted(have))

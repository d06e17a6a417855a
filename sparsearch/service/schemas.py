"""Request and response bodies (the OpenAPI schema at ``/docs`` is generated from these).

Every value a client sends is checked here, before any endpoint runs, so
nothing invalid reaches the write-ahead log or an index: NaN and Infinity
(which Python's JSON parser accepts, and which no JSON encoder can write back
out) and unpaired surrogates (which ``\\ud800`` escapes allow, and which UTF-8
cannot hold) are refused with 422 naming the field, anywhere they occur.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from sparsearch.index.segment import MAX_ID_BYTES

# 512 characters of up to 4 bytes each fit the index's limit of MAX_ID_BYTES (2,048) bytes of UTF-8.
MAX_ID_CHARS = 512


def _path(path: str, key: object) -> str:
    return f"{path}[{key!r}]" if isinstance(key, str) else f"{path}[{key}]"


def _check_text(value: str, where: str = "text") -> str:
    """Refuse strings UTF-8 cannot encode (unpaired surrogates): they would fail in the log or the index."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{where}: invalid Unicode (unpaired surrogate U+{ord(value[e.start]):04X} "
                         f"at character {e.start})") from None
    return value


def _check_json(value: Any, where: str) -> None:
    """Walk a JSON value: finite numbers only, encodable strings and keys, whatever the nesting."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: NaN and Infinity are not allowed (not representable in JSON)")
    elif isinstance(value, str):
        _check_text(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{where} key {key.encode('utf-8', 'backslashreplace').decode()!r}")
            _check_json(item, _path(where, key.encode("utf-8", "backslashreplace").decode()))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, _path(where, i))


def _text_field(value: str, info: ValidationInfo) -> str:
    return _check_text(value, info.field_name or "value")


def _id_field(value: str, info: ValidationInfo) -> str:
    """An id the index can store: valid Unicode, at most ``MAX_ID_BYTES`` of UTF-8 (the index's own limit)."""
    _check_text(value, info.field_name or "id")
    if len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise ValueError(f"id of {len(value.encode('utf-8'))} bytes exceeds {MAX_ID_BYTES} bytes of UTF-8")
    return value


def _json_field(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    _check_json(value, info.field_name or "value")
    return value


def _filter_field(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    """A metadata filter in the language of :mod:`sparsearch.filters` (checked against the data at search time)."""
    from sparsearch.filters import FilterError, parse_filter

    try:
        parse_filter(value)
    except FilterError as e:
        raise ValueError(str(e)) from None
    return value


Text = Annotated[str, AfterValidator(_text_field)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_field)]
FilterObject = Annotated[dict[str, Any], AfterValidator(_json_field), AfterValidator(_filter_field)]
DocId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(_id_field)]


class BM25Params(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    k1: float = Field(0.9, ge=0.0, le=10.0)
    b: float = Field(0.4, ge=0.0, le=1.0)


class CollectionSpec(BaseModel):
    """Fixed at creation: the encoder and its parameters."""

    model_config = ConfigDict(extra="forbid")
    encoder: Literal["bm25"] = "bm25"
    params: BM25Params = Field(default_factory=BM25Params)


class CollectionInfo(BaseModel):
    name: str
    encoder: str
    params: dict[str, Any]
    documents: int
    segments: int


class Unavailable(BaseModel):
    """A collection that could not be opened, and why (a corrupt file, an I/O error)."""

    name: str
    reason: str


class CollectionList(BaseModel):
    collections: list[CollectionInfo]
    unavailable: list[Unavailable] = Field(default_factory=list)


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)
    id: DocId = Field(alias="_id")
    title: Text = ""
    text: Text = ""
    metadata: JsonObject = Field(default_factory=dict)


class DocumentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[DocumentIn]


class WriteResult(BaseModel):
    acknowledged: int
    documents: int


class DeleteResult(BaseModel):
    deleted: bool


class DocumentOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: str = Field(serialization_alias="_id")
    title: str = ""
    text: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    query: Text
    k: int = Field(10, ge=1)
    filter: FilterObject | None = Field(None, description=(
        'Metadata filter: {"field": "lang", "eq": "en"}, {"field": "tag", "in": ["a", "b"]}, {"field": "year", '
        '"gte": 2000, "lt": 2010}, {"field": "doi", "exists": true}, {"and": [...]}, {"or": [...]}, {"not": {...}}; '
        'or the flat {"key": value, ...} (AND of equalities). Applied before ranking (docs/filters.md).'))
    fields: list[Literal["title", "text", "metadata"]] = Field(default_factory=lambda: ["title"])


class Hit(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")
    id: str = Field(serialization_alias="_id")
    score: float


class SearchOut(BaseModel):
    hits: list[Hit]


class Health(BaseModel):
    """``ok``, or ``degraded`` while some collection is unavailable (listed with its reason)."""

    status: Literal["ok", "degraded"]
    collections: int
    unavailable: list[Unavailable] = Field(default_factory=list)

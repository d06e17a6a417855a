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

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from sparsearch.index.segment import MAX_ID_BYTES
from sparsearch.retriever.resolve import DEFAULT_INFERENCE_FREE_MODEL

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


class LearnedParams(BaseModel):
    """Document-side settings of a learned sparse model (see :class:`~sparsearch.retriever.splade.SpladeConfig`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    max_length: int = Field(256, ge=4, le=8192, description="Tokens of a document the model reads (at most the "
                            "model's positions); the rest is cut.")
    batch_size: int = Field(32, ge=1, le=1024, description="Documents per forward pass.")
    doc_top_k: int | None = Field(None, ge=1, description="Keep only the k largest weights of each document.")
    doc_threshold: float = Field(0.0, ge=0.0, le=1e6, description="Drop document weights at or below this "
                                 "(static pruning: smaller index, faster queries).")


class InferenceFreeParams(LearnedParams):
    """Queries need no model (tokenizer and IDF weights): document settings, and where the IDF weights come from."""

    idf: Literal["model", "collection"] = Field("model", description="Query token weights: \"model\" (the "
                                                "model's idf.json) or \"collection\" (IDF of this collection's "
                                                "document texts, kept exact as documents are added and deleted).")


class SpladeParams(LearnedParams):
    query_max_length: int = Field(256, ge=4, le=8192, description="Tokens of a query the model reads.")


class DenseParams(BaseModel):
    """How a hybrid collection's dense model encodes documents and queries."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    max_length: int | None = Field(None, ge=4, le=8192, description="Tokens of a text the model reads (default: "
                                   "the model's own max_seq_length).")
    batch_size: int = Field(32, ge=1, le=1024, description="Texts per forward pass.")


PARAMS: dict[str, type[BaseModel]] = {"bm25": BM25Params, "splade": SpladeParams, "inference-free": InferenceFreeParams}
LEARNED = ("splade", "inference-free")
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def _model_name(value: str) -> str:
    from sparsearch.service.models import check_model_name

    return check_model_name(value)


ModelName = Annotated[str, Field(min_length=1, max_length=128, json_schema_extra={"pattern": MODEL_NAME_PATTERN}),
                      AfterValidator(_model_name)]


class CollectionSpec(BaseModel):
    """Fixed at creation: the encoder, its model (learned encoders: a name the server knows) and parameters.

    ``inference-free`` without a ``model`` gets
    :data:`~sparsearch.retriever.resolve.DEFAULT_INFERENCE_FREE_MODEL`, written
    into the spec as if given, so the collection keeps its model whatever
    the default becomes (and a repeated request is the same collection).

    ``params`` is checked against the encoder's own schema (BM25: ``k1``,
    ``b``; learned: ``max_length``, ``batch_size``, ``doc_top_k``,
    ``doc_threshold``, and for SPLADE ``query_max_length``); unknown fields
    are refused.  ``model`` is a name, never a path.
    """

    model_config = ConfigDict(extra="forbid")
    encoder: Literal["bm25", "splade", "inference-free"] = "bm25"
    model: ModelName | None = Field(None, validate_default=True, description="Learned encoders: the name of one "
                                    "of the server's models (sparsearch serve --models-dir). Encoder "
                                    f"inference-free without one: {DEFAULT_INFERENCE_FREE_MODEL}, the general "
                                    "shipped model; splade needs one.")
    params: BM25Params | SpladeParams | InferenceFreeParams | None = Field(None, validate_default=True)
    dense_model: ModelName | None = Field(None, description="A hybrid collection: also index every document with "
                                          "this dense bi-encoder of the server's models (e.g. all-minilm-l6-v2); "
                                          "searches then take \"mode\": sparse, dense or hybrid. One write-ahead "
                                          "log keeps both indexes consistent.")
    dense_params: DenseParams | None = Field(None, description="The dense model's settings (with dense_model).")

    @field_validator("dense_params", mode="after")
    @classmethod
    def _dense_params_need_a_model(cls, value: DenseParams | None, info: ValidationInfo) -> DenseParams | None:
        if value is not None and info.data.get("dense_model") is None:
            raise ValueError("dense_params apply to a dense_model: give one, or leave dense_params out")
        return value

    @field_validator("model", mode="after")
    @classmethod
    def _model_for_encoder(cls, value: str | None, info: ValidationInfo) -> str | None:
        encoder = info.data.get("encoder")
        if encoder == "inference-free" and value is None:  # recorded in the spec: a later default is another model
            return DEFAULT_INFERENCE_FREE_MODEL
        if encoder in LEARNED and value is None:
            raise ValueError(f"encoder {encoder!r} needs a model: the name of one of the server's models")
        if encoder == "bm25" and value is not None:
            raise ValueError("encoder 'bm25' takes no model")
        return value

    @field_validator("params", mode="wrap")
    @classmethod
    def _params_of_encoder(cls, value: Any, handler: Any, info: ValidationInfo) -> BaseModel | None:
        """Validated by the schema of the chosen encoder (errors keep their place: ``params.doc_threshold``)."""
        encoder = info.data.get("encoder")
        if encoder not in PARAMS:  # the encoder itself was refused: that error is the one to report
            return None
        if isinstance(value, BaseModel):
            value = value.model_dump()
        return PARAMS[encoder].model_validate({} if value is None else value)


class ModelOut(BaseModel):
    """The model a learned collection encodes with: its name, version (a hash of its files) and settings."""

    name: str
    version: str
    settings: dict[str, Any]


class CollectionInfo(BaseModel):
    name: str
    encoder: str
    params: dict[str, Any]
    documents: int
    segments: int
    model: ModelOut | None = None
    dense_model: ModelOut | None = None
    modes: list[str] = Field(default_factory=lambda: ["sparse"], description="What \"mode\" a search may ask for.")


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
    mode: Literal["sparse", "dense", "hybrid"] | None = Field(None, description="Which index answers: sparse, dense "
                                                              "or both fused (hybrid). Default: hybrid for a "
                                                              "collection with a dense_model, else sparse.")
    prf: Literal["none", "rm3", "rocchio", "both"] | None = Field(None, description="Pseudo-relevance feedback: rm3 "
                                                                  "(BM25), rocchio (dense) or both.")
    fusion: Literal["minmax", "zscore", "rrf"] | None = Field(None, description="How hybrid rankings are fused "
                                                              "(default minmax).")
    alpha: float | None = Field(None, ge=0.0, le=1.0, description="Weight of the sparse ranking; the dense one gets "
                                "1 - alpha (default 0.5).")
    depth: int | None = Field(None, ge=1, le=10_000, description="Candidates each index gives the fusion (1000).")
    fb_docs: int | None = Field(None, ge=1, le=1000, description="Feedback documents (3, chosen on training queries).")
    search_mode: Literal["exact", "bmp", "approx"] | None = Field(None, description=(
        "How sparse indexes find the top k: exact (default), bmp (exact, block-max pruning) or approx "
        "(approximate, learned sparse; tuned by query_terms, list_fraction and candidates)."))
    query_terms: int | None = Field(None, ge=1, le=10_000, description="approx: query terms kept, the heaviest (10).")
    list_fraction: float | None = Field(None, gt=0.0, le=1.0, description="approx: at most this fraction of the "
                                        "documents read from each pruned list (default: whole pruned lists).")
    candidates: int | None = Field(None, ge=1, le=100_000, description="approx: best partial scores re-scored "
                                   "exactly (100).")

    def options(self) -> dict[str, Any]:
        """The search options given (for :meth:`~sparsearch.retriever.hybrid_collection.HybridCollection.search`)."""
        return {k: getattr(self, k) for k in ("mode", "prf", "fusion", "alpha", "depth", "fb_docs", "search_mode",
                                              "query_terms", "list_fraction", "candidates")
                if getattr(self, k) is not None}


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

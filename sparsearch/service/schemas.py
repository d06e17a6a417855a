"""Request and response bodies (the OpenAPI schema at ``/docs`` is generated from these)."""

from __future__ import annotations

from typing import Any, Literal

import json

from pydantic import BaseModel, ConfigDict, Field, model_validator


def _encodable(model: BaseModel) -> BaseModel:
    """Refuse text that cannot be stored as UTF-8 (unpaired surrogates, which JSON escapes allow)."""
    try:
        json.dumps(model.model_dump(), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (found an unpaired surrogate)") from None
    return model


class BM25Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
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


class CollectionList(BaseModel):
    collections: list[CollectionInfo]


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: str = Field(alias="_id", min_length=1, max_length=512)
    title: str = ""
    text: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)

    _check_encodable = model_validator(mode="after")(_encodable)


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
    model_config = ConfigDict(extra="forbid")
    query: str
    k: int = Field(10, ge=1)
    filter: dict[str, Any] | None = None
    fields: list[Literal["title", "text", "metadata"]] = Field(default_factory=lambda: ["title"])

    _check_encodable = model_validator(mode="after")(_encodable)


class Hit(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")
    id: str = Field(serialization_alias="_id")
    score: float


class SearchOut(BaseModel):
    hits: list[Hit]


class Health(BaseModel):
    status: Literal["ok"]
    collections: int

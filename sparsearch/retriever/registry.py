"""Encoder registry: the name saved in a manifest -> the class that can load it.

Optional encoders (those needing torch) register lazily, so opening a BM25
index never imports them.
"""

from __future__ import annotations

import importlib
from typing import Any

from sparsearch.errors import IndexFormatError

_ENCODERS: dict[str, str] = {
    "bm25": "sparsearch.retriever.bm25:BM25Encoder",
    "splade": "sparsearch.retriever.splade:SpladeEncoder",
    "inference-free": "sparsearch.retriever.inference_free:InferenceFreeEncoder",
    "precomputed": "sparsearch.retriever.precomputed:PrecomputedEncoder",
}


def encoder_class(name: str) -> Any:
    target = _ENCODERS.get(name)
    if target is None:
        raise IndexFormatError(f"unknown encoder {name!r} (known: {', '.join(sorted(_ENCODERS))})")
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def register_encoder(name: str, target: str) -> None:
    """Register ``"package.module:Class"`` under ``name``."""
    _ENCODERS[name] = target

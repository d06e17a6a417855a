"""sparsearch: sparse retrieval with a Numba inverted index.

>>> from sparsearch import Retriever, read_corpus
>>> retriever = Retriever.build(read_corpus("scifact"), path="scifact-index")  # doctest: +SKIP
>>> retriever.search("microRNA in cancer", k=10).ids  # doctest: +SKIP

Names are imported on first use (PEP 562), so ``import sparsearch.types`` or
``sparsearch.protocols`` loads neither the index nor any encoder.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

logging.getLogger(__name__).addHandler(logging.NullHandler())

_EXPORTS = {
    "BM25Config": "sparsearch.retriever.bm25",
    "BM25Encoder": "sparsearch.retriever.bm25",
    "Document": "sparsearch.types",
    "Hits": "sparsearch.types",
    "IndexFormatError": "sparsearch.errors",
    "InputError": "sparsearch.errors",
    "LiveSettings": "sparsearch.index.writer",
    "Retriever": "sparsearch.retriever.retriever",
    "SparseBatch": "sparsearch.types",
    "SparsearchError": "sparsearch.errors",
    "build_encoder": "sparsearch.retriever.registry",
    "read_corpus": "sparsearch.corpus",
}
#: ``Index`` is the name earlier releases gave the retriever.
_ALIASES = {"Index": ("sparsearch.retriever.retriever", "Retriever")}

__all__ = sorted([*_EXPORTS, *_ALIASES])
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _ALIASES:
        module, attr = _ALIASES[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'sparsearch' has no attribute {name!r}")


if TYPE_CHECKING:
    from sparsearch.corpus import read_corpus
    from sparsearch.errors import IndexFormatError, InputError, SparsearchError
    from sparsearch.index.writer import LiveSettings
    from sparsearch.retriever.bm25 import BM25Config, BM25Encoder
    from sparsearch.retriever.registry import build_encoder
    from sparsearch.retriever.retriever import Retriever
    from sparsearch.retriever.retriever import Retriever as Index
    from sparsearch.types import Document, Hits, SparseBatch

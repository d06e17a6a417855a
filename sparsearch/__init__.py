"""sparsearch: sparse retrieval with a Numba inverted index.

>>> from sparsearch import Index, read_corpus
>>> index = Index.build(read_corpus("scifact"), path="scifact-index")  # doctest: +SKIP
>>> index.search("microRNA in cancer", k=10).ids  # doctest: +SKIP
"""

import logging

from sparsearch.corpus import read_corpus
from sparsearch.engine import Index
from sparsearch.errors import InputError, IndexFormatError, SparsearchError
from sparsearch.retriever.bm25 import BM25Config, BM25Encoder
from sparsearch.types import Document, Hits, SparseBatch

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "BM25Config", "BM25Encoder", "Document", "Hits", "Index", "IndexFormatError", "InputError",
    "SparseBatch", "SparsearchError", "read_corpus",
]
__version__ = "0.1.0"

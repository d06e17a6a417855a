"""SPLADE: sparse vectors from a masked language model (Formal et al. 2021; SPLADE++ 2022).

``SpladeEncoder`` is the siamese model (one MLM encodes queries and
documents, score = dot product); :mod:`sparsearch.retriever.inference_free`
reuses :class:`SpladeModel` for its documents only.  Both emit WordPiece ids,
so the index needs no vocabulary of its own and scores linearly.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence

import numpy as np

from sparsearch.errors import MissingDependencyError, SparsearchError
from sparsearch.scoring import Scoring
from sparsearch.types import CollectionStats, Document, SparseBatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpladeConfig:
    """How a SPLADE-style model encodes text.

    ``doc_top_k`` keeps only the k largest weights of each document vector and
    ``doc_threshold`` drops weights at or below it: both trade index size and
    query time for a little quality (static pruning).  ``device="auto"``
    picks CUDA when present.  ``model_dir`` may be a folder, a shipped
    model's name or a Hugging Face id (:mod:`sparsearch.retriever.resolve`):
    a name is resolved here, ``model_dir`` becomes the folder and ``model``
    keeps the name, and both go into an index's manifest.
    """

    model_dir: str
    max_length: int = 256
    query_max_length: int = 256
    batch_size: int = 32
    device: str = "auto"
    doc_top_k: int | None = None
    doc_threshold: float = 0.0
    exact_screening: bool = True
    model: str | None = None

    def __post_init__(self) -> None:
        if self.query_max_length < 4:
            raise ValueError(f"max_length must be >= 4, got query_max_length {self.query_max_length}")
        check_document_settings(self.max_length, self.batch_size, self.doc_top_k, self.doc_threshold)
        resolve_config_model(self)


def resolve_config_model(config: Any) -> None:
    """``model_dir`` may be a folder, a shipped model's name or a Hugging Face id: keep the name in ``model``
    and the folder it resolved to in ``model_dir`` (both are saved in an index's manifest)."""
    from sparsearch.retriever.resolve import resolve_model_dir

    folder, name = resolve_model_dir(str(config.model_dir), config.model)
    object.__setattr__(config, "model_dir", folder)
    object.__setattr__(config, "model", name)


def check_document_settings(max_length: int, batch_size: int, doc_top_k: int | None, doc_threshold: float) -> None:
    """Reject document-encoding settings that would fail deep inside torch or silently index nothing."""
    if max_length < 4:
        raise ValueError(f"max_length must be >= 4, got {max_length}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if doc_top_k is not None and doc_top_k < 1:
        raise ValueError(f"doc_top_k must be >= 1 or None, got {doc_top_k}")
    if doc_threshold < 0:
        raise ValueError(f"doc_threshold must be >= 0, got {doc_threshold}")


#: Where an encoder gets its MLM: called with the encoder's config, returns a loaded :class:`SpladeModel`.
ModelSource = Callable[[Any], "SpladeModel"]
_MODEL_SOURCE: ContextVar["ModelSource | None"] = ContextVar("sparsearch_model_source", default=None)


@contextmanager
def models_from(source: ModelSource) -> Iterator[None]:
    """Encoders built inside this block take their MLM from ``source(config)`` instead of loading a copy.

    The service passes its process-wide cache here while it opens a
    collection (``Index.open`` builds the encoder from the manifest), so every
    collection on one model shares one copy in memory, whatever its document
    settings; :class:`SpladeModel` takes those per call.
    """
    token = _MODEL_SOURCE.set(source)
    try:
        yield
    finally:
        _MODEL_SOURCE.reset(token)


def current_model_source() -> ModelSource | None:
    return _MODEL_SOURCE.get()


def load_model(config: Any, source: ModelSource | None = None) -> "SpladeModel":
    """The MLM of an encoder config: from ``source`` when one was given, else loaded from ``model_dir``."""
    if source is not None:
        return source(config)
    from sparsearch.retriever.resolve import require_model_dir

    return SpladeModel(require_model_dir(config.model_dir, config.model), config.device, config.exact_screening)


def _torch():  # type: ignore[no-untyped-def]
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "SPLADE models need torch and transformers: pip install 'sparsearch[learned]'") from None
    return torch


def dense_to_sparse(vectors: Any, top_k: int | None = None, threshold: float = 0.0) -> SparseBatch:
    """``[rows, vocab]`` weights -> CSR rows of the entries above ``threshold`` (the ``top_k`` largest)."""
    torch = _torch()
    v = vectors.float()
    if top_k is not None and top_k < v.shape[1]:
        values, idx = torch.topk(v, top_k, dim=1)
        v = torch.zeros_like(v).scatter_(1, idx, values)
    keep = v > threshold
    rows, cols = keep.nonzero(as_tuple=True)
    weights = v[rows, cols]
    counts = keep.sum(dim=1).cpu().numpy()
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return SparseBatch(offsets, cols.cpu().numpy().astype(np.int32), weights.cpu().numpy())


def permute_rows(batch: SparseBatch, order: np.ndarray) -> SparseBatch:
    """Row ``i`` of the result is row ``order[i]`` of ``batch``."""
    lengths = np.diff(batch.offsets)[order]
    offsets = np.zeros(len(order) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    starts = batch.offsets[:-1][order]
    flat = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return SparseBatch(offsets, batch.term_ids[flat], batch.weights[flat])


class SpladeModel:
    """A loaded MLM and its tokenizer, encoding text in length-sorted batches.

    Sorting by length before batching means a batch pads to its own longest
    text rather than to ``max_length``: on a corpus of mixed lengths most of
    the matrix products over padding disappear.
    """

    def __init__(self, model_dir: str | Path, device: Any = "auto", exact_screening: bool = True,
                 activation: str | None = None) -> None:
        torch = _torch()
        from sparsearch.retriever.mlm import load_masked_lm, mlm_parts
        from sparsearch.retriever.st_format import describe_model

        self.model_dir = Path(model_dir)
        # A native folder, or a sentence-transformers SparseEncoder folder (its MLM may sit in a sub-folder).
        self.layout = describe_model(self.model_dir)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = load_masked_lm(self.layout.document_dir, self.device)
        self.parts = mlm_parts(self.model)
        self._n_terms = int(self.parts.decoder_weight.shape[0])
        self._kept_terms = None  # term id of each decoder row, when a pruned vocabulary keeps only some
        if exact_screening:  # inference: a `sparsearch prune` folder's heads, kernels, int8, vocabulary
            from sparsearch.pruning.store import apply_runtime

            self.parts, kept = apply_runtime(self.model, self.parts, self.layout.document_dir)
            self._kept_terms = None if kept is None else torch.from_numpy(kept).to(self.device)
        self.tokenizer = load_tokenizer(self.layout.document_dir)
        # log1p_relu (OpenSearch v3): log(1 + log(1 + ReLU(x))), monotone, so applied after max pooling.
        # ``activation`` overrides the folder's (training a plain-SPLADE student from any folder: "relu").
        self.double_log = (activation or self.layout.activation) == "log1p_relu"
        self.exact_screening = exact_screening
        self._pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        # Truncation is a setting of the tokenizer: one thread at a time sets it and tokenizes (queries and
        # documents of different max_length, or several encoders sharing this model, run in parallel).
        self._tokenizer_lock = threading.Lock()
        self._screen = None  # DecoderScreen, built on first use (weights are frozen here)

    @property
    def vocab_size(self) -> int:
        return self._n_terms

    def token_ids(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        """WordPiece ids with special tokens, truncated to ``max_length`` as Hugging Face truncates."""
        with self._tokenizer_lock:
            self.tokenizer.enable_truncation(max_length)
            return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    def vectors(self, texts: Sequence[str], max_length: int) -> Any:
        """Dense ``[len(texts), vocab]`` weights of ``texts`` as one padded batch, in order.

        Tokenise -> pad -> pool, differentiable when the model was loaded with
        ``exact_screening=False`` (the training student encodes through here
        under autograd); :meth:`encode` runs the same path per length-sorted batch.
        """
        return self.dense_vectors(*pad_rows(self.token_ids(texts, max_length), self._pad_id, self.device))

    def dense_vectors(self, input_ids: Any, mask: Any) -> Any:
        """SPLADE weights ``[rows, vocab]`` of padded token ids and their attention mask (see :func:`pad_rows`)."""
        torch = _torch()
        from sparsearch.retriever.mlm import DecoderScreen, native_bf16, screened_splade_vectors, splade_vectors

        if self.exact_screening:  # inference only: the screen caches the (frozen) decoder
            dtype = torch.bfloat16 if native_bf16(self.device) else torch.float32
            if self._screen is None or self._screen.screen_rows.dtype != dtype:
                self._screen = DecoderScreen.build(self.parts, dtype)
            vectors = screened_splade_vectors(self.parts, input_ids, mask, screen_dtype=dtype, screen=self._screen)
            if self._kept_terms is not None:  # back to term ids: the dropped terms weigh 0
                full = vectors.new_zeros((vectors.shape[0], self._n_terms))
                vectors = full.index_copy_(1, self._kept_terms, vectors)
        else:
            vectors = splade_vectors(self.parts, input_ids, mask)
        return torch.log1p(vectors) if self.double_log else vectors

    def encode(self, texts: Sequence[str], max_length: int, batch_size: int, top_k: int | None = None,
               threshold: float = 0.0) -> SparseBatch:
        torch = _torch()

        if not texts:
            return SparseBatch.empty()
        ids = self.token_ids(texts, max_length)
        order = np.argsort([len(x) for x in ids], kind="stable")
        parts: list[SparseBatch] = []
        with torch.inference_mode():
            for lo in range(0, len(order), batch_size):
                rows = [ids[i] for i in order[lo:lo + batch_size]]
                if max(len(r) for r in rows) == 0:  # only texts with no token (a tokenizer adding no [CLS]/[SEP])
                    parts.append(SparseBatch.from_dicts([{}] * len(rows)))
                    continue
                vectors = self.dense_vectors(*pad_rows(rows, self._pad_id, self.device))
                parts.append(dense_to_sparse(vectors, top_k, threshold))
        sorted_batch = SparseBatch.concatenate(parts)
        return permute_rows(sorted_batch, np.argsort(order, kind="stable"))


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, device: Any = "cpu") -> tuple[Any, Any]:
    """Right-padded ``input_ids`` and ``attention_mask`` tensors of token-id rows, on ``device``."""
    torch = _torch()
    width = max((len(r) for r in rows), default=0)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        input_ids[r, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[r, :len(row)] = 1
    return input_ids.to(device), mask.to(device)


def load_tokenizer(model_dir: str | Path):  # type: ignore[no-untyped-def]
    """A private ``tokenizers.Tokenizer`` of the model folder (we change its truncation)."""
    from tokenizers import Tokenizer

    from sparsearch.retriever.analysis import _load_wordpiece

    return Tokenizer.from_str(_load_wordpiece(str(model_dir)).to_str())


class SpladeEncoder:
    """Siamese SPLADE: the same MLM encodes queries and documents; score = dot product."""

    name: ClassVar[str] = "splade"

    def __init__(self, config: SpladeConfig) -> None:
        self.settings = config
        self._model: SpladeModel | None = None
        self._model_source = current_model_source()  # set by models_from (a shared copy), else None

    @property
    def model(self) -> SpladeModel:
        if self._model is None:
            self._model = load_model(self.settings, self._model_source)
        return self._model

    @property
    def scoring(self) -> Scoring:
        return Scoring(transform="linear")

    @property
    def n_terms(self) -> int:
        return self.model.vocab_size

    def encode_documents(self, documents: Sequence[Document]) -> SparseBatch:
        s = self.settings
        return self.model.encode([d.contents for d in documents], s.max_length, s.batch_size, s.doc_top_k,
                                 s.doc_threshold)

    def encode_queries(self, queries: Sequence[str], stats: CollectionStats | None = None) -> SparseBatch:
        s = self.settings
        return self.model.encode(list(queries), s.query_max_length, s.batch_size)

    def token_strings(self) -> list[str]:
        """The WordPiece token of every id (the model's tokenizer names the vocabulary)."""
        from sparsearch.retriever.wordpiece_vocab import tokens_by_id

        model_dir = Path(self.settings.model_dir)
        if not model_dir.is_dir():
            raise SparsearchError(f"the index's model folder {model_dir} is gone: its tokenizer names the tokens")
        return tokens_by_id(load_tokenizer(model_dir))

    def config(self) -> dict[str, Any]:
        return asdict(self.settings)

    def state_files(self) -> dict[str, bytes]:
        return {}

    @classmethod
    def load(cls, config: dict[str, Any], files: dict[str, Path]) -> "SpladeEncoder":
        from sparsearch.retriever.resolve import configs_from_manifest

        with configs_from_manifest():
            return cls(SpladeConfig(**config))

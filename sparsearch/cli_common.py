"""What the ``sparsearch`` command modules share: one-line errors, encoders by name, dense index settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from sparsearch.errors import SparsearchError
from sparsearch.retriever.resolve import DEFAULT_INFERENCE_FREE_MODEL, resolve_model

EXIT_USER_ERROR = 2


def _fail(error: Exception) -> None:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(EXIT_USER_ERROR)


def _given(value):  # type: ignore[no-untyped-def]
    """``value``, or ``None`` when a command function was called from Python without it (typer's default object)."""
    return None if isinstance(value, typer.models.ParameterInfo) else value


def _bm25_encoder(k1: float, b: float):  # type: ignore[no-untyped-def]
    from sparsearch.retriever.registry import build_encoder

    return build_encoder("bm25", {"k1": k1, "b": b})


ENCODERS = ("bm25", "splade", "inference-free", "dense")


IDF_SOURCES = ("model", "collection")  # sparsearch.retriever.inference_free.IDF_SOURCES (not imported: no numpy here)


def _encoder(name: str, k1: float = 0.9, b: float = 0.4, model: Optional[Path] = None, max_length: int = 256,
             doc_top_k: Optional[int] = None, batch_size: int = 32, device: str = "auto",
             doc_threshold: float = 0.0, idf: str = "model"):  # type: ignore[no-untyped-def]
    """The encoder a command asked for; SPLADE and dense need ``--model`` (a folder, a shipped name or a HF id); inference-free defaults to the general model.

    ``idf``: inference-free query weights, ``model`` (its idf.json) or ``collection`` (the indexed texts').
    """
    if idf not in IDF_SOURCES:
        raise SparsearchError(f"--idf must be one of {', '.join(IDF_SOURCES)}, got {idf!r}")
    if idf != "model" and name != "inference-free":
        raise SparsearchError(f"--idf {idf} weighs inference-free queries: not for --encoder {name}")
    if name == "bm25":
        return _bm25_encoder(k1, b)
    if name not in ENCODERS:
        raise SparsearchError(f"unknown encoder {name!r} (available: {', '.join(ENCODERS)})")
    if model is None and name == "inference-free":  # the general shipped model (SPLADE and dense have no default)
        model = Path(DEFAULT_INFERENCE_FREE_MODEL)
    if model is None:
        raise SparsearchError(f"--encoder {name} needs --model: a model folder, a shipped model name "
                              "(sparsearch models list) or a Hugging Face id (org/name)")
    from sparsearch.retriever.registry import build_encoder

    found = resolve_model(str(model))  # one-line ModelNotFoundError saying what was tried
    if name == "dense":  # a bi-encoder: no sparsification settings (its own max length unless given)
        if doc_top_k is not None or doc_threshold:
            raise SparsearchError("--doc-top-k and --doc-threshold prune sparse vectors: not for --encoder dense")
        return build_encoder(name, {"batch_size": batch_size, "device": device}, model=found)
    settings: dict[str, Any] = dict(max_length=max_length, batch_size=batch_size, device=device,
                                    doc_top_k=doc_top_k, doc_threshold=doc_threshold)
    if name == "inference-free":
        settings["idf"] = idf
    return build_encoder(name, settings, model=found)


# Encoder options shared by ``index`` and ``eval`` (a typer option object may serve several commands).
K1 = typer.Option(0.9, help="BM25 k1 (when building).")
B = typer.Option(0.4, help="BM25 b (when building).")
MODEL = typer.Option(None, help="Model folder, shipped name or Hugging Face id (splade, inference-free, dense; "
                     f"inference-free defaults to {DEFAULT_INFERENCE_FREE_MODEL}, the general shipped model).")
MAX_LENGTH = typer.Option(256, help="Token limit of learned encoders.")
DOC_TOP_K = typer.Option(None, help="Keep the k largest weights per document (learned).")
DOC_THRESHOLD = typer.Option(0.0, help="Drop document weights at or below this (learned): static pruning, fewer "
                             "postings and faster queries for a little quality.")
BATCH_SIZE = typer.Option(32, help="Encoding batch size (learned, dense).")
DEVICE = typer.Option("auto", help="cpu, cuda or auto (learned, dense).")
IDF = typer.Option("model", "--idf", help="Inference-free query weights (when building): model (the model's "
                   "idf.json) or collection (IDF of the indexed documents' text tokens, kept exact as documents "
                   "are added and deleted).")
DENSE_MODEL = typer.Option(None, "--dense-model", help="Also index with this dense bi-encoder (e.g. "
                           "all-minilm-l6-v2, or a folder): a hybrid collection, searched with --mode "
                           "sparse|dense|hybrid.")
DENSE_INDEX = typer.Option("flat", "--dense-index", help="The dense index (of --dense-model or --encoder dense): "
                           "flat (exact), hnsw or ivfpq (faiss).")


def dense_format(index_type: str, **params: Optional[int]) -> Any:
    """The dense segment format for ``--dense-index`` and its parameters (``None``: the setting's default)."""
    from sparsearch.index.dense import DenseFormat
    from sparsearch.index.dense_settings import DenseIndexSettings

    return DenseFormat(DenseIndexSettings(index_type=index_type, **{k: v for k, v in params.items() if v is not None}))

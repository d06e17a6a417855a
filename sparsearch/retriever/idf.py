"""IDF tables over a WordPiece-tokenized corpus: the query side of inference-free models.

OpenSearch's doc-only releases ship an ``idf.json`` (token → weight) beside
the document model; the query vector of an inference-free model is the IDF of
its distinct tokens (Geng et al. 2024).  We compute it in BM25's form,
``ln(1 + (N − df + 0.5)/(df + 0.5))``, so a token never seen in the corpus
gets the largest weight rather than a division by zero.  No torch here: the
query side of an inference-free index runs on ``tokenizers`` and numpy alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from sparsearch.errors import InputError
from sparsearch.retriever.analysis import _load_wordpiece


def special_token_ids(tokenizer) -> set[int]:  # type: ignore[no-untyped-def]
    """Ids of [CLS], [SEP], [PAD], [MASK], [UNK] and the like: never query terms."""
    return {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}


def document_frequencies(texts: Iterable[str], tokenizer_dir: str | Path, batch: int = 1024) -> tuple[np.ndarray, int]:
    """Per-token document frequency over ``texts`` (no truncation, no special tokens) and the count N."""
    tokenizer = _load_wordpiece(str(tokenizer_dir))
    df = np.zeros(tokenizer.get_vocab_size(), np.int64)
    n_docs = 0
    chunk: list[str] = []

    def flush() -> None:
        for enc in tokenizer.encode_batch(chunk, add_special_tokens=False):
            ids = np.unique(np.asarray(enc.ids, np.int64))
            df[ids] += 1

    for text in texts:
        chunk.append(text)
        n_docs += 1
        if len(chunk) == batch:
            flush()
            chunk = []
    if chunk:
        flush()
    return df, n_docs


def bm25_form_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """``ln(1 + (N − df + 0.5)/(df + 0.5))`` in float64."""
    d = np.asarray(df, np.float64)
    return np.log1p((n_docs - d + 0.5) / (d + 0.5))


def idf_table(texts: Iterable[str], tokenizer_dir: str | Path) -> dict[str, float]:
    """``{token: idf}`` for every non-special token of the tokenizer's vocabulary."""
    tokenizer = _load_wordpiece(str(tokenizer_dir))
    df, n_docs = document_frequencies(texts, tokenizer_dir)
    if n_docs == 0:
        raise InputError("cannot compute IDF over an empty corpus")
    idf = bm25_form_idf(df, n_docs)
    special = special_token_ids(tokenizer)
    vocab = tokenizer.get_vocab()
    return {tok: float(idf[i]) for tok, i in sorted(vocab.items(), key=lambda kv: kv[1]) if i not in special}


def write_idf_json(table: dict[str, float], path: str | Path) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a table."""
    from sparsearch.index.storage import write_bytes_atomic

    write_bytes_atomic(Path(path), json.dumps(table, ensure_ascii=False).encode("utf-8"))


def read_idf_json(path: str | Path) -> dict[str, float]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: idf.json not found (make one with `sparsearch idf`)")
    try:
        table = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e.msg})", path=p, line=e.lineno) from None
    return parse_idf(table, p)


def parse_idf(table: object, source: str | Path = "idf.json") -> dict[str, float]:
    if not isinstance(table, dict):
        raise InputError("expected a JSON object mapping token -> weight", path=source)
    for tok, w in table.items():
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not np.isfinite(w) or w < 0:
            raise InputError(f"weight of token {tok!r} must be a finite number >= 0, got {w!r}", path=source)
    return {str(k): float(v) for k, v in table.items()}


def idf_vector(table: dict[str, float], vocab: dict[str, int]) -> np.ndarray:
    """Dense float32 weights by token id; tokens absent from the table weigh 0 (they cannot match)."""
    out = np.zeros(len(vocab), np.float32)
    for tok, w in table.items():
        i = vocab.get(tok)
        if i is not None:
            out[i] = w
    return out

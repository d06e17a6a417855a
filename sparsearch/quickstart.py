"""``sparsearch quickstart``: BM25 and the shipped learned sparse model, side by side, in a few seconds.

The learned model is :data:`LEARNED_MODEL`, an inference-free model:
documents are encoded by a transformer, queries only by its tokenizer and IDF
table.  Searching therefore needs no torch; encoding documents does, and
importing torch and transformers alone costs more than the 5 s a first
``quickstart`` may take on two cores (docs/benchmarks.md, "Start-up").  So
the bundled sample corpus ships with its document vectors, computed by this
model (:data:`SAMPLE_VECTORS`; ``python -m sparsearch.quickstart`` rewrites
them, and ``tests/learned/test_quickstart_vectors.py`` re-encodes the corpus
and compares): the quickstart builds the learned index from them and encodes
queries with the model's own tokenizer and IDF — exactly what searching an
index the model built does.  ``--learned`` runs the model on the documents
instead (needs torch; also for any other corpus, e.g. SciFact).

:data:`LEARNED_MODEL` is the default general model
(:data:`~sparsearch.retriever.resolve.DEFAULT_INFERENCE_FREE_MODEL`); the sample's
vectors by it are ``sample_corpus.<model>.jsonl`` (:data:`SAMPLE_VECTORS` follows the name).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sparsearch.errors import SparsearchError
from sparsearch.retriever.resolve import DEFAULT_INFERENCE_FREE_MODEL
from sparsearch.sample import SAMPLE_CORPUS
from sparsearch.types import Document, SparseBatch

#: The shipped learned sparse model the quickstart shows next to BM25: the default one.
LEARNED_MODEL = DEFAULT_INFERENCE_FREE_MODEL
#: Document vectors of :data:`~sparsearch.sample.SAMPLE_CORPUS` by :data:`LEARNED_MODEL` (JSON lines
#: ``{"id", "vector": {token: weight}}``, Pyserini's JsonVectorCollection layout; float32 weights).
SAMPLE_VECTORS = SAMPLE_CORPUS.with_name(f"sample_corpus.{LEARNED_MODEL}.jsonl")


def read_vectors(path: Path) -> dict[str, dict[str, float]]:
    """Document id -> {token: weight} from a JSON-lines vector file."""
    out: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                out[row["id"]] = row["vector"]
    return out


def shipped_vector_encoder(model_dir: Path, vectors: dict[str, dict[str, float]]):  # type: ignore[no-untyped-def]
    """An inference-free encoder whose documents come from ``vectors`` (no torch); queries as the model's.

    The index it builds records the plain ``inference-free`` encoder (model
    folder, tokenizer and IDF), so it opens and searches like any index the
    model built.
    """
    from sparsearch.retriever.inference_free import InferenceFreeEncoder
    from sparsearch.retriever.registry import encoder_config

    class ShippedVectors(InferenceFreeEncoder):
        def encode_documents(self, documents: Sequence[Document]) -> SparseBatch:
            tokenizer = self.queries.tokenizer
            rows: list[dict[int, float]] = []
            for d in documents:
                vector = vectors.get(d.doc_id)
                if vector is None:
                    raise SparsearchError(f"{SAMPLE_VECTORS} has no vector for document {d.doc_id!r}")
                row = {}
                for token, weight in vector.items():
                    term = tokenizer.token_to_id(token)
                    if term is None:
                        raise SparsearchError(f"{SAMPLE_VECTORS}: token {token!r} is not in {LEARNED_MODEL}'s "
                                              f"vocabulary")
                    row[term] = weight
                rows.append(row)
            return SparseBatch.from_dicts(rows)

    return ShippedVectors(encoder_config("inference-free", {"model_dir": str(model_dir), "model": LEARNED_MODEL}))


@dataclass
class Column:
    """One ranked list to print: a heading and (score, id, title) rows."""

    heading: str
    rows: list[tuple[float, str, str]]


def hits_of(index: Any, query: str, k: int) -> list[tuple[float, str, str]]:
    """Top ``k`` of ``query`` as (score, id, title)."""
    hits = index.search(query, min(k, max(1, index.n_docs)))
    return [(float(score), doc_id, str(index.stored_fields(int(internal)).get("title", "")))
            for doc_id, score, internal in zip(hits.ids, hits.scores, hits.internal_ids)]


def side_by_side(columns: list[Column], width: int | None = None) -> str:
    """Ranked lists in columns: rank, then score, id and title (cut to fit) per list."""
    if width is None:
        width = shutil.get_terminal_size((120, 24)).columns
    n_rows = max((len(c.rows) for c in columns), default=0)
    gap = 3
    col = max(30, (width - 5 - gap * (len(columns) - 1)) // max(1, len(columns)))

    def cell(text: str) -> str:
        return text[:col - 1] + "…" if len(text) > col else text.ljust(col)

    lines = [" " * 5 + (" " * gap).join(cell(c.heading) for c in columns).rstrip()]
    for r in range(n_rows):
        cells = []
        for c in columns:
            if r < len(c.rows):
                score, doc_id, title = c.rows[r]
                cells.append(cell(f"{score:8.4f}  {doc_id}  {title}"))
            else:
                cells.append(cell(""))
        lines.append(f"{r + 1:>3}  " + (" " * gap).join(cells).rstrip())
    return "\n".join(lines)


def learned_index_dir(out: Path) -> Path:
    """Where the quickstart puts the learned index: beside the BM25 one."""
    return out.with_name(f"{out.name}-{LEARNED_MODEL}")


def build_learned(corpus: Path, out: Path, encode: bool, progress: bool = False) -> tuple[Any, str]:
    """The learned index of ``corpus`` at ``out`` and how its document vectors were made.

    ``encode``: run the model on the documents (torch); otherwise use the
    shipped vectors, which exist for the bundled sample only.
    """
    from sparsearch.corpus import count_lines, read_corpus
    from sparsearch.retriever.retriever import Retriever
    from sparsearch.retriever.resolve import resolve_model

    model = resolve_model(LEARNED_MODEL)  # ModelNotFoundError (one line) when not installed
    if encode:
        from sparsearch.retriever.registry import build_encoder

        encoder: Any = build_encoder("inference-free", model=model)
        how = "documents encoded by the model now"
    else:
        encoder = shipped_vector_encoder(model.path, read_vectors(SAMPLE_VECTORS))
        how = "document vectors computed by the model, shipped with the sample"
    index = Retriever.build(read_corpus(corpus), path=out, encoder=encoder, overwrite=True, progress=progress,
                        total=count_lines(corpus) if progress else None)
    return index, how


def write_sample_vectors(path: Path = SAMPLE_VECTORS) -> int:
    """Encode the sample corpus with :data:`LEARNED_MODEL` (needs torch) and write its vectors; returns #documents."""
    from sparsearch.corpus import read_corpus
    from sparsearch.retriever.registry import build_encoder
    from sparsearch.retriever.resolve import resolve_model

    model = resolve_model(LEARNED_MODEL)
    encoder: Any = build_encoder("inference-free", {"device": "cpu"}, model=model)
    documents = list(read_corpus(SAMPLE_CORPUS))
    batch = encoder.encode_documents(documents)
    tokenizer = encoder.queries.tokenizer
    lines = []
    for doc, (terms, weights) in zip(documents, batch.rows()):
        order = np.argsort(-weights, kind="stable")
        # The shortest decimal that reads back as the same float32 (NumPy's str of a float32).
        vector = {tokenizer.id_to_token(int(terms[i])): float(str(np.float32(weights[i]))) for i in order}
        lines.append(json.dumps({"id": doc.doc_id, "vector": vector}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


if __name__ == "__main__":
    print(f"wrote {write_sample_vectors()} document vectors to {SAMPLE_VECTORS}")

"""A dense teacher's embeddings for ``sparsearch adapt``, computed ahead of the run that trains.

Why: the GPU machine takes 64 MiB of files per call.  The model being
adapted (45 MB in fp16) and all-MiniLM-L6-v2 (45 MB) do not fit together,
yet the dense teacher is only ever used through inner products of its
query and document embeddings (:class:`~sparsearch.training.scorers.DenseScorer`).
So they can be computed anywhere (a CPU encodes a few thousand short texts
in minutes), saved in float16 and carried instead of the teacher's weights.

The file is tied to the exact pseudo-queries adapt will draw: it records a
SHA-256 fingerprint of the document ids and the query texts, and
:func:`load_teacher_scorer` refuses a file whose fingerprint differs (another
corpus, seed or pseudo-query setting) rather than teach with mismatched
scores.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from sparsearch.errors import InputError
from sparsearch.types import Document

#: Format tag stored in every file, checked on load.
FORMAT = "sparsearch-adapt-teacher-embeddings-1"


def fingerprint(documents: Sequence[Document], queries: Sequence[str]) -> str:
    """SHA-256 over the document ids and the pseudo-query texts, in order."""
    h = hashlib.sha256()
    for doc in documents:
        h.update(doc.doc_id.encode("utf-8") + b"\x00")
    h.update(b"\x01")
    for query in queries:
        h.update(query.encode("utf-8") + b"\x00")
    return h.hexdigest()


def save_teacher_embeddings(out: str | Path, teacher: str, documents: Sequence[Document], queries: Sequence[str],
                            device: str = "auto") -> Path:
    """Embed ``documents`` and ``queries`` with the dense ``teacher`` and write them to ``out`` (.npz), atomically."""
    from sparsearch.retriever.resolve import resolve_model
    from sparsearch.training.teachers import dense_embeddings

    out = Path(out)
    if out.suffix != ".npz":
        raise InputError(f"{out}: the embeddings file must end in .npz")
    folder = resolve_model(teacher).path
    docs = dense_embeddings(folder, [d.contents for d in documents], device).numpy().astype(np.float16)
    qs = dense_embeddings(folder, list(queries), device).numpy().astype(np.float16)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, format=np.array(FORMAT), fingerprint=np.array(fingerprint(documents, queries)),
             teacher=np.array(str(teacher)), documents=docs, queries=qs)
    os.replace(tmp, out)
    return out


def load_teacher_scorer(path: str | Path, documents: Sequence[Document], queries: Sequence[str],
                        device: str = "auto"):  # type: ignore[no-untyped-def]
    """The saved embeddings as the ``dense`` teacher of these documents and pseudo-queries (checked to match)."""
    from sparsearch.training.device import resolve_device
    from sparsearch.training.scorers import DenseScorer

    device = resolve_device(device)
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable embeddings file ({error})") from None
    if str(arrays.get("format", "")) != FORMAT:
        raise InputError(f"{path}: not a sparsearch adapt embeddings file (format {FORMAT!r} expected)")
    docs, qs = arrays["documents"], arrays["queries"]
    if docs.shape[0] != len(documents) or qs.shape[0] != len(queries):
        raise InputError(f"{path}: holds {docs.shape[0]} documents and {qs.shape[0]} pseudo-queries, this run has "
                         f"{len(documents)} and {len(queries)}: made for another corpus or --max-queries")
    if str(arrays["fingerprint"]) != fingerprint(documents, queries):
        raise InputError(f"{path}: made for other documents or pseudo-queries (corpus, --seed or --max-queries "
                         f"differ from the run that saved it)", field="fingerprint")
    return DenseScorer("dense", qs.astype(np.float32), docs.astype(np.float32), device)

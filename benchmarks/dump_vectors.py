"""Encode documents once on a GPU and bring their vectors back compact, for experiments on a CPU.

The device returns at most 8 files of 16 MiB, so every set's rows go into one
stream cut into parts of at most ``--max-entries`` postings, each an ``.npz``
with the rows' set name, document id, offsets, WordPiece ids (uint16) and
weights (float16: relative error ≤ 0.05 %, below what a ranking notices).

    python benchmarks/dump_vectors.py --model models/inference-free-general --gen GEN-DATA \
        --data DATA --out OUT

``--gen`` adds the training text's dev sample (the one checkpoints are chosen
on, :func:`general_model._dev_sample`); ``--data`` adds the four shared sets'
corpora (test queries and judgements are not read here).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from general_model import SETS, _dev_sample  # noqa: E402

log = logging.getLogger("dump_vectors")


def read_vectors(paths: list[Path]) -> dict[str, tuple[list[str], "object"]]:
    """The parts written by :func:`main`, joined: ``{set: (doc ids, float32 CSR matrix [docs, 30,522])}``."""
    import scipy.sparse as sp

    rows: dict[str, list] = {}
    for path in sorted(paths):
        with np.load(path) as part:
            offsets, terms, weights = part["offsets"], part["term_ids"], part["weights"]
            for i, (name, doc_id) in enumerate(zip(part["sets"], part["doc_ids"])):
                lo, hi = offsets[i], offsets[i + 1]
                rows.setdefault(str(name), []).append((str(doc_id), terms[lo:hi], weights[lo:hi]))
    out = {}
    for name, items in rows.items():
        offsets = np.zeros(len(items) + 1, np.int64)
        np.cumsum([len(t) for _, t, _ in items], out=offsets[1:])
        terms = np.concatenate([t for _, t, _ in items]).astype(np.int32)
        weights = np.concatenate([w for _, _, w in items]).astype(np.float32)
        out[name] = ([d for d, _, _ in items], sp.csr_matrix((weights, terms, offsets), shape=(len(items), 30522)))
    return out


def main() -> None:
    from sparsearch.eval.datasets import load_beir
    from sparsearch.retriever.registry import build_encoder
    from sparsearch.types import Document

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--gen", type=Path, help="the training text (general_data.py): its dev sample is encoded")
    parser.add_argument("--data", type=Path, help="SPARSEARCH_DATA layout: the four shared sets' corpora")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-entries", type=int, default=3_200_000)
    parser.add_argument("--limit", type=int, help="the first N documents of each set only (a smoke test)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    sets: list[tuple[str, list[Document]]] = []
    if args.gen:
        dev = _dev_sample(args.gen, 8000)
        sets.append(("dev", [Document(i, t) for i, t in zip(dev.doc_ids, dev.texts)]))
    if args.data:
        for name, rel in SETS.items():
            sets.append((name, list(load_beir(args.data / rel, "test").corpus())))
    if args.limit:
        sets = [(name, docs[: args.limit]) for name, docs in sets]
    encoder = build_encoder("inference-free", {"model_dir": str(args.model), "batch_size": 128})
    names, ids, offsets, terms, weights = [], [], [0], [], []
    for name, docs in sets:
        t = time.perf_counter()
        batch = encoder.encode_documents(docs)
        log.info("%s: %d documents in %.1f s, %.1f non-zeros each", name, len(docs), time.perf_counter() - t,
                 len(batch.term_ids) / max(1, len(docs)))
        for i, doc in enumerate(docs):
            lo, hi = int(batch.offsets[i]), int(batch.offsets[i + 1])
            names.append(name)
            ids.append(doc.doc_id)
            terms.append(batch.term_ids[lo:hi].astype(np.uint16))
            weights.append(batch.weights[lo:hi].astype(np.float16))
            offsets.append(offsets[-1] + hi - lo)
    args.out.mkdir(parents=True, exist_ok=True)
    start, part = 0, 0
    while start < len(ids):
        stop = start + 1
        while stop < len(ids) and offsets[stop + 1] - offsets[start] <= args.max_entries:
            stop += 1
        base = offsets[start]
        np.savez_compressed(args.out / f"vectors-{part:02d}.npz", sets=np.array(names[start:stop]),
                            doc_ids=np.array(ids[start:stop]),
                            offsets=np.array(offsets[start:stop + 1], np.int64) - base,
                            term_ids=np.concatenate(terms[start:stop]), weights=np.concatenate(weights[start:stop]))
        start, part = stop, part + 1
    log.info("%d parts written", part)


if __name__ == "__main__":
    main()

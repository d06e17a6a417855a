"""Reference computations the learned tests compare against: plain transformers, numpy, no sparsearch code.

``plain_splade`` is the textbook SPLADE: the full ``[batch, tokens, vocab]``
MLM logits, ``log(1 + ReLU)``, padding masked out, max over tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch


def plain_splade(model_dir: str | Path, texts: Sequence[str], max_length: int = 256, batch_size: int = 32,
                 return_pooled: bool = False):  # type: ignore[no-untyped-def]
    """Dense float64 ``[len(texts), vocab]`` SPLADE weights of a ``*ForMaskedLM`` folder, the plain way.

    With ``return_pooled`` also the masked max of the raw logits (how far each term is from the ReLU edge).
    """
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForMaskedLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    weights, pooled = [], []
    with torch.no_grad():
        for lo in range(0, len(texts), batch_size):
            enc = tokenizer(list(texts[lo:lo + batch_size]), padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt")
            logits = model(**enc).logits  # [B, T, V]
            mask = enc["attention_mask"].unsqueeze(-1).bool()
            act = torch.log1p(torch.relu(logits)) * mask
            weights.append(act.amax(dim=1).double().numpy())
            pooled.append(logits.masked_fill(~mask, -np.inf).amax(dim=1).double().numpy())
    w = np.concatenate(weights)
    return (w, np.concatenate(pooled)) if return_pooled else w


def idf_query_vector(tokenizer_dir: str | Path, query: str, idf: dict[str, float], vocab_size: int) -> np.ndarray:
    """Dense query vector of an inference-free model: idf of each distinct non-special token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    special = set(tokenizer.all_special_ids)
    v = np.zeros(vocab_size)
    for i in set(tokenizer(query, add_special_tokens=False)["input_ids"]) - special:
        v[i] = idf.get(tokenizer.convert_ids_to_tokens(i), 0.0)
    return v


def assert_same_top_k(hits, doc_ids: Sequence[str], scores: np.ndarray, k: int, rtol: float = 1e-5,  # type: ignore[no-untyped-def]
                      atol: float = 1e-4) -> None:
    """``hits`` are the top ``k`` of brute-force ``scores`` (documents scoring 0 never match), ties aside."""
    scores = np.asarray(scores, np.float64)
    order = np.argsort(-scores, kind="stable")
    n_matching = int((scores > 0).sum())
    expected = scores[order[:min(k, n_matching)]]
    assert len(hits) == len(expected), (len(hits), len(expected))
    got_scores = np.asarray(hits.scores, np.float64)
    np.testing.assert_allclose(got_scores, expected, rtol=rtol, atol=atol)
    column = {d: i for i, d in enumerate(doc_ids)}
    brute_of_hits = np.array([scores[column[d]] for d in hits.ids])
    np.testing.assert_allclose(got_scores, brute_of_hits, rtol=rtol, atol=atol)  # each id carries its own score
    assert len(set(hits.ids)) == len(hits.ids)
    if len(expected):
        kth = expected[-1]
        tol = atol + rtol * abs(kth)
        must = {doc_ids[i] for i in order[:len(expected)] if scores[i] > kth + tol}
        assert must <= set(hits.ids)  # all but boundary ties are found
        assert all(s >= kth - tol for s in brute_of_hits)

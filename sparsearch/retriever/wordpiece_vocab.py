"""A tokenizer's vocabulary as a list indexed by token id (what an export names each term by)."""

from __future__ import annotations

from typing import Any


def tokens_by_id(tokenizer: Any) -> list[str]:
    """``tokenizer.get_vocab()`` (token -> id) inverted into a list; ids with no token give ``""``."""
    vocab = tokenizer.get_vocab()
    out = [""] * (max(vocab.values()) + 1 if vocab else 0)
    for token, i in vocab.items():
        out[i] = token
    return out

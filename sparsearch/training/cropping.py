"""Independent random cropping (Contriever; Izacard et al. 2021): training pairs from unlabeled text."""

from __future__ import annotations

import random


def random_crop(words: list[str], rng: random.Random, min_ratio: float, max_ratio: float,
                delete: float = 0.0) -> str:
    """A contiguous span of ``min_ratio``–``max_ratio`` of ``words``, each word then dropped with prob ``delete``."""
    if not words:
        return ""
    ratio = rng.uniform(min_ratio, max_ratio)
    length = max(1, round(len(words) * ratio))
    start = rng.randint(0, len(words) - length)
    span = words[start:start + length]
    kept = [w for w in span if rng.random() >= delete] if delete > 0 else span
    return " ".join(kept or span[:1])


def crop_pair(text: str, rng: random.Random, min_ratio: float = 0.05, max_ratio: float = 0.5,
              delete: float = 0.1) -> tuple[str, str]:
    """Two crops drawn independently (they may overlap or not): a positive pair for InfoNCE."""
    words = text.split()
    return (random_crop(words, rng, min_ratio, max_ratio, delete),
            random_crop(words, rng, min_ratio, max_ratio, delete))

"""The corpus ``sparsearch quickstart`` indexes when no download is at hand.

SciFact (from ``$SPARSEARCH_DATA`` or a ``shared/data`` folder beside the
checkout) when present, else a tiny corpus shipped in the package.
"""

from __future__ import annotations

import os
from pathlib import Path

SAMPLE_CORPUS = Path(__file__).parent / "data" / "sample_corpus.jsonl"


def default_corpus() -> tuple[Path, str]:
    candidates = []
    if os.environ.get("SPARSEARCH_DATA"):
        candidates.append(Path(os.environ["SPARSEARCH_DATA"]) / "beir" / "scifact")
    candidates.append(Path.cwd().parent / "shared" / "data" / "beir" / "scifact")
    for c in candidates:
        if (c / "corpus.jsonl").exists():
            return c, "microRNA regulation of cancer cell growth"
    return SAMPLE_CORPUS, "how are documents ranked with term frequency"

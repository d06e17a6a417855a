"""TREC run files (``qid Q0 docid rank score tag``), readable by trec_eval and every IR tool."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from sparsearch.errors import InputError
from sparsearch.types import Hits


def write_trec(path: str | Path, query_ids: Sequence[str], results: Sequence[Hits], tag: str = "sparsearch") -> None:
    if any(c.isspace() for c in tag) or not tag:
        raise ValueError(f"run tag must be one word, got {tag!r}")
    lines = []
    for qid, hits in zip(query_ids, results):
        for rank, (doc_id, score) in enumerate(zip(hits.ids, hits.scores), start=1):
            lines.append(f"{qid} Q0 {doc_id} {rank} {float(score):.6f} {tag}\n")
    Path(path).write_text("".join(lines), encoding="utf-8")


def read_trec(path: str | Path) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise InputError(f"expected 6 columns, got {len(parts)}", path=path, line=line_no)
            try:
                run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
            except ValueError:
                raise InputError(f"score {parts[4]!r} is not a number", path=path, line=line_no, field="score") from None
    return run

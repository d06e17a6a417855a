"""TREC run files (``qid Q0 docid rank score tag``), readable by trec_eval and every IR tool."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from sparsearch.errors import InputError
from sparsearch.types import Hits


def ranking_run(query_ids: Sequence[str], results: Sequence[Hits]) -> dict[str, dict[str, float]]:
    """A run whose scores encode the engine's rank order (``n - rank``), for evaluation.

    trec_eval (and pytrec_eval) ignore ranks and re-sort by score, breaking
    ties by document id string, so tied documents would be evaluated in an
    order the engine never returned.  Anserini/Pyserini avoid this by nudging
    tied scores apart before writing runs (so their published BEIR numbers
    evaluate Lucene's own order: score, then index order); evaluating our rank
    order is the same convention, and makes our numbers comparable to theirs.
    """
    return {q: {d: float(len(h.ids) - i) for i, d in enumerate(h.ids)} for q, h in zip(query_ids, results)}


def write_trec(path: str | Path, query_ids: Sequence[str], results: Sequence[Hits], tag: str = "sparsearch") -> None:
    if any(c.isspace() for c in tag) or not tag:
        raise ValueError(f"run tag must be one word, got {tag!r}")
    lines = []
    for qid, hits in zip(query_ids, results):
        for rank, (doc_id, score) in enumerate(zip(hits.ids, hits.scores), start=1):
            lines.append(f"{qid} Q0 {doc_id} {rank} {float(score):.6f} {tag}\n")
    Path(path).write_text("".join(lines), encoding="utf-8")


def read_trec(path: str | Path, by_rank: bool = False) -> dict[str, dict[str, float]]:
    """Read a run; ``by_rank=True`` scores each line by its rank column (see :func:`ranking_run`)."""
    run: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise InputError(f"expected 6 columns, got {len(parts)}", path=path, line=line_no)
            column, field = (3, "rank") if by_rank else (4, "score")
            try:
                value = float(parts[column])
            except ValueError:
                raise InputError(f"{field} {parts[column]!r} is not a number", path=path, line=line_no,
                                 field=field) from None
            run.setdefault(parts[0], {})[parts[2]] = -value if by_rank else value
    return run

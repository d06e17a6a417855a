"""TREC run files (``qid Q0 docid rank score tag``), readable by trec_eval and every IR tool.

The format's columns are separated by whitespace, and every reader (trec_eval,
pytrec_eval's tools, Pyserini, :func:`read_trec`) splits on any run of it, so
a query or document id holding whitespace (a space, tab, newline, or a
Unicode space such as U+00A0), or an empty id, cannot be written without
shifting every later column.  :func:`write_trec` refuses such ids with an
:class:`~sparsearch.errors.InputError` naming the query and the id, before
writing anything, rather than leave a file that evaluates wrongly.  Evaluate
such collections in Python (:func:`sparsearch.eval.metrics.evaluate` on
:func:`ranking_run`), which holds ids of any kind; ``sparsearch eval``
without ``--run`` does exactly that.
"""

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


def trec_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a column of a TREC file (empty, or holds whitespace), else ``None``."""
    if not value:
        return "is empty"
    for c in value:
        if c.isspace():
            return f"contains whitespace ({c!r})"
    return None


def write_trec(path: str | Path, query_ids: Sequence[str], results: Sequence[Hits], tag: str = "sparsearch") -> None:
    """Write a run, one line per hit; ids a TREC file cannot hold are refused before anything is written.

    Raises :class:`InputError` naming the query (and document) whose id is
    empty or holds whitespace: written as is, it would silently shift the
    columns and every tool would evaluate the wrong ids.
    """
    if any(c.isspace() for c in tag) or not tag:
        raise ValueError(f"run tag must be one word, got {tag!r}")
    lines = []
    for qid, hits in zip(query_ids, results):
        problem = trec_id_problem(qid)
        if problem is not None and len(hits.ids):
            raise InputError(f"query id {qid!r} {problem}: a TREC run file (whitespace-separated columns) "
                             "cannot hold it; evaluate without a run file or rename the query", path=path)
        for rank, (doc_id, score) in enumerate(zip(hits.ids, hits.scores), start=1):
            problem = trec_id_problem(doc_id)
            if problem is not None:
                raise InputError(f"query {qid!r}: document id {doc_id!r} {problem}: a TREC run file "
                                 "(whitespace-separated columns) cannot hold it; evaluate without a run file "
                                 "or use ids without whitespace", path=path)
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
                raise InputError(f"expected 6 whitespace-separated columns (query-id Q0 doc-id rank score tag), "
                                 f"got {len(parts)}; a TREC run cannot hold ids with whitespace", path=path,
                                 line=line_no)
            column, field = (3, "rank") if by_rank else (4, "score")
            try:
                value = float(parts[column])
            except ValueError:
                raise InputError(f"{field} {parts[column]!r} is not a number", path=path, line=line_no,
                                 field=field) from None
            run.setdefault(parts[0], {})[parts[2]] = -value if by_rank else value
    return run

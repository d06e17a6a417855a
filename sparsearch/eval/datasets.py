"""BEIR datasets in their standard layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

A split's queries are the query ids of its qrels file (BEIR keeps every
split's queries in one file).  Qrels rows are parsed with ``str.split`` so the
CRLF line ends BEIR ships are handled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sparsearch.corpus import corpus_path, iter_json_lines, parse_id, read_corpus
from sparsearch.errors import InputError
from sparsearch.types import Document

DATA_ENV = "SPARSEARCH_DATA"


def data_root(explicit: str | Path | None = None) -> Path:
    """The shared data folder: an explicit path, else ``$SPARSEARCH_DATA``."""
    root = explicit or os.environ.get(DATA_ENV)
    if not root:
        raise InputError(f"no data folder given: pass a path or set {DATA_ENV}")
    return Path(root)


@dataclass
class BeirDataset:
    root: Path
    split: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def corpus_file(self) -> Path:
        return corpus_path(self.root)

    def corpus(self) -> Iterator[Document]:
        return read_corpus(self.root)


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.exists():
        raise InputError("no such qrels file", path=path)
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if line_no == 1 and parts[0] == "query-id":
                continue
            if len(parts) == 4:  # TREC qrels: qid iter docid rel
                parts = [parts[0], parts[2], parts[3]]
            if len(parts) != 3:
                raise InputError(f"expected 3 tab-separated columns, got {len(parts)}", path=path, line=line_no)
            qid, did, score = parts
            try:
                qrels.setdefault(qid, {})[did] = int(score)
            except ValueError:
                raise InputError(f"relevance {score!r} is not an integer", path=path, line=line_no, field="score") from None
    return qrels


def read_queries(path: Path, keep: set[str] | None = None) -> dict[str, str]:
    if not path.exists():
        raise InputError("no such queries file", path=path)
    queries: dict[str, str] = {}
    for line_no, obj in iter_json_lines(path):
        qid = parse_id(obj, path, line_no)
        if keep is not None and qid not in keep:
            continue
        text = obj.get("text")
        if not isinstance(text, str):
            raise InputError("missing or not a string", path=path, line=line_no, field="text")
        queries[qid] = text
    return queries


def load_beir(root: str | Path, split: str = "test") -> BeirDataset:
    """Queries and qrels of one split; the corpus is streamed on demand."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("not a dataset folder", path=root)
    qrels = read_qrels(root / "qrels" / f"{split}.tsv")
    queries = read_queries(root / "queries.jsonl", keep=set(qrels))
    missing = set(qrels) - set(queries)
    if missing:
        raise InputError(f"{len(missing)} judged queries are missing from queries.jsonl (e.g. {sorted(missing)[0]!r})",
                         path=root / "queries.jsonl")
    return BeirDataset(root=root, split=split, queries=queries, qrels=qrels)

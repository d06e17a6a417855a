"""BEIR datasets in their standard layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

A split's queries are the query ids of its qrels file (BEIR keeps every
split's queries in one file).

Qrels come in two layouts, told apart by the header:

* BEIR (``query-id<TAB>corpus-id<TAB>score`` header): split on tabs only, so
  ids may hold spaces (collections whose ids are names, ``Ada Lovelace``).
  Only the line end is stripped, CRLF included (BEIR ships CRLF files).
* TREC (no header, ``query-id iteration doc-id relevance``): four columns
  split on any whitespace; ids cannot hold spaces in this layout.

A headerless file of three tab-separated columns is read as BEIR.  A line
that does not fit its file's layout is an :class:`~sparsearch.errors.InputError`
naming the file and line: guessing (the old ``str.split`` parser read a
BEIR line whose corpus id had one space as a TREC line, taking the wrong
column for the id) made every query score 0 without a word.
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


BEIR_QRELS_HEADER = ("query-id", "corpus-id", "score")
_BEIR_EXPECTED = "3 tab-separated columns (query-id, corpus-id, score)"
_TREC_EXPECTED = "4 whitespace-separated TREC columns (query-id, iteration, doc-id, relevance)"


def _qrels_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` with only the line end (LF or CRLF) removed; bad UTF-8 names its line.

    Read as bytes and split on LF alone so that nothing inside a line (a
    lone CR, a Unicode line separator) starts a new one, as text mode would.
    """
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if raw.endswith(b"\n"):
                raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"not valid UTF-8 (byte offset {e.start} in the line)", path=path,
                                 line=line_no) from None
            if line_no == 1 and text.startswith("\ufeff"):  # a byte-order mark some editors write
                text = text[1:]
            yield line_no, text


def _is_beir_header(text: str) -> bool:
    return tuple(c.strip() for c in text.split("\t")) == BEIR_QRELS_HEADER or text.split()[:1] == ["query-id"]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``{query_id: {doc_id: relevance}}`` from a BEIR ``.tsv`` or a TREC qrels file.

    The layout is fixed by the file's first non-blank line (the BEIR header,
    else three tab-separated columns, else four whitespace columns) and every
    line must then fit it, so ids with spaces are never split mid-id.  A
    repeated (query, document) pair keeps its last relevance.
    """
    if not path.exists():
        raise InputError("no such qrels file", path=path)
    qrels: dict[str, dict[str, int]] = {}
    layout: str | None = None  # "beir" or "trec", fixed by the first non-blank line
    for line_no, text in _qrels_lines(path):
        if not text.strip():
            continue
        if layout is None:
            if _is_beir_header(text):
                layout = "beir"
                continue
            layout = "beir" if len(text.split("\t")) == 3 else "trec"
        if layout == "beir":
            parts = text.split("\t")
            if len(parts) != 3:
                raise InputError(f"expected {_BEIR_EXPECTED}, got {len(parts)} column(s): {text!r}", path=path,
                                 line=line_no)
            qid, did, score = parts
        else:
            parts = text.split()
            if len(parts) != 4:
                raise InputError(f"expected {_TREC_EXPECTED} (or a BEIR file with the header "
                                 f"'query-id<TAB>corpus-id<TAB>score' and {_BEIR_EXPECTED}), "
                                 f"got {len(parts)} column(s): {text!r}", path=path, line=line_no)
            qid, _, did, score = parts
        for name, value in (("query-id", qid), ("corpus-id", did)):
            if not value:
                raise InputError("empty id", path=path, line=line_no, field=name)
        try:
            relevance = int(score)
        except ValueError:
            raise InputError(f"relevance {score!r} is not an integer", path=path, line=line_no,
                             field="score") from None
        qrels.setdefault(qid, {})[did] = relevance
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

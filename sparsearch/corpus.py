"""Reading corpora (BEIR ``corpus.jsonl``) with errors that point at the line.

Streams: a 10-million-line corpus is never held in memory as JSON.  Every
problem is reported as one :class:`~sparsearch.errors.InputError` naming the
file, the line and (where it applies) the field, never as a traceback from
inside ``json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from sparsearch.errors import DuplicateIdError, InputError
from sparsearch.types import Document


def corpus_path(path: str | Path) -> Path:
    """``corpus.jsonl`` itself, or the one inside a BEIR dataset folder."""
    p = Path(path)
    if p.is_dir():
        p = p / "corpus.jsonl"
    if not p.exists():
        raise InputError("no such corpus file", path=p)
    return p


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line_number, object)`` for every non-blank line (``.gz`` read through gzip); bad bytes or JSON name their line."""
    import gzip

    with (gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")) as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"not valid UTF-8 (byte offset {e.start} in the line)", path=path, line=line_no) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"malformed JSON ({e.msg} at column {e.colno})", path=path, line=line_no) from None
            if not isinstance(obj, dict):
                raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=line_no)
            yield line_no, obj


def parse_id(obj: dict[str, Any], path: Path, line_no: int) -> str:
    if "_id" not in obj:
        raise InputError("missing", path=path, line=line_no, field="_id")
    doc_id = obj["_id"]
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id:
        raise InputError(f"must be a non-empty string, got {json.dumps(doc_id)}", path=path, line=line_no, field="_id")
    return doc_id


def _string_field(obj: dict[str, Any], name: str, path: Path, line_no: int, required: bool) -> str:
    if name not in obj:
        if required:
            raise InputError("missing", path=path, line=line_no, field=name)
        return ""
    value = obj[name]
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {type(value).__name__}", path=path, line=line_no, field=name)
    return value


def read_corpus(path: str | Path) -> Iterator[Document]:
    """Documents of a BEIR corpus in file order.

    ``title`` may be absent (empty); ``text`` must be present but may be
    empty, which gives a document with no terms.  A repeated ``_id`` is an
    error naming both lines: silently keeping one copy would make qrels
    ambiguous.
    """
    p = corpus_path(path)
    first_line: dict[str, int] = {}
    for line_no, obj in iter_json_lines(p):
        doc_id = parse_id(obj, p, line_no)
        if doc_id in first_line:
            raise DuplicateIdError(
                f"duplicate _id {doc_id!r} (first seen on line {first_line[doc_id]})", path=p, line=line_no, field="_id"
            )
        first_line[doc_id] = line_no
        title = _string_field(obj, "title", p, line_no, required=False)
        text = _string_field(obj, "text", p, line_no, required=True)
        metadata = obj.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InputError("must be an object", path=p, line=line_no, field="metadata")
        yield Document(doc_id, title, text, metadata)


def count_lines(path: str | Path) -> int:
    """Fast line count, for progress bars."""
    n = 0
    with open(corpus_path(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
    return n

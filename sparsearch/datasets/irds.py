"""``irds:ID``: any ir_datasets collection with judgments, written once into the cache in BEIR layout.

``pip install 'sparsearch[irds]'`` installs ``ir_datasets``; it downloads
(and checksums) the source files itself, into its own cache
(``$IR_DATASETS_HOME``, ``~/.ir_datasets``), on first use, so the first
export needs the network.  The export goes to
``CACHE/irds/ID_WITH_SLASHES_AS___/`` (``corpus.jsonl``, ``queries.jsonl``,
``qrels/test.tsv``) through a temporary folder renamed into place, so an
interrupted export leaves nothing that looks complete.

An ir_datasets id names one query set and its judgments
(``beir/scifact/test``, ``beir/scifact/train``, ``msmarco-passage/dev/small``),
so the export has one split, written as ``test``: choose the split in the id.
Document text: the ``title`` field (if any) and ``text`` (or ``body``, else
ir_datasets' ``default_text()``); query text: ``default_text()`` (else
``text``, else ``title``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from sparsearch.datasets.registry import DatasetError
from sparsearch.errors import MissingDependencyError

PREFIX = "irds:"
SPLIT = "test"
MARKER = ".sparsearch-dataset.json"


def is_irds(name: str) -> bool:
    return name.startswith(PREFIX)


def irds_folder(dataset_id: str, root: Path) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", dataset_id.replace("/", "__"))
    return root / "irds" / safe


def _import() -> Any:
    try:
        import ir_datasets
    except ImportError:
        raise MissingDependencyError("irds: ids need the ir_datasets package: pip install 'sparsearch[irds]'") \
            from None
    return ir_datasets


def _text(record: Any, fields: tuple[str, ...], fallback_default: bool) -> str:
    for name in fields:
        value = getattr(record, name, None)
        if isinstance(value, str):
            return value
    default = getattr(record, "default_text", None)
    if fallback_default and callable(default):
        return str(default())
    parts = [v for k, v in zip(getattr(record, "_fields", ()), record) if isinstance(v, str) and not k.endswith("_id")]
    return " ".join(parts)


def _query_text(query: Any) -> str:
    default = getattr(query, "default_text", None)
    if callable(default):
        return str(default())
    return _text(query, ("text", "title"), fallback_default=False)


def _check_id(value: Any, what: str, dataset_id: str) -> str:
    value = str(value)
    if not value or any(c in value for c in "\t\r\n"):
        raise DatasetError(f"irds:{dataset_id}: {what} {value!r} is empty or holds a tab or line break, "
                           "which a BEIR qrels file cannot hold")
    return value


def export(dataset_id: str, target: Path, log: Callable[[str], None]) -> None:
    """Write ir_datasets' ``dataset_id`` to ``target`` in BEIR layout (atomically)."""
    ir_datasets = _import()
    try:
        ds = ir_datasets.load(dataset_id)
    except KeyError:
        raise DatasetError(f"irds:{dataset_id}: ir_datasets has no dataset with this id "
                           "(ids are listed at https://ir-datasets.com)") from None
    for part, what in (("docs", "documents"), ("queries", "queries"), ("qrels", "judgments (qrels)")):
        has = getattr(ds, f"has_{part}", None)
        if callable(has) and not has():
            raise DatasetError(f"irds:{dataset_id} has no {what}: name a set with documents, queries and "
                               "judgments, e.g. irds:beir/scifact/test")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        log(f"exporting irds:{dataset_id} through ir_datasets (it downloads its sources on first use)")
        qids: set[str] = set()
        (tmp / "qrels").mkdir()
        n_qrels = 0
        with open(tmp / "qrels" / f"{SPLIT}.tsv", "w", encoding="utf-8", newline="\n") as out:
            out.write("query-id\tcorpus-id\tscore\n")
            for q in ds.qrels_iter():
                qid = _check_id(q.query_id, "query id", dataset_id)
                did = _check_id(q.doc_id, "document id", dataset_id)
                out.write(f"{qid}\t{did}\t{int(q.relevance)}\n")
                qids.add(qid)
                n_qrels += 1
        n_queries = 0
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as out:
            for q in ds.queries_iter():
                out.write(json.dumps({"_id": str(q.query_id), "text": _query_text(q)}) + "\n")
                n_queries += 1
        n_docs = 0
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as out:
            for d in ds.docs_iter():
                title = getattr(d, "title", "")
                out.write(json.dumps({"_id": str(d.doc_id), "title": title if isinstance(title, str) else "",
                                      "text": _text(d, ("text", "body"), fallback_default=True)}) + "\n")
                n_docs += 1
        marker = {"name": f"{PREFIX}{dataset_id}", "source": "ir_datasets",
                  "ir_datasets_version": getattr(ir_datasets, "__version__", None), "documents": n_docs,
                  "queries": n_queries, "qrels": n_qrels, "split": SPLIT,
                  "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        if target.exists():  # force: the old export goes only once the new one is complete
            shutil.rmtree(target)
        os.replace(tmp, target)
    except DatasetError:
        raise
    except Exception as e:  # ir_datasets' own download and parse errors (requests' are OSErrors), a full disk
        detail = " ".join(str(e).split())
        detail = detail if len(detail) <= 240 else detail[:240] + "..."
        raise DatasetError(f"irds:{dataset_id}: export failed ({type(e).__name__}: {detail}); ir_datasets needs "
                           "the network the first time it reads a dataset") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"irds:{dataset_id}: {n_docs} documents, {n_queries} queries, {n_qrels} judgments in {target}")


def get_irds(name: str, root: Path, *, force: bool = False, log: Callable[[str], None] = lambda m: None) -> Path:
    """The cached BEIR-layout folder of ``irds:ID``, exported first if missing."""
    dataset_id = name[len(PREFIX):] if is_irds(name) else name
    if not dataset_id:
        raise DatasetError("irds: needs an ir_datasets id after it, e.g. irds:beir/scifact/test")
    target = irds_folder(dataset_id, root)
    if target.is_dir() and not force:
        return target
    _import()  # the missing-package error before anything is written
    from sparsearch.datasets.download import _locked, _remove_stale

    with _locked(root / "downloads" / f"irds-{target.name}.lock", log):
        if target.is_dir() and not force:
            return target
        _remove_stale(target.parent, target.name)
        export(dataset_id, target, log)
    return target

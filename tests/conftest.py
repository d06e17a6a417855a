"""Shared fixtures: where the real data lives, and small slices of it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def find_data_root() -> Path:
    candidates = [os.environ.get("SPARSEARCH_DATA"), REPO.parent / "shared" / "data"]
    for c in candidates:
        if c and (Path(c) / "beir" / "scifact" / "corpus.jsonl").exists():
            return Path(c)
    raise RuntimeError("real data not found: set SPARSEARCH_DATA to the shared data folder (see README)")


@pytest.fixture(scope="session")
def data_root() -> Path:
    return find_data_root()


def write_slice(src: Path, dst: Path, n_docs: int, split: str = "test") -> Path:
    """First ``n_docs`` documents of a BEIR dataset, with the queries and qrels that touch them."""
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "qrels").mkdir(exist_ok=True)
    ids = set()
    with open(src / "corpus.jsonl", encoding="utf-8") as f, open(dst / "corpus.jsonl", "w", encoding="utf-8") as out:
        for i, line in enumerate(f):
            if i >= n_docs:
                break
            ids.add(json.loads(line)["_id"])
            out.write(line)
    qids = set()
    with open(src / "qrels" / f"{split}.tsv", encoding="utf-8") as f, \
            open(dst / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        next(f)
        for line in f:
            q, d, s = line.split()
            if d in ids:
                qids.add(q)
                out.write(f"{q}\t{d}\t{s}\n")
    with open(src / "queries.jsonl", encoding="utf-8") as f, open(dst / "queries.jsonl", "w", encoding="utf-8") as out:
        for line in f:
            if json.loads(line)["_id"] in qids:
                out.write(line)
    return dst


@pytest.fixture(scope="session")
def scifact_slice(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_slice(data_root / "beir" / "scifact", tmp_path_factory.mktemp("scifact") / "scifact", 1500)


@pytest.fixture(scope="session")
def scifact_queries(data_root: Path) -> list[str]:
    with open(data_root / "beir" / "scifact" / "queries.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]

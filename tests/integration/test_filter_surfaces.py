"""One filter language everywhere: the live index, the CLI (``--filter JSON``) and HTTP (``SearchIn.filter``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from filter_reference import matches  # tests/fixtures: the filter language in plain Python
from typer.testing import CliRunner

from sparsearch import BM25Encoder, Document, Index
from sparsearch.cli import app
from sparsearch.filters import FilterError
from sparsearch.index.config import IndexConfig
from sparsearch.index.merge import MergePolicy
from sparsearch.index.writer import LiveSettings
from sparsearch.retriever.retriever import Retriever

DOCS = [Document(f"d{i}", f"title {i}", f"coffee tea {'milk ' * (i % 3)}sugar{i % 4}",
                 {"lang": ["en", "fr"][i % 2], "year": 2000 + i, "tags": [f"t{i % 3}"], "oa": i % 4 == 0})
        for i in range(24)]
FILTERS = [{"field": "lang", "eq": "fr"}, {"field": "year", "gte": 2005, "lt": 2015},
           {"and": [{"field": "tags", "in": ["t1", "t2"]}, {"not": {"field": "oa", "eq": True}}]},
           {"or": [{"field": "year", "lte": 2002}, {"field": "lang", "eq": "en"}]}, {"lang": "en"},
           {"field": "lang", "eq": "de"}]


def reference(docs: list[Document], flt: dict, query: str, k: int) -> list[tuple[str, float]]:
    """A fresh build of ``docs``, ranked in full, post-filtered in Python."""
    fresh = Index.build(docs, encoder=BM25Encoder(), config=IndexConfig(stored_fields=("title", "metadata")))
    full = fresh.search(query, k=len(docs))
    meta = {d.doc_id: d.metadata for d in docs}
    return [(i, s) for i, s in zip(full.ids, full.scores.tolist()) if matches(meta[i], flt)][:k]


def test_live_index_filters_buffer_and_segments(tmp_path: Path) -> None:
    settings = LiveSettings(flush_docs=8, flush_seconds=3600, merge=MergePolicy(merge_factor=3))
    live = Retriever.create_live(tmp_path / "c", BM25Encoder(), settings=settings)
    for i in range(0, 24, 5):
        live.upsert(DOCS[i:i + 5])  # flushes now and then: on-disk segments plus buffer parts
    live.delete(["d7"])
    live.upsert([Document("d9", "title 9", "coffee replaced", {"lang": "fr", "year": 1999, "tags": [], "oa": False})])
    docs = [d for d in DOCS if d.doc_id not in ("d7", "d9")] + [
        Document("d9", "title 9", "coffee replaced", {"lang": "fr", "year": 1999, "tags": [], "oa": False})]
    assert live.n_segments > 1
    for flt in FILTERS:
        hits = live.search("coffee milk sugar1", 6, filter=flt)
        want = reference(docs, flt, "coffee milk sugar1", 6)
        assert hits.ids == [w[0] for w in want]
        assert all(abs(h[1] - w[1]) < 1e-5 for h, w in zip(hits, want))
        assert all(set(hits.fields(i, ["metadata"])) <= {"metadata"} for i in range(len(hits)))
    with pytest.raises(FilterError, match="filter field 'year': 'in' takes a list"):
        live.search("coffee", 3, filter={"field": "year", "in": 2001})
    with pytest.raises(FilterError, match="no document in this collection has this field"):
        live.search("coffee", 3, filter={"field": "color", "eq": "red"})
    live.close()


def test_empty_collection_accepts_any_filter(tmp_path: Path) -> None:
    live = Retriever.create_live(tmp_path / "c", BM25Encoder())
    assert len(live.search("coffee", 3, filter={"field": "color", "eq": "red"})) == 0
    live.close()


runner = CliRunner()


def test_cli_filter(tmp_path: Path) -> None:
    Index.build(DOCS, path=tmp_path / "idx", encoder=BM25Encoder(),
                config=IndexConfig(quantization="uint8", stored_fields=("title", "metadata")))
    for flt in FILTERS:
        r = runner.invoke(app, ["search", str(tmp_path / "idx"), "coffee milk sugar1", "-k", "5", "--json",
                                "--filter", json.dumps(flt)])
        assert r.exit_code == 0, r.output
        got = [(h["_id"], h["score"]) for h in json.loads(r.output)["hits"]]
        want = reference(DOCS, flt, "coffee milk sugar1", 5)
        assert [g[0] for g in got] == [w[0] for w in want] and all(
            abs(g[1] - w[1]) < 1e-5 for g, w in zip(got, want))
    for bad, words in [('{"field": "year", "gte": "2000"}', "filter field 'year': 'gte' takes a number"),
                       ('{"field": "lang", "gt": 1}', "filter field 'lang': a range needs numbers"),
                       ('{"field": "lang", "like": "e%"}', "filter field 'lang': unknown operator 'like'"),
                       ('{"field": "color", "eq": "red"}', "filter field 'color': no document in this index"),
                       ("{lang: en}", "filter: filter is not valid JSON")]:
        r = runner.invoke(app, ["search", str(tmp_path / "idx"), "coffee", "--filter", bad])
        assert r.exit_code == 2, r.output
        assert r.output.strip().count("\n") == 0 and words in r.output, r.output

"""Metadata filters over HTTP: ``SearchIn.filter`` takes the filter language; bad filters are a 422 naming the field."""

from __future__ import annotations

from pathlib import Path

from filter_reference import matches  # tests/fixtures: the filter language in plain Python
from service_helpers import AUTH, app_client
from sparsearch import BM25Encoder, Document, Index
from sparsearch.index.config import IndexConfig

DOCS = [Document(f"d{i}", f"title {i}", f"coffee tea {'milk ' * (i % 3)}sugar{i % 4}",
                 {"lang": ["en", "fr"][i % 2], "year": 2000 + i, "tags": [f"t{i % 3}"], "oa": i % 4 == 0})
        for i in range(24)]
FILTERS = [{"field": "lang", "eq": "fr"}, {"field": "year", "gte": 2005, "lt": 2015},
           {"and": [{"field": "tags", "in": ["t1", "t2"]}, {"not": {"field": "oa", "eq": True}}]},
           {"or": [{"field": "year", "lte": 2002}, {"field": "lang", "eq": "en"}]}, {"lang": "en"},
           {"field": "lang", "eq": "de"}]


def reference(flt: dict, query: str, k: int) -> list[str]:
    fresh = Index.build(DOCS, encoder=BM25Encoder(), config=IndexConfig(stored_fields=("title", "metadata")))
    full = fresh.search(query, k=len(DOCS))
    meta = {d.doc_id: d.metadata for d in DOCS}
    return [i for i in full.ids if matches(meta[i], flt)][:k]


def test_http_filter(tmp_path: Path) -> None:
    docs = [{"_id": d.doc_id, "title": d.title, "text": d.text, "metadata": d.metadata} for d in DOCS]
    with app_client(tmp_path) as c:
        assert c.put("/collections/docs", json={}, headers=AUTH).status_code in (200, 201)
        assert c.post("/collections/docs/documents", json={"documents": docs}, headers=AUTH).status_code == 200
        for flt in FILTERS:
            r = c.post("/collections/docs/search", json={"query": "coffee milk sugar1", "k": 5, "filter": flt,
                                                         "fields": ["metadata"]})
            assert r.status_code == 200, r.text
            assert [h["_id"] for h in r.json()["hits"]] == reference(flt, "coffee milk sugar1", 5)
            assert all(matches(h["metadata"], flt) for h in r.json()["hits"])
        # Malformed filters: 422 from validation, the message naming the field.
        r = c.post("/collections/docs/search", json={"query": "coffee", "filter": {"field": "tags", "in": "t1"}})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "filter"]
        assert "filter field 'tags': 'in' takes a list" in r.json()["detail"][0]["msg"]
        r = c.post("/collections/docs/search", json={"query": "coffee", "filter": {"field": "lang", "near": "en"}})
        assert r.status_code == 422 and "unknown operator 'near'" in r.json()["detail"][0]["msg"]
        # Filters that do not fit the collection's data: 422 naming the field.
        r = c.post("/collections/docs/search", json={"query": "coffee", "filter": {"field": "lang", "lt": 3}})
        assert r.status_code == 422 and r.json()["detail"] == (
            "filter field 'lang': a range needs numbers, and this field holds strings")
        r = c.post("/collections/docs/search", json={"query": "coffee", "filter": {"field": "colour", "eq": "red"}})
        assert r.status_code == 422 and "filter field 'colour': no document in this collection" in r.json()["detail"]

"""The HTTP contract, through FastAPI's TestClient: endpoints, auth, limits, persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from sparsearch.index.writer import LiveSettings
from sparsearch.service.app import create_app
from sparsearch.service.settings import ServiceSettings
from sparsearch.service.store import CollectionStore, DataDirLocked

KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
DOCS = [
    {"_id": "d1", "title": "Vitamin D", "text": "vitamin d deficiency and bone health", "metadata": {"lang": "en"}},
    {"_id": "d2", "title": "Coffee", "text": "coffee consumption and heart disease", "metadata": {"lang": "en"}},
    {"_id": "d3", "title": "Café", "text": "le café et la santé du coeur", "metadata": {"lang": "fr"}},
]


def make_client(data_dir: Path, **overrides: object) -> TestClient:
    settings = ServiceSettings(data_dir=data_dir, api_key=KEY, live=LiveSettings(flush_docs=1000), **overrides)
    return TestClient(create_app(settings))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as c:
        assert c.put("/collections/docs", json={"encoder": "bm25"}, headers=AUTH).status_code == 201
        assert c.post("/collections/docs/documents", json={"documents": DOCS}, headers=AUTH).status_code == 200
        yield c


def test_collections_lifecycle(tmp_path: Path) -> None:
    with make_client(tmp_path) as c:
        r = c.put("/collections/news", json={"encoder": "bm25", "params": {"k1": 1.2, "b": 0.75}}, headers=AUTH)
        assert r.status_code == 201 and r.json()["params"] == {"k1": 1.2, "b": 0.75}
        assert c.put("/collections/news", json={"encoder": "bm25", "params": {"k1": 1.2, "b": 0.75}},
                     headers=AUTH).status_code == 200  # idempotent
        assert c.put("/collections/news", json={"encoder": "bm25"}, headers=AUTH).status_code == 409
        assert [x["name"] for x in c.get("/collections").json()["collections"]] == ["news"]
        assert c.get("/collections/news").json()["documents"] == 0
        assert c.delete("/collections/news", headers=AUTH).json() == {"deleted": True}
        assert c.get("/collections/news").status_code == 404
        assert c.get("/healthz").json() == {"status": "ok", "collections": 0, "unavailable": []}


@pytest.mark.parametrize("name", ["..", "UPPER", "a b", "-lead", "x" * 65, "semi;colon"])
def test_unsafe_or_invalid_names_are_refused(tmp_path: Path, name: str) -> None:
    with make_client(tmp_path) as c:
        r = c.put(f"/collections/{name}", json={"encoder": "bm25"}, headers=AUTH)
        assert r.status_code in (404, 422)
        assert not any(p.name != "collections" for p in tmp_path.iterdir() if p.is_dir())
        assert list((tmp_path / "collections").iterdir()) == []


def test_search_get_delete(client: TestClient) -> None:
    r = client.post("/collections/docs/search", json={"query": "vitamin d bone", "k": 2})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert hits[0]["_id"] == "d1" and hits[0]["title"] == "Vitamin D" and hits[0]["score"] > 0
    r = client.post("/collections/docs/search", json={"query": "coffee café", "k": 5, "filter": {"lang": "fr"},
                                                       "fields": ["text", "metadata"]})
    assert [h["_id"] for h in r.json()["hits"]] == ["d3"]
    assert r.json()["hits"][0]["metadata"] == {"lang": "fr"} and "text" in r.json()["hits"][0]
    assert client.get("/collections/docs/documents/d2").json()["title"] == "Coffee"
    assert client.get("/collections/docs/documents/d2").json()["_id"] == "d2"
    assert client.delete("/collections/docs/documents/d2", headers=AUTH).json() == {"deleted": True}
    assert client.get("/collections/docs/documents/d2").status_code == 404
    assert client.delete("/collections/docs/documents/d2", headers=AUTH).status_code == 404
    assert all(h["_id"] != "d2" for h in client.post("/collections/docs/search", json={"query": "coffee"}).json()["hits"])


def test_upsert_replaces(client: TestClient) -> None:
    new = {"_id": "d1", "title": "Replaced", "text": "entirely different words"}
    assert client.post("/collections/docs/documents", json={"documents": [new]}, headers=AUTH).json()["documents"] == 3
    assert client.post("/collections/docs/search", json={"query": "vitamin"}).json()["hits"] == []
    assert client.get("/collections/docs/documents/d1").json()["title"] == "Replaced"


def test_auth(tmp_path: Path) -> None:
    with make_client(tmp_path) as c:
        assert c.put("/collections/a", json={}).status_code == 401
        assert c.put("/collections/a", json={}, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.put("/collections/a", json={}, headers={"Authorization": KEY}).status_code == 401  # no scheme
        assert c.put("/collections/a", json={}, headers=AUTH).status_code == 201
        assert c.post("/collections/a/documents", json={"documents": DOCS}).status_code == 401
        assert c.delete("/collections/a").status_code == 401
        assert c.post("/collections/a/search", json={"query": "x"}).status_code == 200  # reads open by default
    with make_client(tmp_path, require_key_for_reads=True) as c:
        assert c.post("/collections/a/search", json={"query": "x"}).status_code == 401
        assert c.post("/collections/a/search", json={"query": "x"}, headers=AUTH).status_code == 200


def test_limits_name_the_limit(tmp_path: Path) -> None:
    with make_client(tmp_path, max_batch_documents=2, max_query_chars=10, max_k=5, max_body_bytes=2000) as c:
        c.put("/collections/a", json={}, headers=AUTH)
        r = c.post("/collections/a/documents", json={"documents": DOCS}, headers=AUTH)
        assert r.status_code == 413 and "max_batch_documents=2" in r.json()["detail"]
        big = {"documents": [{"_id": "x", "text": "y" * 5000}]}
        r = c.post("/collections/a/documents", json=big, headers=AUTH)
        assert r.status_code == 413 and "max_body_bytes=2000" in r.json()["detail"]
        r = c.post("/collections/a/search", json={"query": "q" * 11})
        assert r.status_code == 422 and "max_query_chars=10" in r.json()["detail"]
        r = c.post("/collections/a/search", json={"query": "q", "k": 6})
        assert r.status_code == 422 and "max_k=5" in r.json()["detail"]
        r = c.post("/collections/a/search", json={"query": "q", "k": 0})
        assert r.status_code == 422
        r = c.post("/collections/a/documents", json={"documents": [{"_id": "", "text": "x"}]}, headers=AUTH)
        assert r.status_code == 422


def test_metrics(client: TestClient) -> None:
    client.post("/collections/docs/search", json={"query": "coffee"})
    text = client.get("/metrics").text
    assert 'sparsearch_requests_total{method="POST",route="/collections/{name}/search",status="200"} 1' in text
    assert 'sparsearch_documents{collection="docs"} 3' in text
    assert "sparsearch_request_seconds_bucket" in text


def test_writes_survive_restart_and_second_process_is_refused(tmp_path: Path) -> None:
    with make_client(tmp_path) as c:
        c.put("/collections/docs", json={}, headers=AUTH)
        c.post("/collections/docs/documents", json={"documents": DOCS}, headers=AUTH)
        c.delete("/collections/docs/documents/d3", headers=AUTH)
        with pytest.raises(DataDirLocked):
            CollectionStore(tmp_path)
    with make_client(tmp_path) as c:
        assert c.get("/collections/docs").json()["documents"] == 2
        assert c.get("/collections/docs/documents/d3").status_code == 404
        assert c.post("/collections/docs/search", json={"query": "coffee"}).json()["hits"][0]["_id"] == "d2"


def test_python_client(tmp_path: Path) -> None:
    from sparsearch.client import ServiceError, SparsearchClient

    with make_client(tmp_path) as http:
        client = SparsearchClient(api_key=KEY, http=http)
        assert client.create_collection("c", k1=1.2, b=0.75)["params"] == {"k1": 1.2, "b": 0.75}
        assert client.upsert("c", DOCS)["documents"] == 3
        hits = client.search("c", "coffee heart", k=2, fields=["title", "metadata"])
        assert hits[0]["_id"] == "d2" and hits[0]["metadata"] == {"lang": "en"}
        assert client.get("c", "d1")["title"] == "Vitamin D" and client.get("c", "zz") is None
        assert client.delete("c", "d1") is True and client.delete("c", "d1") is False
        assert [c["name"] for c in client.collections()] == ["c"] and client.describe("c")["documents"] == 2
        with pytest.raises(ServiceError) as err:
            SparsearchClient(http=http).upsert("c", DOCS)  # no key
        assert err.value.status_code == 401
        with pytest.raises(ServiceError, match="max_k=1000"):
            client.search("c", "x", k=5000)
        client.delete_collection("c")
        assert client.health()["collections"] == 0

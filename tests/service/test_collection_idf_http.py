"""``"idf": "collection"`` over HTTP: inference-free collections weighted by their own texts' IDF.

A tiny model the tests make (tests/learned/conftest.py); scores are compared
with a batch build over the documents that should be alive, which computes
its IDF from scratch over them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from learned.conftest import make_tiny_mlm, slice_corpus  # noqa: E402  (tests/ is on sys.path: its conftest)
from service_helpers import AUTH, app_client  # noqa: E402

from sparsearch import Index  # noqa: E402
from sparsearch.index.writer import LiveSettings  # noqa: E402
from sparsearch.retriever.inference_free import InferenceFreeConfig, InferenceFreeEncoder  # noqa: E402
from sparsearch.types import Document  # noqa: E402

MODEL = "tiny-if"
PARAMS = {"max_length": 64, "batch_size": 8, "idf": "collection"}


@pytest.fixture(scope="module")
def texts(data_root: Path) -> list[dict[str, Any]]:
    return slice_corpus(data_root, "scifact", 120)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory, texts: list[dict[str, Any]]) -> Path:
    from sparsearch.retriever.idf import idf_table, write_idf_json

    root = tmp_path_factory.mktemp("models")
    corpus = [(d["title"] + " " + d["text"]).strip() for d in texts]
    make_tiny_mlm(root / MODEL, corpus)
    write_idf_json(idf_table(corpus, root / MODEL), root / MODEL / "idf.json")
    return root


def documents(texts: list[dict[str, Any]], lo: int, hi: int) -> list[dict[str, Any]]:
    return [{"_id": d["_id"], "title": d["title"], "text": d["text"]} for d in texts[lo:hi]]


def scores(client: Any, query: str) -> dict[str, float]:
    r = client.post("/collections/papers/search", json={"query": query, "k": 50})
    assert r.status_code == 200, r.text
    return {h["_id"]: h["score"] for h in r.json()["hits"]}


def assert_like_a_fresh_build(client: Any, models_dir: Path, final: dict[str, dict[str, Any]],
                              queries: list[str]) -> None:
    encoder = InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(models_dir / MODEL), **PARAMS))
    fresh = Index.build([Document(d["_id"], d["title"], d["text"]) for d in final.values()], encoder=encoder)
    for q in queries:
        hits = fresh.search(q, 50)
        want = dict(zip(hits.ids, hits.scores.tolist()))
        got = scores(client, q)
        assert got.keys() == want.keys() and want, q
        for doc_id, score in want.items():
            assert got[doc_id] == pytest.approx(score, rel=1e-5, abs=1e-6), (q, doc_id)


def test_collection_idf_collection_follows_its_writes_and_restarts(tmp_path: Path, models_dir: Path,
                                                                  texts: list) -> None:
    spec = {"encoder": "inference-free", "model": MODEL, "params": PARAMS}
    queries = [d["title"] for d in texts[:100:11]]
    with app_client(tmp_path / "data", models_dir=models_dir, live=LiveSettings(flush_docs=25)) as c:
        r = c.put("/collections/papers", json=spec, headers=AUTH)
        assert r.status_code == 201, r.text
        assert r.json()["params"]["idf"] == "collection"
        assert c.put("/collections/papers", json=spec, headers=AUTH).status_code == 200  # the same: a no-op
        other = {**spec, "params": {**PARAMS, "idf": "model"}}
        assert c.put("/collections/papers", json=other, headers=AUTH).status_code == 409

        for lo in range(0, 90, 30):
            assert c.post("/collections/papers/documents", json={"documents": documents(texts, lo, lo + 30)},
                          headers=AUTH).status_code == 200
        changed = [{**d, "text": d["text"][::-1]} for d in documents(texts, 5, 10)]
        assert c.post("/collections/papers/documents", json={"documents": changed}, headers=AUTH).status_code == 200
        for i in (2, 40, 77):
            assert c.delete(f"/collections/papers/documents/{texts[i]['_id']}", headers=AUTH).status_code == 200
        final = {d["_id"]: d for d in documents(texts, 0, 90)}
        final.update({d["_id"]: d for d in changed})
        for i in (2, 40, 77):
            del final[texts[i]["_id"]]
        assert_like_a_fresh_build(c, models_dir, final, queries)
    recorded = json.loads((tmp_path / "data" / "collections" / "papers" / "collection.json").read_text())
    assert recorded["params"]["idf"] == "collection"
    with app_client(tmp_path / "data", models_dir=models_dir) as c:  # reopened from the manifest
        assert_like_a_fresh_build(c, models_dir, final, queries)


@pytest.mark.parametrize("body", [
    {"encoder": "inference-free", "model": MODEL, "params": {"idf": "corpus"}},
    {"encoder": "inference-free", "model": MODEL, "params": {"idf": 1}},
    {"encoder": "splade", "model": MODEL, "params": {"idf": "collection"}},
    {"encoder": "bm25", "params": {"idf": "collection"}},
])
def test_bad_idf_is_refused_naming_the_field(tmp_path: Path, models_dir: Path, body: dict) -> None:
    with app_client(tmp_path / "data", models_dir=models_dir) as c:
        r = c.put("/collections/papers", json=body, headers=AUTH)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "params", "idf"]
        assert not (tmp_path / "data" / "collections" / "papers").exists()


def test_a_collection_created_before_the_option_is_still_the_same_collection(tmp_path: Path,
                                                                             models_dir: Path) -> None:
    """An older server wrote collection.json without "idf": the same PUT stays a no-op, not a conflict."""
    spec = {"encoder": "inference-free", "model": MODEL, "params": {"max_length": 64}}
    with app_client(tmp_path / "data", models_dir=models_dir) as c:
        assert c.put("/collections/papers", json=spec, headers=AUTH).status_code == 201
    path = tmp_path / "data" / "collections" / "papers" / "collection.json"
    recorded = json.loads(path.read_text())
    assert recorded["params"].pop("idf") == "model"
    path.write_text(json.dumps(recorded))
    with app_client(tmp_path / "data", models_dir=models_dir) as c:
        assert c.get("/collections/papers").status_code == 200
        assert c.put("/collections/papers", json=spec, headers=AUTH).status_code == 200
        collection = {**spec, "params": {"max_length": 64, "idf": "collection"}}
        assert c.put("/collections/papers", json=collection, headers=AUTH).status_code == 409

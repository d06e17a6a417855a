"""Hybrid collections over HTTP: BM25 + a dense model under one log, searched by mode, equal to the CLI.

The dense model is a tiny random BertModel in a sentence-transformers layout,
made here in the server's models directory (no download).  The reference for
every ranking is the CLI's hybrid collection built from the same documents
with the same model folder.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss")

from learned.conftest import make_tiny_mlm, slice_corpus  # noqa: E402  (tests/ is on sys.path: its conftest)
from service_helpers import AUTH, app_client, spawn_serve  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from sparsearch.cli import app  # noqa: E402
from sparsearch.retriever.hybrid import rows_of  # noqa: E402
from sparsearch.retriever.hybrid_collection import HybridCollection  # noqa: E402
from sparsearch.client import ServiceError, SparsearchClient  # noqa: E402
from sparsearch.retriever.retriever import WAL_NAME  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "learned"))
from test_dense_encoder import write_st_layout  # noqa: E402

DENSE = "tiny-dense"
SPEC = {"encoder": "bm25", "dense_model": DENSE, "dense_params": {"batch_size": 16}}


@pytest.fixture(scope="module")
def texts(data_root: Path) -> list[dict[str, Any]]:
    return slice_corpus(data_root, "scifact", 60)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory, texts: list[dict[str, Any]]) -> Path:
    root = tmp_path_factory.mktemp("models")
    corpus = [(d["title"] + " " + d["text"]).strip() for d in texts]
    make_tiny_mlm(root / DENSE, corpus, bare=True)
    write_st_layout(root / DENSE, "mean", normalize=True)
    shutil.copytree(root / DENSE, root / "another")  # the same weights under another name
    return root


def documents(texts: list[dict[str, Any]], lo: int, hi: int) -> list[dict[str, Any]]:
    return [{"_id": d["_id"], "title": d["title"], "text": d["text"]} for d in texts[lo:hi]]


def cli_hits(index: Path, query: str, k: int, *options: str) -> list[dict[str, Any]]:
    found = CliRunner().invoke(app, ["search", str(index), query, "-k", str(k), "--json", *options])
    assert found.exit_code == 0, found.output
    return json.loads(found.stdout)["hits"]


def assert_same_ranking(http: list[dict[str, Any]], cli: list[dict[str, Any]]) -> None:
    assert [h["_id"] for h in http] == [h["_id"] for h in cli]
    np.testing.assert_allclose([h["score"] for h in http], [h["score"] for h in cli], rtol=1e-4, atol=1e-5)


def test_a_hybrid_collection_over_http_equals_the_cli_hybrid_ranking(tmp_path: Path, models_dir: Path,
                                                                     texts: list[dict[str, Any]]) -> None:
    corpus = tmp_path / "corpus.jsonl"
    final = documents(texts, 0, 50)
    corpus.write_text("".join(json.dumps(d) + "\n" for d in final))
    built = CliRunner().invoke(app, ["index", str(corpus), "--out", str(tmp_path / "cli"), "--dense-model",
                                     str(models_dir / DENSE), "--batch-size", "16", "--device", "cpu",
                                     "--no-progress"])
    assert built.exit_code == 0, built.output
    with app_client(tmp_path / "data", models_dir=models_dir) as c:
        r = c.put("/collections/papers", json=SPEC, headers=AUTH)
        assert r.status_code == 201, r.text
        info = r.json()
        assert info["modes"] == ["sparse", "dense", "hybrid"]
        assert info["dense_model"]["name"] == DENSE and info["dense_model"]["version"].startswith("sha256:")
        assert c.put("/collections/papers", json=SPEC, headers=AUTH).status_code == 200  # idempotent
        assert c.put("/collections/papers", json={**SPEC, "dense_model": "another"}, headers=AUTH).status_code == 409
        # Upserts in three requests; one of them replaces a document the first one added.
        batches = [documents(texts, 0, 20), [{**final[3], "text": "a stale text"}, *documents(texts, 20, 35)],
                   [final[3], *documents(texts, 35, 50)]]
        for batch in batches:
            r = c.post("/collections/papers/documents", json={"documents": batch}, headers=AUTH)
            assert r.status_code == 200, r.text
        wal = tmp_path / "data" / "collections" / "papers" / WAL_NAME
        assert len(wal.read_text().splitlines()) == 3  # each upsert logged once, for both indexes
        client = SparsearchClient(http=c, api_key="s3cret-key")
        for doc in final[::9]:
            query = doc["title"]
            for options, flags in (({}, []), ({"mode": "sparse"}, ["--mode", "sparse"]),
                                   ({"mode": "dense"}, ["--mode", "dense"]),
                                   ({"alpha": 0.2, "fusion": "rrf"}, ["--alpha", "0.2", "--fusion", "rrf"]),
                                   ({"prf": "both"}, ["--prf", "both"])):
                http = client.search("papers", query, k=8, **options)
                assert_same_ranking(http, cli_hits(tmp_path / "cli", query, 8, *flags))
        # Deletes and gets reach both indexes.
        gone = final[7]["_id"]
        assert client.delete("papers", gone) and client.get("papers", gone) is None
        assert gone not in {h["_id"] for h in client.search("papers", final[7]["title"], k=50, mode="dense")}
        assert client.get("papers", final[3]["_id"])["text"] == final[3]["text"]
        assert c.get("/healthz").json()["status"] == "ok"
        metrics = c.get("/metrics", headers=AUTH).text
        assert 'collection="papers"' in metrics and "sparsearch_documents" in metrics
    # The server closed (flushing both parts); a new one serves the same collection, minus the deleted one.
    with app_client(tmp_path / "data", models_dir=models_dir) as c:
        client = SparsearchClient(http=c, api_key="s3cret-key")
        assert client.describe("papers")["documents"] == 49
        query = final[1]["title"]
        http = client.search("papers", query, k=5, mode="dense")
        assert gone not in {h["_id"] for h in http} and len(http) == 5


def test_search_options_and_specs_are_validated_with_422(tmp_path: Path, models_dir: Path) -> None:
    with app_client(tmp_path / "data", models_dir=models_dir) as c:
        assert c.put("/collections/plain", json={"encoder": "bm25"}, headers=AUTH).status_code == 201
        assert c.put("/collections/both", json=SPEC, headers=AUTH).status_code == 201
        for body, where in (({"mode": "fused"}, "mode"), ({"prf": "rm4"}, "prf"), ({"alpha": 1.5}, "alpha"),
                            ({"alpha": -0.1}, "alpha"), ({"fusion": "max"}, "fusion"), ({"depth": 0}, "depth")):
            r = c.post("/collections/both/search", json={"query": "cell", **body})
            assert r.status_code == 422, (body, r.text)
            assert r.json()["detail"][0]["loc"] == ["body", where]
        r = c.post("/collections/both/search", content=b'{"query": "cell", "alpha": NaN}',
                   headers={"content-type": "application/json"})
        assert r.status_code == 422
        # A mode the collection lacks: 422 with one line saying what it holds.
        for body, message in (({"mode": "hybrid"}, "mode 'hybrid' needs a sparse and a dense part"),
                              ({"mode": "dense"}, "mode 'dense' needs a dense part"),
                              ({"prf": "rocchio"}, "Rocchio moves dense query vectors")):
            r = c.post("/collections/plain/search", json={"query": "cell", **body})
            assert r.status_code == 422, r.text
            assert message in r.json()["detail"] and "collection 'plain'" in r.json()["detail"]
            assert "\n" not in r.json()["detail"]
        assert c.post("/collections/plain/search", json={"query": "cell", "prf": "rm3"}).status_code == 200
        for spec, where in (({"encoder": "bm25", "dense_model": "nope"}, ["body", "dense_model"]),
                            ({"encoder": "bm25", "dense_params": {"batch_size": 4}}, ["body", "dense_params"]),
                            ({**SPEC, "dense_params": {"batch_size": 0}}, ["body", "dense_params", "batch_size"]),
                            ({**SPEC, "dense_model": "../x"}, ["body", "dense_model"])):
            r = c.put("/collections/bad", json=spec, headers=AUTH)
            assert r.status_code == 422, r.text
            assert r.json()["detail"][0]["loc"] == where, r.text
        client = SparsearchClient(http=c, api_key="s3cret-key")
        with pytest.raises(ServiceError) as refused:
            client.search("plain", "cell", mode="dense")
        assert refused.value.status_code == 422


@pytest.mark.slow  # two server start-ups with torch (~1 min on 2 busy cores); the simulated crashes run by default
def test_kill_9_of_a_hybrid_server_keeps_every_acknowledged_write_in_both_indexes(
        tmp_path: Path, models_dir: Path, texts: list[dict[str, Any]]) -> None:
    """A real ``sparsearch serve`` killed with SIGKILL mid-writes: both parts recover the same documents."""
    import httpx

    acked: list[str] = []
    with spawn_serve(tmp_path / "data", "--models-dir", str(models_dir), "--flush-docs", "25") as (base, proc):
        r = httpx.put(f"{base}/collections/c", json=SPEC, headers=AUTH, timeout=30)
        assert r.status_code == 201, r.text

        def write() -> None:
            with httpx.Client(base_url=base, headers=AUTH, timeout=10) as client:
                for b in range(10_000):
                    batch = [{**d, "_id": f"b{b}-{d['_id']}"} for d in documents(texts, b % 20, b % 20 + 3)]
                    try:
                        r = client.post("/collections/c/documents", json={"documents": batch})
                    except httpx.HTTPError:
                        return  # the server died mid-request: never acknowledged
                    if r.status_code == 200:
                        acked.extend(d["_id"] for d in batch)

        writer = threading.Thread(target=write)
        writer.start()
        deadline = time.monotonic() + 60
        while len(acked) < 60 and time.monotonic() < deadline:  # past a flush (25 documents) or two
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        writer.join()
    assert len(acked) >= 60
    collection = HybridCollection.open_live(tmp_path / "data" / "collections" / "c")
    try:
        sparse, dense = (set(rows_of(p.snapshot)) for p in collection.parts.values())
        assert sparse == dense  # one log: the parts never disagree on which documents exist
        assert set(acked) <= sparse  # every acknowledged write survived
        assert len(sparse) - len(acked) <= 3  # at most the batch in flight, logged but not acknowledged
    finally:
        collection.close()

"""Learned-sparse collections over HTTP: SPLADE and inference-free, by model name, one model copy per process.

Every model here is a tiny one the tests make (a 1-layer MLM over a WordPiece
vocabulary trained on 300 SciFact texts, plus an ``idf.json`` for the
inference-free one), in a models directory under ``tmp``: no download, no
shipped weights, a few seconds in all.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from learned.conftest import make_tiny_mlm, slice_corpus  # noqa: E402  (tests/ is on sys.path: its conftest)
from service_helpers import AUTH, KEY, app_client, running_server, spawn_serve  # noqa: E402

from sparsearch import Index  # noqa: E402
from sparsearch.index.writer import LiveSettings  # noqa: E402
from sparsearch.retriever.inference_free import InferenceFreeConfig, InferenceFreeEncoder  # noqa: E402
from sparsearch.retriever.splade import SpladeConfig, SpladeEncoder  # noqa: E402
from sparsearch.service.app import create_app  # noqa: E402
from sparsearch.service.settings import ServiceSettings  # noqa: E402
from sparsearch.types import Document  # noqa: E402

IF_MODEL = "tiny-if"
SPLADE_MODEL = "tiny-splade"
PARAMS = {
    "inference-free": {"doc_threshold": 0.05, "max_length": 64, "batch_size": 8},
    "splade": {"doc_threshold": 0.05, "max_length": 64, "batch_size": 8, "query_max_length": 32},
}
MODEL_OF = {"inference-free": IF_MODEL, "splade": SPLADE_MODEL}


@pytest.fixture(scope="module")
def texts(data_root: Path) -> list[dict[str, Any]]:
    return slice_corpus(data_root, "scifact", 300)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory, texts: list[dict[str, Any]]) -> Path:
    """``tiny-splade`` (an MLM) and ``tiny-if`` (the same MLM with an idf.json): a server's models directory."""
    from sparsearch.retriever.idf import idf_table, write_idf_json

    root = tmp_path_factory.mktemp("models")
    corpus = [(d["title"] + " " + d["text"]).strip() for d in texts]
    make_tiny_mlm(root / SPLADE_MODEL, corpus)
    shutil.copytree(root / SPLADE_MODEL, root / IF_MODEL)
    write_idf_json(idf_table(corpus, root / IF_MODEL), root / IF_MODEL / "idf.json")
    return root


def documents(texts: list[dict[str, Any]], lo: int, hi: int) -> list[dict[str, Any]]:
    return [{"_id": d["_id"], "title": d["title"], "text": d["text"]} for d in texts[lo:hi]]


def queries(texts: list[dict[str, Any]]) -> list[str]:
    """Titles of documents, some in the collection and some not, and one query of unknown words."""
    return [d["title"] for d in texts[0:200:13]] + ["zzzz qqqq"]


def batch_encoder(encoder: str, folder: Path, params: dict[str, Any]) -> Any:
    """The same encoder, settings and weights, built the batch way (its own copy of the model)."""
    if encoder == "splade":
        return SpladeEncoder(SpladeConfig(model_dir=str(folder), **params))
    return InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(folder), **params))


def http_scores(client: Any, name: str, query: str, k: int = 200) -> dict[str, float]:
    r = client.post(f"/collections/{name}/search", json={"query": query, "k": k})
    assert r.status_code == 200, r.text
    return {h["_id"]: h["score"] for h in r.json()["hits"]}


def assert_same_scores(got: dict[str, float], want: dict[str, float]) -> None:
    assert got.keys() == want.keys()
    for doc_id, score in want.items():
        assert got[doc_id] == pytest.approx(score, rel=1e-4, abs=1e-5), doc_id


def batch_scores(index: Index, query: str, k: int = 200) -> dict[str, float]:
    hits = index.search(query, k)
    return {i: float(s) for i, s in zip(hits.ids, hits.scores)}


@pytest.mark.parametrize("encoder", ["inference-free", "splade"])
def test_created_filled_updated_searched_like_a_batch_build(tmp_path: Path, models_dir: Path, texts: list,
                                                            encoder: str) -> None:
    params = PARAMS[encoder]
    model = MODEL_OF[encoder]
    # flush_docs=40: documents pass through the buffer, on-disk segments and merges.
    with app_client(tmp_path / "data", models_dir=models_dir, live=LiveSettings(flush_docs=40)) as c:
        r = c.put("/collections/papers", json={"encoder": encoder, "model": model, "params": params}, headers=AUTH)
        assert r.status_code == 201, r.text
        info = r.json()
        assert info["encoder"] == encoder and info["params"] == {**info["params"], **params}
        assert info["model"]["name"] == model and info["model"]["version"].startswith("sha256:")
        assert info["model"]["settings"]["doc_threshold"] == params["doc_threshold"]
        # The same PUT again is a no-op; another threshold is another collection.
        same = c.put("/collections/papers", json={"encoder": encoder, "model": model, "params": params}, headers=AUTH)
        assert same.status_code == 200
        other = {**params, "doc_threshold": 0.2}
        assert c.put("/collections/papers", json={"encoder": encoder, "model": model, "params": other},
                     headers=AUTH).status_code == 409

        for lo in range(0, 120, 30):
            r = c.post("/collections/papers/documents", json={"documents": documents(texts, lo, lo + 30)},
                       headers=AUTH)
            assert r.status_code == 200, r.text
        # Updates: five documents change text, three are deleted, ten more arrive.
        changed = [{**d, "text": d["text"][::-1]} for d in documents(texts, 10, 15)]
        assert c.post("/collections/papers/documents", json={"documents": changed}, headers=AUTH).status_code == 200
        for doc_id in [texts[i]["_id"] for i in (3, 50, 100)]:
            assert c.delete(f"/collections/papers/documents/{doc_id}", headers=AUTH).status_code == 200
        more = documents(texts, 120, 130)
        assert c.post("/collections/papers/documents", json={"documents": more}, headers=AUTH).status_code == 200

        final = {d["_id"]: d for d in documents(texts, 0, 120)}
        for d in changed:
            final[d["_id"]] = d
        for i in (3, 50, 100):
            del final[texts[i]["_id"]]
        final.update({d["_id"]: d for d in more})
        assert c.get("/collections/papers").json()["documents"] == len(final)

        batch = Index.build([Document(d["_id"], d["title"], d["text"], {}) for d in final.values()],
                            encoder=batch_encoder(encoder, models_dir / model, params))
        for q in queries(texts):
            want = batch_scores(batch, q)
            got = http_scores(c, "papers", q)
            assert_same_scores(got, want)
        assert any(http_scores(c, "papers", q) for q in queries(texts))  # not vacuous: queries find documents


def test_search_mode_per_request_equals_python(tmp_path: Path, models_dir: Path, texts: list) -> None:
    """``search_mode`` and the approx knobs in a search request rank as ``Retriever.search(mode=, approx=)``."""
    from sparsearch.index.approx import ApproxSettings

    params = PARAMS["inference-free"]
    with app_client(tmp_path / "data", models_dir=models_dir) as c:
        spec = {"encoder": "inference-free", "model": IF_MODEL, "params": params}
        assert c.put("/collections/papers", json=spec, headers=AUTH).status_code == 201
        assert c.post("/collections/papers/documents", json={"documents": documents(texts, 0, 200)},
                      headers=AUTH).status_code == 200
        batch = Index.build([Document(d["_id"], d["title"], d["text"], {}) for d in documents(texts, 0, 200)],
                            encoder=batch_encoder("inference-free", models_dir / IF_MODEL, params))
        tight = ApproxSettings(query_terms=1, candidates=10)
        changed = 0
        for q in queries(texts):
            body = {"query": q, "k": 10, "search_mode": "approx", "query_terms": 1, "candidates": 10}
            r = c.post("/collections/papers/search", json=body, headers=AUTH)
            assert r.status_code == 200, r.text
            got = {h["_id"]: h["score"] for h in r.json()["hits"]}
            hits = batch.search(q, 10, mode="approx", approx=tight)
            assert_same_scores(got, {i: float(s) for i, s in zip(hits.ids, hits.scores)})
            changed += got.keys() != http_scores(c, "papers", q, 10).keys()
            r = c.post("/collections/papers/search", json={"query": q, "k": 10, "search_mode": "bmp"}, headers=AUTH)
            assert_same_scores({h["_id"]: h["score"] for h in r.json()["hits"]}, http_scores(c, "papers", q, 10))
        assert changed > 0  # the knobs reach the kernel: one query term and 10 candidates miss something
        for body, message in [({"search_mode": "exact", "candidates": 5}, "candidates tune search_mode 'approx'"),
                              ({"search_mode": "fast"}, "search_mode"),
                              ({"search_mode": "approx", "list_fraction": 2.0}, "list_fraction")]:
            r = c.post("/collections/papers/search", json={"query": "protein", **body}, headers=AUTH)
            assert r.status_code == 422 and message in r.text, r.text


def test_restart_reloads_the_model_by_name(tmp_path: Path, models_dir: Path, texts: list) -> None:
    """collection.json names the model; a restart finds it by name in whatever models directory is given now,
    including for the replay of logged writes (encoded by the shared model)."""
    from sparsearch.service.models import loaded_models, shared_model  # noqa: F401

    first = tmp_path / "models-a"
    shutil.copytree(models_dir / IF_MODEL, first / IF_MODEL)
    data = tmp_path / "data"
    spec = {"encoder": "inference-free", "model": IF_MODEL, "params": PARAMS["inference-free"]}
    with app_client(data, models_dir=first, live=LiveSettings(flush_docs=10_000, flush_seconds=3600)) as c:
        assert c.put("/collections/papers", json=spec, headers=AUTH).status_code == 201
        assert c.post("/collections/papers/documents", json={"documents": documents(texts, 0, 60)},
                      headers=AUTH).status_code == 200
        before = {q: http_scores(c, "papers", q) for q in queries(texts)}
        version = c.get("/collections/papers").json()["model"]["version"]
        # A copy of the collection taken while its writes are only in the log: opening it replays them.
        shutil.copytree(data / "collections" / "papers", tmp_path / "replay" / "collections" / "papers")
    recorded = json.loads((data / "collections" / "papers" / "collection.json").read_text())
    assert recorded["model"] == IF_MODEL and recorded["model_version"] == version
    assert str(first) not in json.dumps(recorded)

    second = tmp_path / "models-b"  # the model moved: same name, same files, another folder
    shutil.move(str(first), str(second))
    for where in (data, tmp_path / "replay"):
        with app_client(where, models_dir=second) as c:
            info = c.get("/collections/papers").json()
            assert info["model"]["name"] == IF_MODEL and info["model"]["version"] == version
            for q, want in before.items():
                assert_same_scores(http_scores(c, "papers", q), want)
            # Writes after the restart encode with the model found by name.
            r = c.post("/collections/papers/documents", json={"documents": documents(texts, 60, 70)}, headers=AUTH)
            assert r.status_code == 200, r.text
            store = c.app.state.store  # type: ignore[attr-defined]
            with store.use("papers") as live:
                assert Path(live.encoder.doc_model.model_dir) == (second / IF_MODEL).resolve()


def test_a_changed_or_missing_model_makes_the_collection_unavailable(tmp_path: Path, models_dir: Path,
                                                                     texts: list) -> None:
    mine = tmp_path / "models"
    shutil.copytree(models_dir / IF_MODEL, mine / IF_MODEL)
    spec = {"encoder": "inference-free", "model": IF_MODEL, "params": PARAMS["inference-free"]}
    with app_client(tmp_path / "data", models_dir=mine) as c:
        assert c.put("/collections/papers", json=spec, headers=AUTH).status_code == 201
        assert c.put("/collections/plain", json={"encoder": "bm25"}, headers=AUTH).status_code == 201
        assert c.post("/collections/papers/documents", json={"documents": documents(texts, 0, 5)},
                      headers=AUTH).status_code == 200
    idf = json.loads((mine / IF_MODEL / "idf.json").read_text())
    idf[next(iter(idf))] += 1.0  # other query weights: another model, whose vectors must not mix with these
    (mine / IF_MODEL / "idf.json").write_text(json.dumps(idf))
    with app_client(tmp_path / "data", models_dir=mine) as c:
        health = c.get("/healthz", headers=AUTH).json()
        assert health["status"] == "degraded"
        [down] = health["unavailable"]
        assert down["name"] == "papers" and "encoded with" in down["reason"]
        r = c.post("/collections/papers/search", json={"query": "cells"})
        assert r.status_code == 503 and "version" in r.json()["detail"]
        assert c.post("/collections/plain/search", json={"query": "cells"}).status_code == 200
    shutil.rmtree(mine / IF_MODEL)
    with app_client(tmp_path / "data", models_dir=mine) as c:
        [down] = c.get("/healthz", headers=AUTH).json()["unavailable"]
        assert "unknown model 'tiny-if'" in down["reason"]


@pytest.mark.parametrize("model", [
    "/etc", "/tmp", "../tiny-if", "..", ".", "tiny-if/..", "tiny-if/../tiny-if", "a/b", "./tiny-if", ".hidden",
    "~", "~root", "C:\\models", "tiny-if\\..", "tiny-if\n", "", " tiny-if", "x" * 200, "%2e%2e", "tiny-if/",
])
def test_a_request_naming_a_path_is_refused(tmp_path: Path, models_dir: Path, model: str) -> None:
    with app_client(tmp_path / "data", models_dir=models_dir) as c:
        r = c.put("/collections/papers", json={"encoder": "inference-free", "model": model}, headers=AUTH)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "model"]
        assert c.get("/collections").json()["collections"] == []


def test_absolute_paths_to_real_models_and_unknown_names_are_refused(tmp_path: Path, models_dir: Path) -> None:
    with app_client(tmp_path / "data", models_dir=models_dir) as c:
        for model in (str(models_dir / IF_MODEL), str(models_dir), "inference-free-biomed", "inference-free-minilm",
                      "collections", "nope"):
            r = c.put("/collections/papers", json={"encoder": "splade", "model": model}, headers=AUTH)
            assert r.status_code == 422, (model, r.text)
            [error] = r.json()["detail"]
            assert error["loc"] == ["body", "model"]
        assert "tiny-if" in error["msg"] and "tiny-splade" in error["msg"]  # the unknown name lists what there is
        assert not (tmp_path / "data" / "collections" / "papers").exists()


@pytest.mark.parametrize("body, loc", [
    ({"encoder": "splade"}, ["body", "model"]),  # (inference-free without a model: the default, tested apart)
    ({"encoder": "bm25", "model": IF_MODEL}, ["body", "model"]),
    ({"encoder": "inference-free", "model": IF_MODEL, "params": {"k1": 1.2}}, ["body", "params", "k1"]),
    ({"encoder": "inference-free", "model": IF_MODEL, "params": {"query_max_length": 8}},
     ["body", "params", "query_max_length"]),
    ({"encoder": "splade", "model": SPLADE_MODEL, "params": {"doc_threshold": -1}},
     ["body", "params", "doc_threshold"]),
    ({"encoder": "splade", "model": SPLADE_MODEL, "params": {"doc_top_k": 0}}, ["body", "params", "doc_top_k"]),
    ({"encoder": "splade", "model": SPLADE_MODEL, "params": {"max_length": 2}}, ["body", "params", "max_length"]),
    ({"encoder": "splade", "model": SPLADE_MODEL, "params": {"device": "cuda"}}, ["body", "params", "device"]),
    ({"encoder": "splade", "model": SPLADE_MODEL, "params": {"model_dir": "/etc"}}, ["body", "params", "model_dir"]),
    ({"encoder": "bm25", "params": {"doc_threshold": 0.1}}, ["body", "params", "doc_threshold"]),
    ({"encoder": "splade", "model": SPLADE_MODEL, "path": "/etc"}, ["body", "path"]),
    # Beyond what the model takes (its 512 positions): refused at creation, not at the first upsert.
    ({"encoder": "splade", "model": SPLADE_MODEL, "params": {"max_length": 1000}}, ["body", "params", "max_length"]),
    # A model without query weights cannot be inference-free.
    ({"encoder": "inference-free", "model": SPLADE_MODEL}, ["body", "model"]),
])
def test_each_encoder_has_its_own_schema(tmp_path: Path, models_dir: Path, body: dict, loc: list) -> None:
    with app_client(tmp_path / "data", models_dir=models_dir) as c:
        r = c.put("/collections/papers", json=body, headers=AUTH)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == loc


def test_two_collections_on_one_model_share_one_model_object(tmp_path: Path, models_dir: Path, texts: list) -> None:
    with app_client(tmp_path / "data", models_dir=models_dir) as c:
        for name, encoder, threshold in (("a", "inference-free", 0.0), ("b", "inference-free", 0.3),
                                         ("c", "splade", 0.1)):
            body = {"encoder": encoder, "model": IF_MODEL, "params": {"doc_threshold": threshold, "max_length": 64}}
            assert c.put(f"/collections/{name}", json=body, headers=AUTH).status_code == 201
            assert c.post(f"/collections/{name}/documents", json={"documents": documents(texts, 0, 20)},
                          headers=AUTH).status_code == 200
        store = c.app.state.store  # type: ignore[attr-defined]
        with store.use("a") as a, store.use("b") as b, store.use("c") as s:
            assert a.encoder is not b.encoder
            assert a.encoder.doc_model is b.encoder.doc_model is s.encoder.model
        # One model, each collection's own settings: the higher threshold keeps fewer postings.
        postings = {}
        for name in ("a", "b"):
            with store.use(name) as live:
                postings[name] = live.snapshot.n_postings
        assert postings["b"] < postings["a"]
        # Closed and reopened (idle eviction), a collection finds the same copy while another holds it.
        with store.use("a") as a:
            model = a.encoder.doc_model
            store.close_idle()
            with store.use("b") as b:
                c.post("/collections/b/documents", json={"documents": documents(texts, 20, 22)}, headers=AUTH)
                assert b.encoder.doc_model is model


def test_a_large_upsert_blocks_neither_searches_nor_other_collections(tmp_path: Path, models_dir: Path,
                                                                      texts: list) -> None:
    """Document encoding runs on the upsert's worker thread under that collection's write lock only."""
    settings = ServiceSettings(data_dir=tmp_path / "data", api_key=KEY, models_dir=models_dir)
    app = create_app(settings)
    with running_server(app) as base, httpx.Client(base_url=base, headers=AUTH, timeout=300) as c:
        c.put("/collections/slow", json={"encoder": "inference-free", "model": IF_MODEL}).raise_for_status()
        c.put("/collections/other", json={"encoder": "bm25"}).raise_for_status()
        c.post("/collections/slow/documents", json={"documents": documents(texts, 0, 10)}).raise_for_status()
        c.post("/collections/other/documents", json={"documents": documents(texts, 0, 50)}).raise_for_status()
        with app.state.store.use("slow") as live:
            model = live.encoder.doc_model
        entered, release = threading.Event(), threading.Event()
        real_encode = model.encode

        def held_encode(*args: Any, **kwargs: Any) -> Any:
            entered.set()
            assert release.wait(60)
            return real_encode(*args, **kwargs)

        model.encode = held_encode
        result: dict[str, Any] = {}

        def big_upsert() -> None:
            with httpx.Client(base_url=base, headers=AUTH, timeout=300) as own:
                result["response"] = own.post("/collections/slow/documents",
                                              json={"documents": documents(texts, 10, 210)})

        writer = threading.Thread(target=big_upsert)
        writer.start()
        try:
            assert entered.wait(30)
            t = time.monotonic()
            assert c.post("/collections/other/search", json={"query": "cells"}).status_code == 200
            assert c.post("/collections/slow/search", json={"query": "cells"}).status_code == 200  # its snapshot
            assert c.get("/collections/slow").json()["documents"] == 10
            assert c.post("/collections/other/documents",
                          json={"documents": documents(texts, 50, 60)}).status_code == 200
            assert c.get("/healthz").status_code == 200
            assert time.monotonic() - t < 30
            assert writer.is_alive()  # the upsert was still encoding all along
        finally:
            release.set()
            writer.join(60)
            model.encode = real_encode
        assert result["response"].status_code == 200, result["response"].text
        assert c.get("/collections/slow").json()["documents"] == 210


def test_serve_models_dir(tmp_path: Path, models_dir: Path, texts: list) -> None:
    """``sparsearch serve --models-dir``: a learned collection over the wire, on the model named there."""
    spec = {"encoder": "inference-free", "model": IF_MODEL, "params": {"doc_threshold": 0.05}}
    with spawn_serve(tmp_path / "data", "--models-dir", str(models_dir)) as (base, _):
        with httpx.Client(base_url=base, headers=AUTH, timeout=300) as c:
            assert c.put("/collections/papers", json=spec).status_code == 201
            assert c.post("/collections/papers/documents", json={"documents": documents(texts, 0, 20)}).is_success
            assert http_scores(c, "papers", texts[3]["title"])
            r = c.put("/collections/other", json={**spec, "model": "inference-free-biomed"})
            assert r.status_code == 422 and "tiny-if" in r.text  # only the models of --models-dir


def test_serve_refuses_a_missing_models_dir(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sparsearch.cli import app

    result = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path / "d"), "--open-writes",
                                      "--models-dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "--models-dir" in result.output and "no such directory" in result.output


def test_python_client_creates_learned_collections(tmp_path: Path, models_dir: Path, texts: list) -> None:
    from sparsearch.client import ServiceError, SparsearchClient

    with app_client(tmp_path / "data", models_dir=models_dir) as http:
        client = SparsearchClient(api_key=KEY, http=http)
        info = client.create_collection("papers", "splade", model=SPLADE_MODEL, doc_threshold=0.05, max_length=64)
        assert info["model"]["name"] == SPLADE_MODEL and info["params"]["max_length"] == 64
        client.upsert("papers", documents(texts, 0, 10))
        hits = client.search("papers", texts[2]["title"], k=3)
        assert len(hits) == 3 and hits[0]["score"] >= hits[1]["score"] > 0
        with pytest.raises(ServiceError) as err:
            client.create_collection("other", "splade", model="../tiny-splade")
        assert err.value.status_code == 422

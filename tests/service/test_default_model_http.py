"""``PUT /collections/{name}`` with encoder ``inference-free`` and no ``model``: the general shipped model; and a
collection created under the biomedical model's former name (``inference-free-minilm``) still opens.

The models are tiny ones made here (a 1-layer MLM plus an ``idf.json``), installed under the shipped names in
a ``--models-dir`` or in ``$SPARSEARCH_MODELS`` (searched before the checkout's ``models/``): no real weights.
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

from sparsearch.service.models import model_version  # noqa: E402

from sparsearch.retriever.resolve import DEFAULT_INFERENCE_FREE_MODEL  # noqa: E402
GENERAL = DEFAULT_INFERENCE_FREE_MODEL  # the default model (inference-free-general once it ships)
BIOMED = "inference-free-biomed"
ALIAS = "inference-free-minilm"
PARAMS = {"doc_threshold": 0.05, "max_length": 64, "batch_size": 8}


@pytest.fixture(scope="module")
def texts(data_root: Path) -> list[dict[str, Any]]:
    return slice_corpus(data_root, "scifact", 120)


@pytest.fixture(scope="module")
def tiny_if(tmp_path_factory: pytest.TempPathFactory, texts: list[dict[str, Any]]) -> Path:
    """A tiny inference-free model folder."""
    from sparsearch.retriever.idf import idf_table, write_idf_json

    folder = tmp_path_factory.mktemp("tiny") / "model"
    corpus = [(d["title"] + " " + d["text"]).strip() for d in texts]
    make_tiny_mlm(folder, corpus)
    write_idf_json(idf_table(corpus, folder), folder / "idf.json")
    return folder


def install(tiny_if: Path, where: Path, *names: str) -> Path:
    for name in names:
        shutil.copytree(tiny_if, where / name)
    return where


def documents(texts: list[dict[str, Any]], lo: int, hi: int) -> list[dict[str, Any]]:
    return [{"_id": d["_id"], "title": d["title"], "text": d["text"]} for d in texts[lo:hi]]


def scores(client: Any, name: str, query: str) -> dict[str, float]:
    r = client.post(f"/collections/{name}/search", json={"query": query, "k": 50})
    assert r.status_code == 200, r.text
    return {h["_id"]: h["score"] for h in r.json()["hits"]}


def stored_spec(data: Path, name: str) -> dict[str, Any]:
    return json.loads((data / "collections" / name / "collection.json").read_text(encoding="utf-8"))


@pytest.fixture
def shipped_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The server's default catalogue (the shipped models), found first in an empty ``$SPARSEARCH_MODELS``."""
    models = tmp_path / "shipped"
    models.mkdir()
    monkeypatch.setenv("SPARSEARCH_MODELS", str(models))
    monkeypatch.setenv("SPARSEARCH_CACHE", str(tmp_path / "cache"))
    return models


def test_no_model_means_the_general_one_in_a_models_dir(tmp_path: Path, tiny_if: Path,
                                                        texts: list[dict[str, Any]]) -> None:
    models = install(tiny_if, tmp_path / "models", GENERAL, "other-if")
    data = tmp_path / "data"
    with app_client(data, models_dir=models) as c:
        r = c.put("/collections/papers", json={"encoder": "inference-free", "params": PARAMS}, headers=AUTH)
        assert r.status_code == 201, r.text
        assert r.json()["model"]["name"] == GENERAL
        assert r.json()["model"]["version"] == model_version(models / GENERAL)
        assert stored_spec(data, "papers")["model"] == GENERAL  # written as if given: a later default changes nothing
        # The same request again, or with the model spelt out: the same collection. Another model: a conflict.
        for body in ({"encoder": "inference-free", "params": PARAMS},
                     {"encoder": "inference-free", "model": GENERAL, "params": PARAMS}):
            assert c.put("/collections/papers", json=body, headers=AUTH).status_code == 200
        other = {"encoder": "inference-free", "model": "other-if", "params": PARAMS}
        assert c.put("/collections/papers", json=other, headers=AUTH).status_code == 409
        assert c.post("/collections/papers/documents", json={"documents": documents(texts, 0, 30)},
                      headers=AUTH).status_code == 200
        assert scores(c, "papers", texts[3]["title"])


def test_no_model_and_no_general_model_is_a_clear_422(tmp_path: Path, tiny_if: Path) -> None:
    models = install(tiny_if, tmp_path / "models", "tiny-if")
    with app_client(tmp_path / "data", models_dir=models) as c:
        r = c.put("/collections/papers", json={"encoder": "inference-free"}, headers=AUTH)
        assert r.status_code == 422, r.text
        [error] = r.json()["detail"]
        assert error["loc"] == ["body", "model"]
        assert GENERAL in error["msg"] and "default" in error["msg"] and "tiny-if" in error["msg"]
        r = c.put("/collections/papers", json={"encoder": "splade"}, headers=AUTH)  # SPLADE: no default
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "model"]
    assert not (tmp_path / "data" / "collections" / "papers").exists()


def test_no_model_means_the_general_one_among_the_shipped(tmp_path: Path, tiny_if: Path, shipped_only: Path) -> None:
    install(tiny_if, shipped_only, GENERAL)
    with app_client(tmp_path / "data") as c:
        r = c.put("/collections/papers", json={"encoder": "inference-free", "params": PARAMS}, headers=AUTH)
        assert r.status_code == 201, r.text
        model = r.json()["model"]
        assert model["name"] == GENERAL and model["version"] == model_version(shipped_only / GENERAL)


def test_a_collection_made_under_the_former_name_reopens(tmp_path: Path, tiny_if: Path, shipped_only: Path,
                                                         texts: list[dict[str, Any]]) -> None:
    """Created when the model's folder was ``inference-free-minilm``; the server restarts after the rename."""
    install(tiny_if, shipped_only, ALIAS)  # the install before the rename
    data = tmp_path / "data"
    spec = {"encoder": "inference-free", "model": ALIAS, "params": PARAMS}
    with app_client(data) as c:
        assert c.put("/collections/papers", json=spec, headers=AUTH).status_code == 201
        assert c.post("/collections/papers/documents", json={"documents": documents(texts, 0, 30)},
                      headers=AUTH).status_code == 200
        version = c.get("/collections/papers").json()["model"]["version"]
        before = scores(c, "papers", texts[3]["title"])
    assert before and stored_spec(data, "papers")["model"] == ALIAS

    (shipped_only / ALIAS).rename(shipped_only / BIOMED)  # the upgrade: same files, the new name
    with app_client(data) as c:
        info = c.get("/collections/papers").json()
        assert info["model"]["name"] == ALIAS and info["model"]["version"] == version  # available, same model
        assert scores(c, "papers", texts[3]["title"]) == before
        assert c.post("/collections/papers/documents", json={"documents": documents(texts, 30, 40)},
                      headers=AUTH).status_code == 200  # encodes with the renamed folder
        assert c.get("/collections/papers").json()["documents"] == 40
        assert c.put("/collections/papers", json=spec, headers=AUTH).status_code == 200  # the same request: same

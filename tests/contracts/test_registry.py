"""``build_encoder``: every registered encoder built from a name and settings, and its errors.

Each encoder built here satisfies the ``SparseEncoder`` protocol and survives
``config()`` + ``state_files()`` -> ``encoder_class(name).load`` with identical
document and query vectors; unknown names and settings fail in one line
naming them; building a BM25 encoder imports no torch.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from sparsearch.errors import SparsearchError
from sparsearch.protocols import SparseEncoder
from sparsearch.retriever import registry
from sparsearch.retriever.registry import (
    EncoderError,
    build_encoder,
    encoder_class,
    encoder_config,
    encoder_names,
    register_encoder,
)
from sparsearch.types import CollectionStats, Document, SparseBatch

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "first", "second", "document", "about", "retrieval",
         "index", "##es", "one", ",", "alpha", "protein", "cell", "##s"]
TEXTS = [("a", "Alpha", "first document about retrieval"), ("b", "", "second one, about indexes"),
         ("c", "", "protein cells")]
DOCS = [Document(i, title, text) for i, title, text in TEXTS]
QUERIES = ["first retrieval document", "indexes about cells", "alpha alpha protein", "nothing known here"]
# Documents encoded elsewhere, for the precomputed encoder (tokens of VOCAB, so the wordpiece analyzer matches).
VECTOR_DOCS = [Document("a", text="x", metadata={"vector": {"first": 1.5, "document": 2, "retrieval": 0.5}}),
               Document("b", metadata={"vector": {"second": 0.25, "index": 3, "about": 1}}),
               Document("c", metadata={"vector": {"protein": 2, "cell": 1}})]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 1-layer BertForMaskedLM over ``VOCAB`` with an ``idf.json``: a splade or inference-free model."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from sparsearch.retriever.idf import idf_table, write_idf_json

    folder = tmp_path_factory.mktemp("registry-model")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32)
    model = transformers.BertForMaskedLM(config)
    with torch.no_grad():
        model.cls.predictions.decoder.bias.fill_(0.5)  # mostly positive logits: non-empty vectors
    model.save_pretrained(folder)
    write_idf_json(idf_table([d.contents for d in DOCS], folder), folder / "idf.json")
    return folder


@dataclass(frozen=True)
class Case:
    name: str
    settings: Callable[[Path | None], dict[str, Any]]  # given the tiny model folder (None when not needed)
    documents: list[Document]
    learned: bool = False


CASES = {
    "bm25-defaults": Case("bm25", lambda m: {}, DOCS),
    "bm25": Case("bm25", lambda m: {"k1": 1.2, "b": 0.75, "length_norm": "exact"}, DOCS),
    "bm25-wordpiece": Case("bm25", lambda m: {"analyzer": "wordpiece", "tokenizer": str(m)}, DOCS, learned=True),
    "splade": Case("splade", lambda m: {"model_dir": str(m), "device": "cpu", "doc_top_k": 5, "max_length": 64},
                   DOCS, learned=True),
    "inference-free": Case("inference-free", lambda m: {"model_dir": str(m), "device": "cpu", "batch_size": 2},
                           DOCS, learned=True),
    "precomputed": Case("precomputed", lambda m: {}, VECTOR_DOCS),
    "precomputed-lucene": Case("precomputed", lambda m: {"query_analyzer": "lucene-english"}, VECTOR_DOCS),
    "precomputed-wordpiece": Case("precomputed", lambda m: {"query_analyzer": str(m)}, VECTOR_DOCS, learned=True),
}


def stats_of(batch: SparseBatch, n_terms: int) -> CollectionStats:
    lengths = batch.lengths if batch.lengths is not None else np.ones(len(batch), np.float32)
    return CollectionStats(len(batch), float(np.sum(lengths)), np.bincount(batch.term_ids, minlength=n_terms))


def assert_same(a: SparseBatch, b: SparseBatch) -> None:
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(a.term_ids, b.term_ids)
    np.testing.assert_array_equal(a.weights, b.weights)


def save(encoder: SparseEncoder, folder: Path) -> dict[str, Path]:
    folder.mkdir()
    files = {}
    for kind, data in encoder.state_files().items():
        (folder / kind).write_bytes(data)
        files[kind] = folder / kind
    return files


def test_the_four_encoders_are_registered() -> None:
    assert {"bm25", "splade", "inference-free", "precomputed"} <= set(encoder_names())


@pytest.mark.parametrize("case_id", list(CASES))
def test_built_encoder_keeps_the_contract_and_round_trips(case_id: str, request: pytest.FixtureRequest,
                                                          tmp_path: Path) -> None:
    case = CASES[case_id]
    model = request.getfixturevalue("model_dir") if case.learned else None
    settings = case.settings(model)
    encoder = build_encoder(case.name, settings)
    assert isinstance(encoder, SparseEncoder) and encoder.name == case.name
    assert type(encoder) is encoder_class(case.name)
    config = encoder.config()
    for key, value in settings.items():  # what was asked for is what the manifest will record
        if key not in ("model_dir", "tokenizer", "query_analyzer"):
            assert config[key] == value, key
    docs = encoder.encode_documents(case.documents)
    assert len(docs) == len(case.documents) and len(docs.term_ids) > 0 and docs.term_ids.max() < encoder.n_terms
    if case.name == "splade":
        assert np.diff(docs.offsets).max() <= settings["doc_top_k"]
    stats = stats_of(docs, encoder.n_terms)
    queries = encoder.encode_queries(QUERIES, stats)
    assert len(queries) == len(QUERIES) and len(queries.term_ids) > 0

    loaded = encoder_class(case.name).load(config, save(encoder, tmp_path / "state"))
    assert isinstance(loaded, SparseEncoder) and loaded.config() == config
    assert loaded.scoring == encoder.scoring
    assert_same(loaded.encode_documents(case.documents), docs)
    assert_same(loaded.encode_queries(QUERIES, stats), queries)


def test_learned_encoders_take_a_resolved_model(model_dir: Path) -> None:
    """``model=`` (a resolved model, or the service's ``ModelInfo``) gives ``model_dir`` and ``model``."""
    from sparsearch.retriever.resolve import ResolvedModel

    found = ResolvedModel(model_dir, "tiny", "folder")
    for name in ("splade", "inference-free"):
        encoder = build_encoder(name, {"device": "cpu"}, model=found)
        assert encoder.config()["model_dir"] == str(model_dir) and encoder.config()["model"] == "tiny"
    direct = build_encoder("inference-free", {"model_dir": str(model_dir), "device": "cpu"})
    assert_same(encoder.encode_documents(DOCS), direct.encode_documents(DOCS))
    with pytest.raises(EncoderError, match="not both"):
        build_encoder("splade", {"model_dir": str(model_dir)}, model=found)
    with pytest.raises(EncoderError, match="encoder 'bm25' takes no model"):
        build_encoder("bm25", model=found)


def one_line_error(call: Callable[[], Any]) -> str:
    with pytest.raises(EncoderError) as info:
        call()
    assert isinstance(info.value, SparsearchError) and isinstance(info.value, ValueError)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_encoder_names_it_and_the_known_ones() -> None:
    message = one_line_error(lambda: build_encoder("tfidf", {"k1": 1.0}))
    assert message == "unknown encoder 'tfidf' (known: bm25, dense, inference-free, precomputed, splade)"


def test_unknown_settings_are_named() -> None:
    message = one_line_error(lambda: build_encoder("bm25", {"k3": 1.0}))
    assert message == "unknown setting 'k3' for encoder 'bm25' (known: analyzer, b, k1, length_norm, tokenizer)"
    message = one_line_error(lambda: build_encoder("splade", {"model_dir": "/nowhere", "colour": 1, "k1": 2}))
    assert message.startswith("unknown settings 'colour', 'k1' for encoder 'splade' (known: ")
    assert "query_max_length" in message
    message = one_line_error(lambda: build_encoder("precomputed", {"tokenizer": "x"}))
    assert message == "unknown setting 'tokenizer' for encoder 'precomputed' (known: query_analyzer)"
    message = one_line_error(lambda: encoder_config("inference-free", {"query_max_length": 8}))
    assert "unknown setting 'query_max_length' for encoder 'inference-free'" in message


def test_missing_model_and_bad_values() -> None:
    # (inference-free has a default model, the general shipped one: tests/learned/test_default_model.py)
    for name, settings in (("splade", {"max_length": 64}), ("dense", {"batch_size": 2})):
        message = one_line_error(lambda: build_encoder(name, settings))
        assert message.startswith(f"encoder {name!r} needs a model: setting model_dir")
    message = one_line_error(lambda: build_encoder("bm25", {"k1": "high"}))
    assert message.startswith("bad settings for encoder 'bm25'")
    with pytest.raises(ValueError, match="unknown analyzer"):  # the config's own checks still speak
        build_encoder("bm25", {"analyzer": "snowball"})


def test_building_bm25_imports_no_torch() -> None:
    code = ("import sys\n"
            "from sparsearch.retriever.registry import build_encoder\n"
            "from sparsearch.types import Document\n"
            "e = build_encoder('bm25', {'k1': 1.1})\n"
            "e.encode_documents([Document('a', 'x', 'some words')])\n"
            "p = build_encoder('precomputed', {'query_analyzer': 'lucene-english'})\n"
            "p.encode_queries(['some words'])\n"
            "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- a third-party encoder


@dataclass(frozen=True)
class EchoConfig:
    scale: float = 1.0


class EchoEncoder:
    """Each distinct character code (below 128) of a text, weighing ``scale``: enough to plug in."""

    name = "test-echo"

    def __init__(self, config: EchoConfig) -> None:
        self.settings = config

    @property
    def scoring(self) -> Any:
        from sparsearch.scoring import Scoring

        return Scoring(transform="linear")

    @property
    def n_terms(self) -> int:
        return 128

    def _rows(self, texts: list[str]) -> SparseBatch:
        return SparseBatch.from_dicts([{ord(c): self.settings.scale for c in t if ord(c) < 128} for t in texts])

    def encode_documents(self, documents: Any) -> SparseBatch:
        return self._rows([d.contents for d in documents])

    def encode_queries(self, queries: Any, stats: Any = None) -> SparseBatch:
        return self._rows(list(queries))

    def config(self) -> dict[str, Any]:
        return {"scale": self.settings.scale}

    def state_files(self) -> dict[str, bytes]:
        return {}

    @classmethod
    def load(cls, config: dict[str, Any], files: dict[str, Path]) -> "EchoEncoder":
        return cls(EchoConfig(**config))


def test_a_registered_third_party_encoder_builds_with_its_config_class() -> None:
    register_encoder("test-echo", f"{__name__}:EchoEncoder", config=EchoConfig)
    try:
        encoder = build_encoder("test-echo", {"scale": 2.0})
        assert isinstance(encoder, SparseEncoder) and encoder.config() == {"scale": 2.0}
        assert_same(encoder_class("test-echo").load(encoder.config(), {}).encode_queries(["ab"]),
                    encoder.encode_queries(["ab"]))
        assert "test-echo" in one_line_error(lambda: build_encoder("nope"))
        assert "'size'" in one_line_error(lambda: build_encoder("test-echo", {"size": 1}))
        register_encoder("test-echo", f"{__name__}:EchoEncoder")  # no config class: loadable, not buildable
        assert "registered no config class" in one_line_error(lambda: build_encoder("test-echo"))
    finally:
        registry._ENCODERS.pop("test-echo", None)

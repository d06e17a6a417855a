"""sentence-transformers ``SparseEncoder`` folders: sparsearch reads them and writes its models in that layout.

Round trips (native -> SparseEncoder folder -> sparsearch) need no
sentence-transformers; the comparisons with ``SparseEncoder`` itself run when
it is installed (it is in the ``test`` extra) and skip cleanly otherwise.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sparsearch.cli import app
from sparsearch.retriever.inference_free import InferenceFreeConfig, InferenceFreeEncoder
from sparsearch.retriever.mlm import ModelFormatError
from sparsearch.retriever.splade import SpladeConfig, SpladeEncoder, SpladeModel
from sparsearch.retriever.st_format import describe_model, save_sentence_transformers
from sparsearch.types import Document

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / "inference-free-biomed"
TEXTS = ["vitamin d deficiency increases the risk of fractures",
         "microstructural development of human newborn cerebral white matter",
         "cells", "the protein gene of a cell"]
TOL = 1e-5

runner = CliRunner()


def dense(batch, width: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = np.zeros((len(batch), width), np.float32)
    for i in range(len(batch)):
        lo, hi = batch.offsets[i], batch.offsets[i + 1]
        out[i, batch.term_ids[lo:hi]] = batch.weights[lo:hi]
    return out


def splade_vectors(folder: Path, texts=TEXTS) -> np.ndarray:  # type: ignore[no-untyped-def]
    model = SpladeModel(folder, device="cpu")
    return dense(model.encode(list(texts), 256, 3), model.vocab_size)


def if_vectors(folder: Path | str, texts=TEXTS) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    enc = InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(folder), device="cpu", batch_size=3))
    docs = [Document(str(i), t) for i, t in enumerate(texts)]
    return dense(enc.encode_documents(docs), enc.n_terms), dense(enc.encode_queries(list(texts)), enc.n_terms)


def st_vectors(folder: Path, texts=TEXTS) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """(documents, queries) by ``sentence_transformers.SparseEncoder``, dense float32."""
    st = pytest.importorskip("sentence_transformers")
    model = st.SparseEncoder(str(folder), device="cpu")
    docs = model.encode_document(list(texts), convert_to_tensor=True).to_dense().float().numpy()
    queries = model.encode_query(list(texts), convert_to_tensor=True).to_dense().float().numpy()
    return docs, queries


# ---------------------------------------------------------------- round trips without sentence-transformers


def test_splade_export_round_trip(tiny_mlm: Path, tmp_path: Path) -> None:
    out = save_sentence_transformers(tiny_mlm, tmp_path / "st")
    layout = describe_model(out)
    assert (layout.format, layout.kind, layout.document_dir, layout.max_seq_length) == \
        ("sentence-transformers", "splade", out, 256)
    modules = json.loads((out / "modules.json").read_text(encoding="utf-8"))
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["MLMTransformer", "SpladePooling"]
    assert json.loads((out / "config_sentence_transformers.json").read_text())["model_type"] == "SparseEncoder"
    native, exported = splade_vectors(tiny_mlm), splade_vectors(out)
    assert (native > 0).sum() > 0
    np.testing.assert_allclose(exported, native, atol=TOL, rtol=0)
    # The encoder (queries and documents) through a config naming the folder.
    enc = SpladeEncoder(SpladeConfig(model_dir=str(out), device="cpu"))
    np.testing.assert_allclose(dense(enc.encode_queries(TEXTS), enc.n_terms), native, atol=TOL, rtol=0)


def test_splade_export_in_place_keeps_the_native_layout(tiny_mlm: Path, tmp_path: Path) -> None:
    """One folder, both layouts: the Hugging Face MLM at the root plus modules.json and 1_SpladePooling/."""
    from transformers import AutoModelForMaskedLM

    folder = tmp_path / "both"
    shutil.copytree(tiny_mlm, folder)
    save_sentence_transformers(folder, folder, kind="splade")
    assert (folder / "modules.json").is_file() and (folder / "1_SpladePooling" / "config.json").is_file()
    AutoModelForMaskedLM.from_pretrained(folder)  # still a plain Hugging Face folder
    np.testing.assert_allclose(splade_vectors(folder), splade_vectors(tiny_mlm), atol=TOL, rtol=0)


def test_inference_free_export_round_trip(inference_free_mlm: Path, tmp_path: Path) -> None:
    out = save_sentence_transformers(inference_free_mlm, tmp_path / "st-if")
    layout = describe_model(out)
    assert layout.kind == "inference-free" and layout.document_dir == out / "document_0_MLMTransformer"
    assert layout.query_weights_path == out / "query_0_SparseStaticEmbedding" / "model.safetensors"
    router = json.loads((out / "router_config.json").read_text(encoding="utf-8"))
    assert router["structure"] == {"query": ["query_0_SparseStaticEmbedding"],
                                   "document": ["document_0_MLMTransformer", "document_1_SpladePooling"]}
    native_docs, native_queries = if_vectors(inference_free_mlm)
    docs, queries = if_vectors(out)
    np.testing.assert_allclose(docs, native_docs, atol=TOL, rtol=0)
    np.testing.assert_allclose(queries, native_queries, atol=TOL, rtol=0)
    assert (native_queries > 0).sum() > 0 and (native_docs > 0).sum() > 0
    # The query table read back from the SparseStaticEmbedding weights is the idf.json table.
    table = json.loads((inference_free_mlm / "idf.json").read_text(encoding="utf-8"))
    back = layout.idf_table()
    assert back.keys() == {t for t, w in table.items() if w > 0}
    assert max(abs(back[t] - table[t]) for t in back) < 1e-6  # float32 weights


def test_export_refuses_what_it_cannot_do(inference_free_mlm: Path, tiny_mlm: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="in place"):
        save_sentence_transformers(inference_free_mlm, inference_free_mlm)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        save_sentence_transformers(tiny_mlm, tmp_path / "full")
    with pytest.raises(FileNotFoundError, match="idf.json"):  # no query weights to write
        save_sentence_transformers(tiny_mlm, tmp_path / "no-idf", kind="inference-free")


def test_sentence_transformers_6_spelling_loads(tiny_mlm: Path, tmp_path: Path) -> None:
    """sentence-transformers ≥ 5.4 writes Transformer(transformer_task="fill-mask") under base.modules."""
    folder = tmp_path / "st6"
    shutil.copytree(tiny_mlm, folder)
    (folder / "1_SpladePooling").mkdir()
    (folder / "1_SpladePooling" / "config.json").write_text(json.dumps(
        {"pooling_strategy": "max", "activation_function": "relu", "embedding_dimension": None}))
    (folder / "sentence_bert_config.json").write_text(json.dumps(
        {"transformer_task": "fill-mask", "module_output_name": "token_embeddings"}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
        {"idx": 1, "name": "1", "path": "1_SpladePooling",
         "type": "sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling"}]))
    np.testing.assert_allclose(splade_vectors(folder), splade_vectors(tiny_mlm), atol=TOL, rtol=0)

    # log1p_relu (OpenSearch v3 models): log(1 + log(1 + ReLU(x))).
    (folder / "1_SpladePooling" / "config.json").write_text(json.dumps(
        {"pooling_strategy": "max", "activation_function": "log1p_relu"}))
    np.testing.assert_allclose(splade_vectors(folder), np.log1p(splade_vectors(tiny_mlm)), atol=TOL, rtol=0)


@pytest.mark.parametrize("change, message", [
    (lambda f: (f / "1_SpladePooling" / "config.json").write_text('{"pooling_strategy": "sum"}'), "sum"),
    (lambda f: (f / "1_SpladePooling" / "config.json").write_text('{"activation_function": "gelu"}'), "gelu"),
    (lambda f: (f / "sentence_bert_config.json").write_text('{"transformer_task": "feature-extraction"}'),
     "fill-mask"),
    (lambda f: (f / "modules.json").write_text(json.dumps([
        {"path": "", "type": "sentence_transformers.models.Transformer"},
        {"path": "1_SpladePooling", "type": "sentence_transformers.sparse_encoder.models.SparseAutoEncoder"}])),
     "SparseAutoEncoder"),
    (lambda f: (f / "modules.json").write_text("{not json"), "not valid JSON"),
])
def test_unsupported_sentence_transformers_folders(tiny_mlm: Path, tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    folder = save_sentence_transformers(tiny_mlm, tmp_path / "st")
    change(folder)
    with pytest.raises(ModelFormatError, match=message) as err:
        describe_model(folder)
    assert "\n" not in str(err.value)


def test_models_cli_export_path_and_index(inference_free_mlm: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    r = runner.invoke(app, ["models", "export", str(inference_free_mlm), str(out)])
    assert r.exit_code == 0, r.output
    assert "inference-free SparseEncoder folder" in r.stdout
    r = runner.invoke(app, ["models", "path", str(out)])
    assert r.exit_code == 0 and r.stdout.strip() == str(out.resolve())
    assert "sentence-transformers layout; inference-free" in r.stderr
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": str(i), "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    r = runner.invoke(app, ["index", str(corpus), "--out", str(tmp_path / "idx"), "--encoder", "inference-free",
                            "--model", str(out), "--device", "cpu", "--no-progress"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["models", "export", str(inference_free_mlm), str(out)])  # not empty now
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "not empty" in r.stderr


# ---------------------------------------------------------------- against sentence-transformers itself


def test_sentence_transformers_loads_our_splade(tiny_mlm: Path, tmp_path: Path) -> None:
    out = save_sentence_transformers(tiny_mlm, tmp_path / "st")
    docs, queries = st_vectors(out)
    ours = splade_vectors(out)
    np.testing.assert_allclose(docs, ours, atol=TOL, rtol=0)
    np.testing.assert_allclose(queries, ours, atol=TOL, rtol=0)


def test_sentence_transformers_loads_our_inference_free(inference_free_mlm: Path, tmp_path: Path) -> None:
    out = save_sentence_transformers(inference_free_mlm, tmp_path / "st-if")
    st_docs, st_queries = st_vectors(out)
    docs, queries = if_vectors(out)
    np.testing.assert_allclose(st_queries, queries, atol=TOL, rtol=0)
    # sparsearch leaves special tokens ([CLS], [SEP], ...) out of inference-free documents: no query holds
    # them (weight 0), so every score is the same; all other weights agree.
    special = if_vectors_weights(out) == 0
    assert (st_docs[:, ~special] > 0).sum() > 0
    np.testing.assert_allclose(st_docs[:, ~special], docs[:, ~special], atol=TOL, rtol=0)
    assert not docs[:, special].any()
    np.testing.assert_allclose(st_queries @ st_docs.T, queries @ docs.T, atol=1e-4, rtol=0)


def if_vectors_weights(folder: Path) -> np.ndarray:
    return InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(folder))).queries.weights


def test_folders_saved_by_sentence_transformers_load(tiny_mlm: Path, tmp_path: Path) -> None:
    """Models built and saved by sentence-transformers (its own current spelling) give its vectors here."""
    pytest.importorskip("sentence_transformers")
    import importlib

    import torch
    from sentence_transformers import SparseEncoder

    try:  # ≥ 5.4 re-exports every module here; 5.0-5.3 had sparse_encoder.models and models.Router
        st_modules = importlib.import_module("sentence_transformers.sparse_encoder.modules")
        router_class = st_modules.Router
        doc = st_modules.Transformer(str(tiny_mlm), transformer_task="fill-mask")
    except (ImportError, AttributeError, TypeError):
        st_modules = importlib.import_module("sentence_transformers.sparse_encoder.models")
        router_class = importlib.import_module("sentence_transformers.models").Router
        doc = st_modules.MLMTransformer(str(tiny_mlm))
    SparseEncoder(modules=[doc, st_modules.SpladePooling("max")]).save(str(tmp_path / "splade"))
    docs, queries = st_vectors(tmp_path / "splade")
    np.testing.assert_allclose(splade_vectors(tmp_path / "splade"), docs, atol=TOL, rtol=0)

    torch.manual_seed(0)
    weight = torch.rand(len(doc.tokenizer.get_vocab())) * 3
    static = st_modules.SparseStaticEmbedding(tokenizer=doc.tokenizer, weight=weight, frozen=True)
    router = router_class.for_query_document(query_modules=[static],
                                            document_modules=[doc, st_modules.SpladePooling("max")])
    SparseEncoder(modules=[router], similarity_fn_name="dot").save(str(tmp_path / "if"))
    assert describe_model(tmp_path / "if").kind == "inference-free"
    st_docs, st_queries = st_vectors(tmp_path / "if")
    our_docs, our_queries = if_vectors(tmp_path / "if")
    np.testing.assert_allclose(our_queries, st_queries, atol=TOL, rtol=0)
    keep = if_vectors_weights(tmp_path / "if") > 0
    np.testing.assert_allclose(our_docs[:, keep], st_docs[:, keep], atol=TOL, rtol=0)


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="the shipped model is not in this checkout")
def test_shipped_model_in_sentence_transformers(tmp_path: Path) -> None:
    """The shipped model by name, exported: same vectors as the native folder, and as sentence-transformers."""
    out = save_sentence_transformers("inference-free-biomed", tmp_path / "shipped-st")
    native_docs, native_queries = if_vectors(SHIPPED, TEXTS[:2])
    docs, queries = if_vectors(out, TEXTS[:2])
    np.testing.assert_allclose(docs, native_docs, atol=TOL, rtol=0)
    np.testing.assert_allclose(queries, native_queries, atol=TOL, rtol=0)
    st_docs, st_queries = st_vectors(out, TEXTS[:2])  # skips here without sentence-transformers
    np.testing.assert_allclose(st_queries, queries, atol=TOL, rtol=0)
    keep = if_vectors_weights(out) > 0
    np.testing.assert_allclose(st_docs[:, keep], docs[:, keep], atol=TOL, rtol=0)

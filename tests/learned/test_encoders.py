"""SpladeModel / SpladeEncoder: length-sorted batches, truncation, pruning and CSR conversion, vs plain transformers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsearch.retriever.inference_free import InferenceFreeConfig
from sparsearch.retriever.splade import SpladeConfig, SpladeEncoder, SpladeModel, dense_to_sparse, permute_rows
from sparsearch.types import Document, SparseBatch

from .plain import plain_splade


def to_dense(batch: SparseBatch, vocab: int) -> np.ndarray:
    out = np.zeros((len(batch), vocab))
    for i, (ids, weights) in enumerate(batch.rows()):
        assert len(set(ids.tolist())) == len(ids)
        out[i, ids] = weights
    return out


@pytest.fixture(scope="module")
def cls_sep_mlm(tmp_path_factory, tiny_mlm: Path) -> Path:
    """The tiny MLM with a tokenizer that wraps every text in [CLS] ... [SEP], as BERT's does."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("cls-sep") / "model"
    shutil.copytree(tiny_mlm, out)
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                   ("[CLS]", tok.token_to_id("[CLS]")))
    tok.save(str(out / "tokenizer.json"))
    PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"), pad_token="[PAD]", unk_token="[UNK]",
                            cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]").save_pretrained(out)
    return out


def mixed_texts(tiny_texts: list[str]) -> list[str]:
    # Lengths out of order, so sorting by length really permutes the rows.
    return [tiny_texts[0], "cells", tiny_texts[1][:120], tiny_texts[2], tiny_texts[3][:30], tiny_texts[4],
            tiny_texts[5][:300], "the protein"]


@pytest.mark.parametrize("exact_screening", [True, False])
def test_encode_matches_plain_transformers_in_input_order(tiny_mlm: Path, tiny_texts: list[str],
                                                          exact_screening: bool) -> None:
    texts = mixed_texts(tiny_texts)
    model = SpladeModel(tiny_mlm, device="cpu", exact_screening=exact_screening)
    batch = model.encode(texts, max_length=96, batch_size=3)
    assert len(batch) == len(texts)
    got = to_dense(batch, model.vocab_size)
    reference = plain_splade(tiny_mlm, texts, max_length=96, batch_size=len(texts))
    np.testing.assert_allclose(got, reference, atol=1e-5)
    assert np.array_equal(got > 0, reference > 0)
    # Row i is text i: the vectors of different texts differ, so a wrong permutation fails the line above.
    assert len({tuple(np.flatnonzero(r)) for r in reference}) == len(texts)


def test_truncation_counts_cls_and_sep(cls_sep_mlm: Path, tiny_texts: list[str]) -> None:
    from transformers import AutoTokenizer

    texts = [tiny_texts[0], "cells", tiny_texts[7]]
    model = SpladeModel(cls_sep_mlm, device="cpu")
    ids = model.token_ids(texts, 16)
    hf = AutoTokenizer.from_pretrained(str(cls_sep_mlm))(texts, truncation=True, max_length=16)["input_ids"]
    assert ids == hf
    assert len(ids[0]) == 16 and ids[0][0] == model.tokenizer.token_to_id("[CLS]")
    assert ids[0][-1] == model.tokenizer.token_to_id("[SEP]")
    got = to_dense(model.encode(texts, max_length=16, batch_size=2), model.vocab_size)
    reference = plain_splade(cls_sep_mlm, texts, max_length=16)
    np.testing.assert_allclose(got, reference, atol=1e-5)
    # Truncation matters: the full text gives another vector.
    assert np.abs(plain_splade(cls_sep_mlm, texts[:1], max_length=256)[0] - reference[0]).max() > 1e-3


def test_doc_top_k_and_threshold(tiny_mlm: Path, tiny_texts: list[str]) -> None:
    texts = tiny_texts[:4]
    reference = plain_splade(tiny_mlm, texts, max_length=64)
    base = dict(model_dir=str(tiny_mlm), max_length=64, query_max_length=64, device="cpu")
    docs = [Document(str(i), text=t) for i, t in enumerate(texts)]
    top = SpladeEncoder(SpladeConfig(**base, doc_top_k=5)).encode_documents(docs)
    for i, (ids, weights) in enumerate(top.rows()):
        assert len(ids) == 5
        assert set(ids.tolist()) == set(np.argsort(-reference[i])[:5].tolist())
        np.testing.assert_allclose(weights, reference[i, ids], atol=1e-5)
    cut = float(np.median(reference[reference > 0]))
    thr = SpladeEncoder(SpladeConfig(**base, doc_threshold=cut)).encode_documents(docs)
    expected = np.where(reference > cut, reference, 0.0)
    np.testing.assert_allclose(to_dense(thr, reference.shape[1]), expected, atol=1e-5)
    # Queries are never pruned.
    q = SpladeEncoder(SpladeConfig(**base, doc_top_k=5, doc_threshold=cut)).encode_queries(texts[:1])
    np.testing.assert_allclose(to_dense(q, reference.shape[1])[0], reference[0], atol=1e-5)


def test_queries_use_query_max_length(tiny_mlm: Path, tiny_texts: list[str]) -> None:
    enc = SpladeEncoder(SpladeConfig(model_dir=str(tiny_mlm), max_length=256, query_max_length=8, device="cpu"))
    q = enc.encode_queries(tiny_texts[:1])
    reference = plain_splade(tiny_mlm, tiny_texts[:1], max_length=8)
    np.testing.assert_allclose(to_dense(q, reference.shape[1]), reference, atol=1e-5)


def test_splade_encoder_interface(tiny_mlm: Path) -> None:
    enc = SpladeEncoder(SpladeConfig(model_dir=str(tiny_mlm), device="cpu"))
    assert enc._model is None  # lazy: nothing loaded before the first encode
    assert enc.name == "splade" and enc.scoring.transform == "linear"
    assert enc.n_terms == json.loads((tiny_mlm / "config.json").read_text())["vocab_size"]
    assert enc.state_files() == {}
    again = SpladeEncoder.load(enc.config(), {})
    assert again.settings == enc.settings
    assert len(enc.encode_queries([])) == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"max_length": 3}, "max_length"), ({"query_max_length": 2}, "max_length"), ({"batch_size": 0}, "batch_size"),
    ({"doc_top_k": 0}, "doc_top_k"), ({"doc_threshold": -0.1}, "doc_threshold"),
])
def test_splade_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpladeConfig(model_dir="m", **kwargs)
    if "query_max_length" not in kwargs:  # the inference-free document side checks the same settings
        with pytest.raises(ValueError, match=message):
            InferenceFreeConfig(model_dir="m", **kwargs)


def test_dense_to_sparse_by_hand() -> None:
    v = torch.tensor([[0.0, 2.0, 0.5, 0.0, 3.0],
                      [0.0, 0.0, 0.0, 0.0, 0.0],
                      [1.0, 0.0, 0.0, 0.25, 0.0]])
    b = dense_to_sparse(v)
    assert b.offsets.tolist() == [0, 3, 3, 5]
    assert b.term_ids.tolist() == [1, 2, 4, 0, 3]
    assert b.weights.tolist() == [2.0, 0.5, 3.0, 1.0, 0.25]
    top = dense_to_sparse(v, top_k=2)
    assert top.offsets.tolist() == [0, 2, 2, 4]  # top-2 of the zero row are zeros: dropped
    assert top.term_ids.tolist() == [1, 4, 0, 3]
    thr = dense_to_sparse(v, threshold=0.5)  # strictly above
    assert thr.term_ids.tolist() == [1, 4, 0] and thr.offsets.tolist() == [0, 2, 2, 3]
    assert dense_to_sparse(v, top_k=10).term_ids.tolist() == b.term_ids.tolist()


def test_permute_rows_by_hand() -> None:
    b = SparseBatch(np.array([0, 2, 2, 5]), np.array([1, 2, 0, 3, 4]), np.array([.1, .2, .3, .4, .5]))
    p = permute_rows(b, np.array([2, 0, 1]))
    assert p.offsets.tolist() == [0, 3, 5, 5]
    assert p.term_ids.tolist() == [0, 3, 4, 1, 2]
    np.testing.assert_allclose(p.weights, [.3, .4, .5, .1, .2])
    back = permute_rows(p, np.argsort([2, 0, 1]))
    assert back.term_ids.tolist() == b.term_ids.tolist() and back.offsets.tolist() == b.offsets.tolist()


def test_texts_without_tokens_give_empty_rows(tiny_mlm: Path) -> None:
    """The tiny tokenizer adds no [CLS]/[SEP], so "" has no token at all: an empty row, even a whole batch of them.

    The engine's contract: empty text is an empty document, an empty query has no hits.
    """
    from sparsearch import Index

    model = SpladeModel(tiny_mlm, device="cpu")
    assert model.token_ids(["", "   "], 16) == [[], []]
    texts = ["", "cells", "   ", ""]
    batch = model.encode(texts, max_length=64, batch_size=2)  # length-sorted: the first batch holds only empties
    lengths = np.diff(batch.offsets).tolist()
    assert lengths[0] == lengths[2] == lengths[3] == 0 and lengths[1] > 0
    reference = plain_splade(tiny_mlm, ["cells"], max_length=64)
    np.testing.assert_allclose(to_dense(batch, model.vocab_size)[1], reference[0], atol=1e-5)
    encoder = SpladeEncoder(SpladeConfig(model_dir=str(tiny_mlm), device="cpu", batch_size=2))
    docs = [Document("a", text=""), Document("b", text=" "), Document("c", text="cells")]
    index = Index.build(docs, encoder=encoder)
    assert index.n_docs == 3
    assert len(index.search("", k=10)) == 0
    assert index.search("cells", k=10).ids == ["c"]

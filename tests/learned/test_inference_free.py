"""Inference-free queries: each distinct non-special WordPiece token, weighted by its IDF."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from sparsearch.retriever.idf import idf_table
from sparsearch.retriever.inference_free import IdfQueryEncoder, InferenceFreeConfig, InferenceFreeEncoder
from sparsearch.types import Document

from .conftest import HAND_VOCAB
from .plain import idf_query_vector, plain_splade
from .test_idf import CORPUS, EXPECTED

ID = {t: i for i, t in enumerate(HAND_VOCAB)}


def hand_encoder(hand_tokenizer: Path, table: dict[str, float] | None = None) -> IdfQueryEncoder:
    return IdfQueryEncoder(Tokenizer.from_file(str(hand_tokenizer / "tokenizer.json")),
                           table if table is not None else idf_table(CORPUS, hand_tokenizer))


def row(batch, i: int) -> dict[int, float]:  # type: ignore[no-untyped-def]
    ids, weights = batch.row(i)
    return dict(zip(ids.tolist(), weights.tolist()))


def test_query_is_idf_of_distinct_tokens(hand_tokenizer: Path) -> None:
    enc = hand_encoder(hand_tokenizer)
    # the the cell ##s [SEP] [UNK] the [CLS] protein: 'the' three times, specials typed and unknown
    batch = enc.encode(["The cells the [SEP] zebra THE [CLS] protein"])
    assert len(batch) == 1
    got = row(batch, 0)
    assert set(got) == {ID["the"], ID["cell"], ID["##s"], ID["protein"]}
    for tok in ("the", "cell", "##s", "protein"):
        assert got[ID[tok]] == pytest.approx(EXPECTED[tok], rel=1e-6), tok  # once, not three times
    ids, _ = batch.row(0)
    assert len(ids) == len(set(ids.tolist()))


def test_several_queries_and_empty_ones(hand_tokenizer: Path) -> None:
    enc = hand_encoder(hand_tokenizer)
    batch = enc.encode(["gene", "zebra [MASK] [PAD]", "", "a gene a"])
    assert len(batch) == 4
    assert batch.offsets.tolist() == [0, 1, 1, 1, 3]
    assert row(batch, 0) == pytest.approx({ID["gene"]: EXPECTED["gene"]})
    assert row(batch, 1) == {} and row(batch, 2) == {}
    assert row(batch, 3) == pytest.approx({ID["a"]: EXPECTED["a"], ID["gene"]: EXPECTED["gene"]})
    assert len(enc.encode([])) == 0


def test_tokens_missing_from_the_table_cannot_match(hand_tokenizer: Path) -> None:
    enc = hand_encoder(hand_tokenizer, {"the": 1.5, "cell": 0.0, "[CLS]": 9.0})
    got = row(enc.encode(["the cell gene [CLS]"]), 0)
    # gene: not in the table; cell: weight 0; [CLS]: special even with a weight in the table
    assert got == {ID["the"]: 1.5}


def test_long_queries_are_not_truncated(hand_tokenizer: Path) -> None:
    tok = Tokenizer.from_file(str(hand_tokenizer / "tokenizer.json"))
    tok.enable_truncation(4)
    enc = IdfQueryEncoder(tok, idf_table(CORPUS, hand_tokenizer))
    got = row(enc.encode(["the the the the the the the the gene"]), 0)
    assert set(got) == {ID["the"], ID["gene"]}


def test_tiny_model_queries_match_plain_tokenization(inference_free_mlm: Path, scifact_queries: list[str]) -> None:
    idf = json.loads((inference_free_mlm / "idf.json").read_text(encoding="utf-8"))
    encoder = InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(inference_free_mlm)))
    queries = scifact_queries[:40] + ["[CLS] cells cells cells ☃ [SEP]"]
    batch = encoder.encode_queries(queries)
    vocab_size = encoder.n_terms
    assert vocab_size == len(idf) + 5
    for i, q in enumerate(queries):
        expected = idf_query_vector(inference_free_mlm, q, idf, vocab_size)
        got = np.zeros(vocab_size)
        ids, weights = batch.row(i)
        got[ids] = weights
        np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=q)
    assert encoder._doc_model is None  # queries never load the MLM


def test_documents_drop_tokens_no_query_can_hold(inference_free_mlm: Path, tiny_texts: list[str]) -> None:
    texts = tiny_texts[:12]
    encoder = InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(inference_free_mlm), device="cpu"))
    batch = encoder.encode_documents([Document(str(i), text=t) for i, t in enumerate(texts)])
    reference = plain_splade(inference_free_mlm, texts, max_length=256)
    special = [0, 1, 2, 3, 4]
    assert (reference[:, special] > 0).any(), "the random head gives special tokens weight: something to drop"
    reference[:, special] = 0.0
    for i in range(len(texts)):
        got = np.zeros(reference.shape[1])
        ids, weights = batch.row(i)
        got[ids] = weights
        assert not set(ids.tolist()) & set(special)
        np.testing.assert_allclose(got, reference[i], atol=1e-5)


def test_state_files_reload_without_the_model_folder(inference_free_mlm: Path, tmp_path: Path) -> None:
    encoder = InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(inference_free_mlm)))
    files = {}
    for kind, data in encoder.state_files().items():
        (tmp_path / kind).write_bytes(data)
        files[kind] = tmp_path / kind
    loaded = InferenceFreeEncoder.load(encoder.config(), files)
    queries = ["vitamin d deficiency and bone density", "cells"]
    a, b = encoder.encode_queries(queries), loaded.encode_queries(queries)
    assert a.offsets.tolist() == b.offsets.tolist()
    assert a.term_ids.tolist() == b.term_ids.tolist() and a.weights.tolist() == b.weights.tolist()
    assert len(a.term_ids) > 0


def test_missing_idf_json_names_the_fix(tiny_mlm: Path) -> None:
    with pytest.raises(FileNotFoundError, match="sparsearch idf"):
        InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(tiny_mlm)))

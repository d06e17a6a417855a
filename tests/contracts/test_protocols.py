"""Every encoder and every index must satisfy the protocols, and behave as they promise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparsearch import BM25Config, BM25Encoder, Document, Index
from sparsearch.protocols import Index as IndexProtocol
from sparsearch.protocols import IndexSnapshot, SparseEncoder, TokenVocabulary
from sparsearch.retriever.registry import encoder_class
from sparsearch.types import SparseBatch

DOCS = [Document("a", "Alpha", "first document about retrieval"), Document("b", "", "second one, about indexes")]


def wordpiece_dir(tmp_path: Path) -> Path:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "first", "second", "document", "about", "retrieval", "index",
             "##es", "one", ",", "alpha"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return tmp_path


def tiny_mlm_dir(tmp_path: Path) -> Path:
    """A random 1-layer BertForMaskedLM over the 14-token vocabulary above, with an idf.json."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from sparsearch.retriever.idf import idf_table, write_idf_json

    tmp_path.mkdir(parents=True, exist_ok=True)
    folder = wordpiece_dir(tmp_path)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=14, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32)
    model = transformers.BertForMaskedLM(config)
    with torch.no_grad():
        model.cls.predictions.decoder.bias.fill_(0.5)  # mostly positive logits: non-empty vectors
    model.save_pretrained(folder)
    write_idf_json(idf_table([d.contents for d in DOCS], folder), folder / "idf.json")
    return folder


@pytest.fixture(params=["lucene", "wordpiece", "splade", "inference-free"])
def encoder(request: pytest.FixtureRequest, tmp_path: Path) -> SparseEncoder:
    if request.param == "lucene":
        return BM25Encoder()
    if request.param == "wordpiece":
        return BM25Encoder(BM25Config(analyzer="wordpiece", tokenizer=str(wordpiece_dir(tmp_path))))
    model = str(tiny_mlm_dir(tmp_path / "model"))
    if request.param == "splade":
        from sparsearch.retriever.splade import SpladeConfig, SpladeEncoder

        return SpladeEncoder(SpladeConfig(model_dir=model, device="cpu"))
    from sparsearch.retriever.inference_free import InferenceFreeConfig, InferenceFreeEncoder

    return InferenceFreeEncoder(InferenceFreeConfig(model_dir=model, device="cpu"))


def test_encoder_contract(encoder: SparseEncoder, tmp_path: Path) -> None:
    assert isinstance(encoder, SparseEncoder)
    docs = encoder.encode_documents(DOCS)
    assert isinstance(docs, SparseBatch) and len(docs) == 2
    assert docs.term_ids.max() < encoder.n_terms
    for terms, _ in docs.rows():
        assert len(set(terms.tolist())) == len(terms)  # unique term ids per row
    # Every term id this encoder emitted is named by a token (what exports write).
    assert isinstance(encoder, TokenVocabulary)
    tokens = encoder.token_strings()
    assert len(tokens) >= encoder.n_terms and all(tokens[t] for t in set(docs.term_ids.tolist()))
    # Save -> load through the registry gives an encoder producing identical vectors.
    files = {}
    for kind, data in encoder.state_files().items():
        (tmp_path / kind).write_bytes(data)
        files[kind] = tmp_path / kind
    loaded = encoder_class(encoder.name).load(encoder.config(), files)
    again = loaded.encode_documents(DOCS)
    np.testing.assert_array_equal(again.term_ids, docs.term_ids)
    np.testing.assert_array_equal(again.weights, docs.weights)


def test_index_contract(encoder: SparseEncoder, tmp_path: Path) -> None:
    index = Index.build(DOCS, path=tmp_path / "idx", encoder=encoder)
    for retriever in (index, Index.open(tmp_path / "idx")):
        assert isinstance(retriever.writer, IndexProtocol) and isinstance(retriever.snapshot, IndexSnapshot)
        assert retriever.snapshot.n_docs == 2 and retriever.snapshot.stats.n_docs == 2
    # The best hit is the document with the largest score under the encoder's own vectors.
    if encoder.scoring.transform == "linear":
        q = encoder.encode_queries(["retrieval"], index.inverted.stats)
        d = encoder.encode_documents(DOCS)
        dense_q = np.zeros(encoder.n_terms, np.float32)
        dense_q[q.term_ids] = q.weights
        scores = [float(dense_q[t] @ w) for t, w in d.rows()]
        expected = [DOCS[int(np.argmax(scores))].doc_id] if max(scores) > 0 else []
    else:
        expected = ["a"]
    assert index.search("retrieval", 1).ids == expected
    assert Index.open(tmp_path / "idx").search("retrieval", 1).ids == expected

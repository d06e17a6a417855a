"""The cached pure-Python WordPiece gives exactly the ids of ``tokenizers`` on ASCII text."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from sparsearch.retriever.wordpiece_fast import FastWordPiece

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / "inference-free-minilm" / "tokenizer.json"


@pytest.fixture(scope="module")
def bert_tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(str(SHIPPED))
    tok.no_padding()
    tok.no_truncation()
    return tok


def reference(tok: Tokenizer, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False).ids


def test_equal_to_tokenizers_on_real_queries_and_documents(bert_tokenizer: Tokenizer, data_root: Path) -> None:
    fast = FastWordPiece.from_tokenizer(bert_tokenizer)
    assert fast is not None
    texts: list[str] = []
    for name in ("scifact", "nfcorpus"):
        with (data_root / "beir" / name / "queries.jsonl").open(encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f]
        with (data_root / "beir" / name / "corpus.jsonl").open(encoding="utf-8") as f:
            texts += [(lambda d: f"{d['title']} {d['text']}")(json.loads(line)) for line in itertools.islice(f, 300)]
    checked = 0
    for text in texts:
        ids = fast.ids(text)
        if ids is None:
            assert not text.isascii()
            continue
        assert ids == reference(bert_tokenizer, text), text
        checked += 1
    assert checked > 4000


@pytest.mark.parametrize("text", [
    "", "   \t\n  ", "hello_world foo-bar (baz)! #1 $2.50", "ctrl\x01chars\x0bjoin\x7fed", "tab\tand\nnewline\rcr",
    "x" * 101, "x" * 100, "qqqzzzxxx unmatchableword", "UPPER lower MiXeD", "a.b,c;d:e?f", "covid-19 il-6 p53",
    "[CLS] cells", "masked [MASK] word", "lower [cls] case", "[SEP]",
])
def test_equal_to_tokenizers_on_edge_cases(bert_tokenizer: Tokenizer, text: str) -> None:
    """Through the query encoder: the fast path where it applies, ``tokenizers`` where it declines."""
    from sparsearch.retriever.inference_free import IdfQueryEncoder

    vocab = bert_tokenizer.get_vocab()
    encoder = IdfQueryEncoder(Tokenizer.from_str(bert_tokenizer.to_str()), {t: 1.0 for t in vocab})
    fast = FastWordPiece.from_tokenizer(bert_tokenizer)
    assert fast is not None
    got = fast.ids(text)
    assert got is None or got == reference(bert_tokenizer, text)
    specials = {i for i, t in bert_tokenizer.get_added_tokens_decoder().items() if t.special}
    expected = sorted({i for i in reference(bert_tokenizer, text) if i not in specials})
    assert encoder.encode([text]).term_ids.tolist() == expected


def test_declines_non_ascii_and_other_tokenizers(bert_tokenizer: Tokenizer) -> None:
    fast = FastWordPiece.from_tokenizer(bert_tokenizer)
    assert fast is not None and fast.ids("café au lait") is None
    assert fast.ids("the [CLS] token") is None  # added tokens are matched by tokenizers itself
    spec = json.loads(bert_tokenizer.to_str())
    spec["normalizer"]["lowercase"] = False  # a cased model: not the rules implemented here
    assert FastWordPiece.from_tokenizer(Tokenizer.from_str(json.dumps(spec))) is None


def test_cache_does_not_change_results(bert_tokenizer: Tokenizer) -> None:
    fast = FastWordPiece.from_tokenizer(bert_tokenizer)
    assert fast is not None
    first = fast.ids("retrieval of retrieval models")
    assert fast.ids("retrieval of retrieval models") == first == reference(bert_tokenizer, "retrieval of retrieval models")

"""idf.json: BM25-form IDF ln(1 + (N − df + 0.5)/(df + 0.5)) over WordPiece tokens, counted by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sparsearch.cli import app
from sparsearch.errors import InputError
from sparsearch.retriever.idf import idf_table, idf_vector, read_idf_json, write_idf_json

from .conftest import HAND_VOCAB

# Tokenized by HAND_VOCAB (lower-cased WordPiece):
#   "the cell"               -> the cell
#   "Cells protein protein"  -> cell ##s protein protein
#   "the gene zebra"         -> the gene [UNK]
#   "the THE cells"          -> the the cell ##s
CORPUS = ["the cell", "Cells protein protein", "the gene zebra", "the THE cells"]
N = 4
DF = {"the": 3, "cell": 3, "##s": 2, "protein": 1, "gene": 1, "a": 0}
# ln(1 + (4 - df + .5)/(df + .5)): df 3 -> ln(10/7), 2 -> ln 2, 1 -> ln(10/3), 0 -> ln 10.
EXPECTED = {"the": math.log(10 / 7), "cell": math.log(10 / 7), "##s": math.log(2), "protein": math.log(10 / 3),
            "gene": math.log(10 / 3), "a": math.log(10)}
SPECIAL = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}


def test_hand_values_follow_the_formula() -> None:
    for tok, df in DF.items():
        assert EXPECTED[tok] == pytest.approx(math.log(1 + (N - df + 0.5) / (df + 0.5)), rel=1e-15)


@pytest.mark.parametrize("form", ["folder", "tokenizer.json", "vocab.txt"])
def test_idf_table_by_hand(hand_tokenizer: Path, form: str) -> None:
    source = hand_tokenizer if form == "folder" else hand_tokenizer / form
    table = idf_table(iter(CORPUS), source)  # any iterable of texts, read once
    assert list(table) == [t for t in HAND_VOCAB if t not in SPECIAL]  # vocabulary order, no special token
    for tok, value in EXPECTED.items():
        assert table[tok] == pytest.approx(value, rel=1e-12), tok


def test_idf_table_tiny_model_all_non_special_tokens(tiny_mlm: Path, tiny_texts: list[str]) -> None:
    """On a real vocabulary: one entry per non-special token, df counted independently with transformers."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_mlm))
    texts = tiny_texts[:50]
    table = idf_table(texts, tiny_mlm)
    vocab = tok.get_vocab()
    special = set(tok.all_special_tokens)
    assert special == SPECIAL
    assert set(table) == set(vocab) - special
    df: dict[str, int] = {}
    for t in texts:
        for token in set(tok.convert_ids_to_tokens(tok(t, add_special_tokens=False)["input_ids"])):
            df[token] = df.get(token, 0) + 1
    assert "[UNK]" not in table
    for token, value in table.items():
        d = df.get(token, 0)
        assert value == pytest.approx(math.log1p((50 - d + 0.5) / (d + 0.5)), rel=1e-12), token
    assert min(table.values()) > 0


def test_empty_corpus_is_an_input_error(hand_tokenizer: Path) -> None:
    with pytest.raises(InputError, match="empty corpus"):
        idf_table([], hand_tokenizer)


def test_write_read_round_trip_and_vector(hand_tokenizer: Path, tmp_path: Path) -> None:
    table = idf_table(CORPUS, hand_tokenizer)
    path = tmp_path / "idf.json"
    write_idf_json(table, path)
    assert json.loads(path.read_text(encoding="utf-8")) == table
    assert read_idf_json(path) == table
    assert not list(tmp_path.glob("*.tmp*"))  # the atomic write leaves no temporary file
    vocab = {t: i for i, t in enumerate(HAND_VOCAB)}
    v = idf_vector({**table, "not-in-vocab": 5.0}, vocab)
    assert v.dtype == np.float32 and len(v) == len(HAND_VOCAB)
    assert v[:5].tolist() == [0.0] * 5  # special tokens: weight 0
    np.testing.assert_allclose(v[5:], [EXPECTED[t] for t in HAND_VOCAB[5:]], rtol=1e-6)


@pytest.mark.parametrize("content, message", [
    ('{"the": 1.0', "not valid JSON"),
    ('[1, 2]', "JSON object"),
    ('{"the": -1}', "token 'the'"),
    ('{"the": "high"}', "token 'the'"),
    ('{"the": true}', "token 'the'"),
    ('{"the": NaN}', "token 'the'"),
])
def test_read_idf_json_rejects_bad_tables(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "idf.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_idf_json(path)


def test_read_idf_json_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="sparsearch idf"):
        read_idf_json(tmp_path / "idf.json")


def test_cli_idf_by_hand(hand_tokenizer: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    # Title and text are joined as BEIR's "title text": doc 2's title carries its first words.
    rows = [{"_id": "d1", "text": CORPUS[0]}, {"_id": "d2", "title": "Cells", "text": "protein protein"},
            {"_id": "d3", "title": "", "text": CORPUS[2]}, {"_id": "d4", "text": CORPUS[3]}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "idf.json"
    result = CliRunner().invoke(app, ["idf", str(corpus), "--tokenizer", str(hand_tokenizer), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {len(HAND_VOCAB) - len(SPECIAL)} token weights" in result.output
    table = json.loads(out.read_text(encoding="utf-8"))
    assert set(table) == set(HAND_VOCAB) - SPECIAL
    for tok, value in EXPECTED.items():
        assert table[tok] == pytest.approx(value, rel=1e-12), tok


def test_cli_idf_missing_tokenizer_is_a_one_line_error(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "a", "text": "the cell"}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["idf", str(corpus), "--tokenizer", str(tmp_path / "nope"),
                                      "--out", str(tmp_path / "idf.json")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:")
    assert not (tmp_path / "idf.json").exists()

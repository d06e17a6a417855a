"""The Lucene English analyzer, token by token, on cases worked out from Lucene's rules."""

from __future__ import annotations

import pytest

from sparsearch.retriever.analysis import LUCENE_ENGLISH_STOP_WORDS, LuceneEnglishAnalyzer, WordPieceAnalyzer


@pytest.fixture(scope="module")
def analyzer() -> LuceneEnglishAnalyzer:
    return LuceneEnglishAnalyzer()


@pytest.mark.parametrize(
    "text,tokens",
    [
        ("The cats are running", ["cat", "run"]),  # stop words out, Porter stems
        ("John's book", ["john", "book"]),  # possessive filter
        ("JOHN\u2019S", ["john"]),  # curly apostrophe, upper case
        ("don't", ["don't"]),  # letters joined across an apostrophe
        ("U.S.A. policy", ["u.s.a", "polici"]),  # letters joined across dots; trailing dot dropped
        ("3.14 and 1,000,000", ["3.14", "1,000,000"]),  # digits joined across . and ,
        ("covid-19 e-mail", ["covid", "19", "e", "mail"]),  # hyphens split
        ("snake_case var2x", ["snake_cas", "var2x"]),  # underscore joins; letters+digits join
        ("x.1 1.x", ["x", "1", "1", "x"]),  # letter.digit splits
        ("中文 text", ["中", "文", "text"]),  # each ideograph a token
        ("", []),
        ("!!! ??? ...", []),
    ],
)
def test_tokens(analyzer: LuceneEnglishAnalyzer, text: str, tokens: list[str]) -> None:
    assert analyzer.analyze(text) == tokens


def test_stop_word_list_is_lucenes() -> None:
    assert len(LUCENE_ENGLISH_STOP_WORDS) == 33
    assert {"a", "the", "with", "will", "such"} <= LUCENE_ENGLISH_STOP_WORDS
    assert "he" not in LUCENE_ENGLISH_STOP_WORDS  # Lucene's list is short, unlike NLTK's


def test_long_tokens_are_cut_at_255(analyzer: LuceneEnglishAnalyzer) -> None:
    assert [len(t) for t in analyzer.raw_tokens("x" * 600)] == [255, 255, 90]


def test_wordpiece_analyzer_uses_the_vocabulary(tmp_path) -> None:  # type: ignore[no-untyped-def]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "token", "##ize", "##r", "the", "word"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    wp = WordPieceAnalyzer(tmp_path)
    assert wp.analyze("The tokenizer") == ["the", "token", "##ize", "##r"]
    assert wp.token_ids(["The tokenizer", "word"]) == [[8, 5, 6, 7], [9]]
    assert wp.vocab == vocab

"""The batch ASCII split gives the tokenizer pattern's tokens exactly, or defers to it."""

from __future__ import annotations

import random

import pytest

from sparsearch.retriever.analysis import ASCII_TOKEN_PATTERN, LuceneEnglishAnalyzer
from sparsearch.retriever.ascii_split import split_ascii_rows
from sparsearch.retriever.query_batch import raw_token_rows

# Letters, digits, every joiner, the underscore, breaks and upper case: the characters where a split and the
# pattern could part ways, dense enough that many strings hold several.
ALPHABET = "abz09" + ".':,;_" + " -\t\n/()%" + "AZ"


def _random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24))) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_each_row_is_the_patterns_tokens_or_deferred(seed: int) -> None:
    texts = _random_texts(3000, seed)
    rows = split_ascii_rows(texts)
    assert len(rows) == len(texts)
    assert all(row is None or row == ASCII_TOKEN_PATTERN.findall(t) for row, t in zip(rows, texts))
    # glue-free texts take the fast path: it must carry the common case, not defer everything
    plain = [i for i, t in enumerate(texts) if not any(c in t for c in ".':,;_AZ")]
    assert plain and all(rows[i] is not None for i in plain)


def test_each_joiner_defers_only_where_the_pattern_joins() -> None:
    texts = ["don't stop", "3.5 mg", "1,000", "2;3", "foo_bar", "a:b", "Upper",
             "end. next, 3 ,4 a.1 1.a 1:2 a,b a;b", ".a a. 1, ,1", ""]
    assert split_ascii_rows(texts) == [None] * 7 + [
        ["end", "next", "3", "4", "a", "1", "1", "a", "1", "2", "a", "b", "a", "b"], ["a", "a", "1", "1"], []]
    assert split_ascii_rows([]) == []


def test_a_text_holding_the_row_separator_defers_the_batch() -> None:
    assert split_ascii_rows(["ab\x00cd", "ef"]) == [None, None]


def test_batch_rows_equal_the_analyzers_tokens_on_mixed_queries() -> None:
    rng = random.Random(7)
    words = ["cell", "3.5", "don't", "IL-6", "naïve", "x_y", "1,000", "β-cells", "t-cell.", "Ω", "e.g.", "a:b",
             "nul\x00l"]
    queries = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 8))) for _ in range(400)]
    for batch in (queries, [q for q in queries if "\x00" not in q]):
        assert raw_token_rows(batch, LuceneEnglishAnalyzer.raw_tokens) == \
            [LuceneEnglishAnalyzer.raw_tokens(q) for q in batch]

"""The compiled one-query path of BM25 (``retriever.token_table``) gives the Python path's rows to the bit.

Term order matters as much as the terms and weights: the kernels add a
query's contributions in row order, so a different order changes float32
scores.  Queries are drawn dense in what could part the two paths: joiners
between letters and digits, underscores, upper case, stop words, repeats,
words unknown to the vocabulary, runs longer than the tokenizer keeps whole.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from sparsearch.retriever import bm25
from sparsearch.retriever.bm25 import BM25Encoder
from sparsearch.retriever.token_table import TokenTable
from sparsearch.retriever.token_table_kernels import DROPPED, MISSING, PATTERN, UNKNOWN
from sparsearch.types import CollectionStats, Document

CORPUS = [
    "Protein folding in yeast cells and the heat-shock response.",
    "Vitamin D deficiency, bone density and the risk of fractures in older adults.",
    "Aspirin's effect on platelets; o'neill's cohort study of 1,000 patients in the U.S. and 3.14 others.",
    "Heat shock proteins fold other proteins; folding fails at high temperature 42 degrees.",
]
WORDS = ["protein", "Proteins", "FOLDING", "yeast", "heat", "shock", "the", "and", "of", "a", "vitamin", "d",
         "fractures", "aspirin's", "o'neill's", "1,000", "3.14", "42", "u.s.", "don't", "foo_bar", "zebrafish",
         "unknownword", "x" * 300, "IL", "6", "bone", "density", "is", "it's", "2;3", "a:b", "e.g."]
SEPARATORS = [" ", "  ", "-", "/", "(", ")", ",", ".", ";", ":", "'", "\t", "?", "!", "%", " _ "]


def stats_of(encoder: BM25Encoder, texts: list[str]) -> CollectionStats:
    docs = encoder.encode_documents([Document(str(i), "", t) for i, t in enumerate(texts)])
    df = np.bincount(docs.term_ids, minlength=len(encoder.vocab)).astype(np.int64)
    return CollectionStats(len(texts), float(docs.lengths.sum()), df)


def random_queries(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 9)):
            word = rng.choice(WORDS)
            separator = " " if rng.random() < 0.6 else rng.choice(SEPARATORS)
            parts += [word.upper() if rng.random() < 0.15 else word, separator]
        out.append("".join(parts))
    return out


def as_bits(row: tuple[np.ndarray, np.ndarray]) -> tuple[str, list[int], str, list[int]]:
    ids, weights = row
    return ids.dtype.str, ids.tolist(), weights.dtype.str, weights.view(np.uint32).tolist()


@pytest.fixture
def compiled_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bm25, "COMPILED_AFTER", 1)


def python_rows(queries: list[str], texts: list[str]) -> list[tuple]:
    """The reference: a fresh encoder that never compiles (same vocabulary: the same texts in the same order)."""
    encoder = BM25Encoder()
    stats = stats_of(encoder, texts)
    return [as_bits(encoder._python_query_row(q, stats)) for q in queries]


@pytest.mark.parametrize("seed", range(3))
def test_compiled_rows_equal_the_python_rows_to_the_bit(compiled_at_once: None, seed: int) -> None:
    encoder = BM25Encoder()
    stats = stats_of(encoder, CORPUS)
    queries = random_queries(400, seed)
    expected = python_rows(queries, CORPUS)
    first = [as_bits(encoder.encode_query(q, stats)) for q in queries]  # teaches the table as it goes
    second = [as_bits(encoder.encode_query(q, stats)) for q in queries]  # mostly compiled now
    assert first == expected and second == expected
    table = encoder._compiled_queries
    assert table is not None
    _, idf, known = encoder._idf_array
    statuses = [table.encode(q.encode("ascii"), len(encoder.vocab), idf, known)[0] for q in queries]
    # every query was answered; the compiled path served all but those only the pattern can split
    assert MISSING not in statuses
    assert sum(s >= 0 for s in statuses) > len(queries) // 4
    assert any(s == PATTERN for s in statuses)
    assert any(len(row[1]) > 1 for row in expected) and any(len(row[1]) == 0 for row in expected)


def test_repeated_terms_weigh_count_times_idf_as_in_python(compiled_at_once: None) -> None:
    encoder = BM25Encoder()
    stats = stats_of(encoder, CORPUS)
    query = "protein Protein PROTEIN folding yeast proteins"
    encoder.encode_query(query, stats)
    ids, weights = encoder.encode_query(query, stats)
    protein = encoder.vocab.get("protein")
    assert ids.tolist()[0] == protein and ids.tolist().count(protein) == 1
    idf = encoder._idf_of(stats, [protein])[protein]
    assert weights[0] == np.float32(4 * idf)  # "protein" x3 and "proteins" stem to one term
    assert as_bits((ids, weights)) == python_rows([query], CORPUS)[0]


def test_a_word_unknown_at_first_is_found_once_it_is_indexed(compiled_at_once: None) -> None:
    encoder = BM25Encoder()
    stats = stats_of(encoder, CORPUS[:2])
    for _ in range(2):
        assert encoder.encode_query("zebrafish protein", stats)[0].tolist() == [encoder.vocab.get("protein")]
    assert encoder._compiled_queries.lookup("zebrafish") == (UNKNOWN, len(encoder.vocab))
    encoder.encode_query("the protein", stats)
    assert encoder._compiled_queries.lookup("the") == (DROPPED, 0)  # a stop word: dropped for good
    stats = stats_of(encoder, CORPUS[:2] + ["zebrafish embryos"])
    zebrafish = encoder.vocab.get("zebrafish")
    assert zebrafish >= 0
    for _ in range(2):
        assert encoder.encode_query("zebrafish protein", stats)[0].tolist() == [zebrafish, encoder.vocab.get("protein")]


def test_terms_no_live_document_holds_are_dropped(compiled_at_once: None) -> None:
    encoder = BM25Encoder()
    stats_of(encoder, CORPUS)  # "yeast" enters the vocabulary...
    stats = stats_of(encoder, CORPUS[1:])  # ...but no document of these statistics holds it
    vitamin = encoder.vocab.get("vitamin")
    for _ in range(3):
        assert encoder.encode_query("yeast vitamin", stats)[0].tolist() == [vitamin]


def test_the_table_grows_and_keeps_every_entry() -> None:
    rng = random.Random(3)
    table = TokenTable(16)
    tokens = list(dict.fromkeys("".join(rng.choice("abcdefghij0123") for _ in range(rng.randint(1, 40)))
                                for _ in range(3000)))
    for i, token in enumerate(tokens):
        table.insert(token, i)
    table.insert(tokens[5], DROPPED)  # an update, not a second entry
    table.insert(tokens[6], UNKNOWN, 77)
    assert len(table) == len(tokens)
    assert [table.lookup(t) for t in tokens[7:]] == [(i, 0) for i in range(7, len(tokens))]
    assert table.lookup(tokens[5]) == (DROPPED, 0) and table.lookup(tokens[6]) == (UNKNOWN, 77)
    assert table.lookup("not-in-it") is None and table.lookup("k") is None


def test_concurrent_single_queries_get_their_own_rows(compiled_at_once: None) -> None:
    encoder = BM25Encoder()
    stats = stats_of(encoder, CORPUS)
    queries = random_queries(300, 11)
    expected = python_rows(queries, CORPUS)
    results: dict[int, list] = {}

    def work(worker: int) -> None:
        order = list(range(len(queries)))
        random.Random(worker).shuffle(order)
        results[worker] = [(i, as_bits(encoder.encode_query(queries[i], stats))) for i in order]

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for rows in results.values():
        assert sorted(rows, key=lambda r: r[0]) == list(enumerate(expected))


def test_a_few_single_queries_do_not_import_numba() -> None:
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from sparsearch.retriever.bm25 import BM25Encoder, COMPILED_AFTER
        from sparsearch.types import CollectionStats, Document
        encoder = BM25Encoder()
        docs = encoder.encode_documents([Document("1", "", "protein folding in yeast")])
        stats = CollectionStats(1, float(docs.lengths.sum()), np.bincount(docs.term_ids).astype(np.int64))
        for _ in range(COMPILED_AFTER - 1):
            encoder.encode_query("protein folding", stats)
        print("numba" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("seed", range(3))
def test_the_compiled_split_is_the_patterns_or_defers_where_the_batch_split_does(seed: int) -> None:
    """On random text dense in joiners, underscores and capitals: the compiled tokens are the pattern's, and it
    leaves to the pattern exactly the texts the batch split (``ascii_split``) leaves to it."""
    from sparsearch.retriever.analysis import ASCII_TOKEN_PATTERN
    from sparsearch.retriever.ascii_split import split_ascii_rows

    rng = random.Random(seed)
    alphabet = "abz09" + ".':,;_" + " -\t\n/()%" + "AZ"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(2000)]
    table = TokenTable(64)
    tokens = sorted({t for text in texts for t in ASCII_TOKEN_PATTERN.findall(text.lower())})
    for i, token in enumerate(tokens):
        table.insert(token, i)
    idf = np.ones(len(tokens), np.float32)
    known = np.ones(len(tokens), bool)
    deferred = split_ascii_rows([t.lower() for t in texts])
    served = 0
    for text, batch_row in zip(texts, deferred):
        status, ids, weights = table.encode(text.encode("ascii"), 0, idf, known)
        assert (status == PATTERN) == (batch_row is None), text
        if status >= 0:
            expected = list(dict.fromkeys(ASCII_TOKEN_PATTERN.findall(text.lower())))
            assert [tokens[i] for i in ids.tolist()] == expected
            counts = [ASCII_TOKEN_PATTERN.findall(text.lower()).count(t) for t in expected]
            assert weights.tolist() == [float(c) for c in counts]
            served += 1
    assert served > len(texts) // 4


def test_a_query_of_many_distinct_terms_takes_the_python_path_with_the_same_row(compiled_at_once: None) -> None:
    from sparsearch.retriever.token_table_kernels import MAX_SCAN_TERMS

    words = [f"w{i}x" for i in range(MAX_SCAN_TERMS + 40)]
    texts = CORPUS + [" ".join(words)]
    encoder = BM25Encoder()
    stats = stats_of(encoder, texts)
    long_query, short_query = " ".join(words + words[:7]), " ".join(words[:MAX_SCAN_TERMS])
    expected = python_rows([long_query, short_query], texts)
    for _ in range(2):
        assert [as_bits(encoder.encode_query(q, stats)) for q in (long_query, short_query)] == expected
    _, idf, known = encoder._idf_array
    table = encoder._compiled_queries
    assert table.encode(long_query.encode("ascii"), len(encoder.vocab), idf, known)[0] == PATTERN
    assert table.encode(short_query.encode("ascii"), len(encoder.vocab), idf, known)[0] == MAX_SCAN_TERMS

"""Qrels layouts (BEIR tab-separated, TREC whitespace) and TREC run files with ids that hold spaces.

Issue 14 item 12: a BEIR qrels line whose corpus id holds one space was read
as a 4-column TREC line, so the wrong column became the id and every query
scored 0 without a warning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparsearch.errors import InputError
from sparsearch.eval.datasets import read_qrels
from sparsearch.eval.metrics import judgement_warnings
from sparsearch.eval.runs import read_trec, write_trec
from sparsearch.types import Hits

HEADER = "query-id\tcorpus-id\tscore"


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_beir_qrels_keep_spaces_inside_ids(tmp_path: Path) -> None:
    lines = [HEADER, "q1\tAda Lovelace\t1", "q 2\tCharles Babbage\t2", "q 2\t Leading and trailing \t0"]
    qrels = read_qrels(write(tmp_path / "test.tsv", "\n".join(lines) + "\n"))
    assert qrels == {"q1": {"Ada Lovelace": 1}, "q 2": {"Charles Babbage": 2, " Leading and trailing ": 0}}


def test_crlf_line_ends_are_stripped_and_nothing_else(tmp_path: Path) -> None:
    """BEIR ships CRLF files: the CR must not end up in the last column or split a line."""
    lines = [HEADER, "q1\tAda Lovelace\t1", "q1\tid\rwith\u2028odd breaks\t2"]
    crlf = read_qrels(write(tmp_path / "crlf.tsv", "\r\n".join(lines) + "\r\n"))
    lf = read_qrels(write(tmp_path / "lf.tsv", "\n".join(lines)))  # no final line end either
    assert crlf == lf == {"q1": {"Ada Lovelace": 1, "id\rwith\u2028odd breaks": 2}}


def test_byte_order_mark_before_the_header(tmp_path: Path) -> None:
    qrels = read_qrels(write(tmp_path / "bom.tsv", "\ufeff" + HEADER + "\r\nq1\tAda Lovelace\t1\r\n"))
    assert qrels == {"q1": {"Ada Lovelace": 1}}


def test_headerless_three_tab_columns_still_read_as_beir(tmp_path: Path) -> None:
    assert read_qrels(write(tmp_path / "q.tsv", "q1\tAda Lovelace\t1\n\nq1\td2\t0\n")) == {
        "q1": {"Ada Lovelace": 1, "d2": 0}}


def test_trec_four_column_qrels(tmp_path: Path) -> None:
    text = "q1 0 d1 1\nq1\t0\td2\t2\n  q2   Q0  d3   0  \r\n\nq1 0 d1 3\n"  # spaces, tabs, CRLF; last pair wins
    assert read_qrels(write(tmp_path / "qrels.txt", text)) == {"q1": {"d1": 3, "d2": 2}, "q2": {"d3": 0}}


@pytest.mark.parametrize("text, line, expected", [
    (HEADER + "\nq1\tAda Lovelace\n", 2, "expected 3 tab-separated columns (query-id, corpus-id, score), got 2"),
    (HEADER + "\nq1\t0\td1\t1\n", 2, "expected 3 tab-separated columns (query-id, corpus-id, score), got 4"),
    (HEADER + "\nq1 d1 1\n", 2, "got 1 column(s)"),  # spaces are not column separators in a BEIR file
    ("q1 0 d1 1\nq1 0 Ada Lovelace 1\n", 2, "expected 4 whitespace-separated TREC columns"),
    ("q1 d1\n", 1, "or a BEIR file with the header"),
    (HEADER + "\nq1\t\t1\n", 2, "field 'corpus-id': empty id"),
    (HEADER + "\nq1\td1\tyes\n", 2, "field 'score': relevance 'yes' is not an integer"),
])
def test_a_line_that_fits_no_layout_names_file_line_and_expectation(tmp_path: Path, text: str, line: int,
                                                                     expected: str) -> None:
    path = write(tmp_path / "bad.tsv", text)
    with pytest.raises(InputError) as e:
        read_qrels(path)
    assert e.value.path == str(path) and e.value.line == line
    assert expected in str(e.value) and str(e.value).startswith(f"{path}:{line}")


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_bytes(HEADER.encode() + b"\nq1\t\xffd\t1\n")
    with pytest.raises(InputError, match="not valid UTF-8") as e:
        read_qrels(path)
    assert e.value.line == 2


def test_run_file_refuses_document_ids_with_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    hits = [Hits(["d1", "Ada Lovelace"], np.array([2.0, 1.0], np.float32))]
    with pytest.raises(InputError) as e:
        write_trec(path, ["q1"], hits)
    assert "query 'q1': document id 'Ada Lovelace' contains whitespace (' ')" in str(e.value)
    assert not path.exists()  # nothing half-written


@pytest.mark.parametrize("doc_id", ["tab\there", "line\nbreak", "no\u00a0break", ""])
def test_run_file_refuses_every_kind_of_whitespace_and_empty_ids(tmp_path: Path, doc_id: str) -> None:
    with pytest.raises(InputError, match="document id"):
        write_trec(tmp_path / "run.trec", ["q1"], [Hits([doc_id], np.ones(1, np.float32))])


def test_run_file_refuses_query_ids_with_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    ok = Hits(["d1"], np.ones(1, np.float32))
    with pytest.raises(InputError, match="query id 'q 2' contains whitespace"):
        write_trec(path, ["q1", "q 2"], [ok, ok])
    assert not path.exists()
    write_trec(path, ["q1", "q 2"], [ok, Hits([], np.zeros(0, np.float32))])  # no line for it: nothing to refuse
    assert read_trec(path) == {"q1": {"d1": 1.0}}


def test_reading_a_run_with_a_split_id_says_why(tmp_path: Path) -> None:
    path = write(tmp_path / "run.trec", "q1 Q0 d1 1 2.0 t\nq1 Q0 Ada Lovelace 2 1.0 t\n")
    with pytest.raises(InputError, match="run.trec:2: expected 6 whitespace-separated columns .* got 7; "
                                         "a TREC run cannot hold ids with whitespace"):
        read_trec(path)


QRELS = {"q1": {"Ada Lovelace": 1, "Charles Babbage": 0}, "q2": {"Grace Hopper": 1}}


def test_no_warning_when_some_query_retrieves_a_judged_document() -> None:
    warnings, missing = judgement_warnings(QRELS, {"q1": ["x", "Charles Babbage"], "q2": ["y"]},
                                           corpus_ids={"Ada Lovelace", "Charles Babbage", "Grace Hopper", "x", "y"})
    assert warnings == [] and missing == 0


def test_warns_when_no_retrieved_id_appears_in_the_qrels() -> None:
    warnings, missing = judgement_warnings(QRELS, {"q1": ["Ada_Lovelace"], "q2": ["Grace_Hopper", "z"]})
    assert missing == 0 and len(warnings) == 1
    assert "none of the 3 documents retrieved for the 2 judged queries appears in their qrels" in warnings[0]
    assert "query 'q1' retrieved 'Ada_Lovelace'; its qrels judge 'Ada Lovelace'" in warnings[0]


def test_warns_when_nothing_was_retrieved_and_counts_judged_documents_missing_from_the_corpus() -> None:
    warnings, missing = judgement_warnings(QRELS, {}, corpus_ids={"Ada Lovelace"})
    assert missing == 2
    assert warnings[0] == "no document was retrieved for any of the 2 judged queries, so every metric is 0"
    assert warnings[1].startswith("2 of the 3 documents the qrels judge are not in the corpus (e.g. 'Charles Babbage')")

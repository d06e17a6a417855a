"""The CLI end to end, and every kind of bad input named in the contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsearch import Index
from sparsearch.cli import app

runner = CliRunner()


def cli(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def test_index_search_info_eval_end_to_end(scifact_slice: Path, tmp_path: Path) -> None:
    out = tmp_path / "idx"
    r = cli("index", scifact_slice, "--out", out, "--no-progress")
    assert r.exit_code == 0, r.output
    assert "indexed 1500 documents" in r.output
    r = cli("search", out, "vitamin D deficiency", "-k", "3", "--json")
    assert r.exit_code == 0, r.output
    payload = json.loads(r.output)
    assert len(payload["hits"]) == 3
    assert payload["hits"][0]["score"] >= payload["hits"][1]["score"] >= payload["hits"][2]["score"]
    assert all(h["title"] for h in payload["hits"])
    r = cli("info", out)
    assert json.loads(r.output)["n_docs"] == 1500
    report = tmp_path / "report.json"
    run = tmp_path / "run.trec"
    r = cli("eval", scifact_slice, "--index", out, "--report", report, "--run", run)
    assert r.exit_code == 0, r.output
    rep = json.loads(report.read_text())
    assert set(rep["metrics"]) == {"ndcg_cut_10", "recall_100", "recall_1000", "recip_rank"}
    for key in ("build_seconds", "qps_1_thread", "qps_all_threads", "latency_ms", "index_bytes", "peak_rss_bytes"):
        assert key in rep
    assert rep["latency_ms"]["p99"] >= rep["latency_ms"]["p50"] > 0
    assert 0.3 < rep["metrics"]["ndcg_cut_10"] <= 1.0
    assert run.read_text().count("\n") > 0


def test_eval_builds_when_no_index_given(scifact_slice: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    r = cli("eval", scifact_slice, "--report", report, "--no-speed", "-k", "100")
    assert r.exit_code == 0, r.output
    rep = json.loads(report.read_text())
    assert rep["build_seconds"] > 0 and rep["n_docs"] == 1500


def test_real_console_script(scifact_slice: Path, tmp_path: Path) -> None:
    """The installed ``sparsearch`` entry point, as a user runs it."""
    exe = Path(sys.executable).parent / "sparsearch"
    out = tmp_path / "idx"
    r = subprocess.run([str(exe), "index", str(scifact_slice / "corpus.jsonl"), "--out", str(out), "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe), "search", str(out), "coronary heart disease"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 10


def write_corpus(path: Path, lines: list[str | bytes]) -> Path:
    with open(path, "wb") as f:
        for line in lines:
            f.write((line.encode() if isinstance(line, str) else line) + b"\n")
    return path


GOOD = json.dumps({"_id": "a", "title": "t", "text": "good text"})


@pytest.mark.parametrize(
    "lines,expected",
    [
        ([GOOD, '{"_id": "b", "text": "unclosed'], "corpus.jsonl:2: malformed JSON"),
        ([GOOD, '["a list"]'], "corpus.jsonl:2: expected a JSON object"),
        ([GOOD, '{"title": "x", "text": "y"}'], "corpus.jsonl:2, field '_id': missing"),
        ([GOOD, '{"_id": "b", "title": 5, "text": "y"}'], "corpus.jsonl:2, field 'title': must be a string"),
        ([GOOD, '{"_id": "b", "text": null}'], "corpus.jsonl:2, field 'text': must be a string"),
        ([GOOD, '{"_id": "b", "title": "x"}'], "corpus.jsonl:2, field 'text': missing"),
        ([GOOD, GOOD], "corpus.jsonl:2, field '_id': duplicate _id 'a' (first seen on line 1)"),
        ([GOOD, b'{"_id": "b", "text": "caf\xe9"}'], "corpus.jsonl:2: not valid UTF-8"),
    ],
)
def test_bad_corpus_lines_name_file_line_and_field(tmp_path: Path, lines: list, expected: str) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", lines)
    r = cli("index", corpus, "--out", tmp_path / "idx", "--no-progress")
    assert r.exit_code == 2
    assert expected in r.output
    assert "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "idx" / "manifest.json").exists()


def test_empty_text_is_an_empty_document(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", [GOOD, '{"_id": "e", "title": "", "text": ""}', ""])
    r = cli("index", corpus, "--out", tmp_path / "idx", "--no-progress")
    assert r.exit_code == 0, r.output
    idx = Index.open(tmp_path / "idx")
    assert idx.n_docs == 2 and idx.inverted.stats.n_docs == 1  # N counts documents with terms, like Lucene
    assert idx.search("good", 5).ids == ["a"]


def test_existing_output_refused_then_overwritten(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", [GOOD])
    assert cli("index", corpus, "--out", tmp_path / "idx", "--no-progress").exit_code == 0
    r = cli("index", corpus, "--out", tmp_path / "idx", "--no-progress")
    assert r.exit_code == 2 and "already exists" in r.output
    assert cli("index", corpus, "--out", tmp_path / "idx", "--no-progress", "--overwrite").exit_code == 0


def test_failed_overwrite_keeps_the_previous_index(tmp_path: Path) -> None:
    good = write_corpus(tmp_path / "good.jsonl", [GOOD, json.dumps({"_id": "b", "text": "more text"})])
    assert cli("index", good, "--out", tmp_path / "idx", "--no-progress").exit_code == 0
    bad = write_corpus(tmp_path / "bad.jsonl", [GOOD, "{oops"])
    r = cli("index", bad, "--out", tmp_path / "idx", "--no-progress", "--overwrite")
    assert r.exit_code == 2 and "bad.jsonl:2" in r.output
    idx = Index.open(tmp_path / "idx")
    assert idx.n_docs == 2
    assert set(idx.search("text", 5).ids) == {"a", "b"}


def test_corrupt_index_on_search_is_one_line(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", [GOOD])
    cli("index", corpus, "--out", tmp_path / "idx", "--no-progress")
    (tmp_path / "idx" / "manifest.json").write_text("{")
    r = cli("search", tmp_path / "idx", "good")
    assert r.exit_code == 2 and "corrupt manifest" in r.output


def test_empty_query_prints_no_hits(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", [GOOD])
    cli("index", corpus, "--out", tmp_path / "idx", "--no-progress")
    r = cli("search", tmp_path / "idx", "")
    assert r.exit_code == 0 and "no hits" in r.output
    r = cli("search", tmp_path / "idx", "   ", "--json")
    assert json.loads(r.output)["hits"] == []


def test_missing_corpus(tmp_path: Path) -> None:
    r = cli("index", tmp_path / "nope.jsonl", "--out", tmp_path / "idx")
    assert r.exit_code == 2 and "no such corpus file" in r.output


def test_add_delete_merge_commands(tmp_path: Path) -> None:
    first = write_corpus(tmp_path / "a.jsonl", [GOOD, json.dumps({"_id": "b", "text": "second text"})])
    more = write_corpus(tmp_path / "b.jsonl", [json.dumps({"_id": "a", "text": "replaced words"}),
                                               json.dumps({"_id": "c", "text": "third text"})])
    assert cli("index", first, "--out", tmp_path / "idx", "--no-progress").exit_code == 0
    r = cli("add", tmp_path / "idx", more)
    assert r.exit_code == 0 and "added 2 documents; 3 in the index, 2 segments" in r.output
    r = cli("delete", tmp_path / "idx", "b", "nope")
    assert r.exit_code == 0 and "deleted 1 of 2 ids; 2 documents left" in r.output
    r = cli("merge", tmp_path / "idx")
    assert r.exit_code == 0 and "1 segments" in r.output
    idx = Index.open(tmp_path / "idx")
    assert sorted(idx.search("text words", 5).ids) == ["a", "c"]
    assert idx.search("good", 5).ids == []
    r = cli("add", tmp_path / "idx", tmp_path / "missing.jsonl")
    assert r.exit_code == 2 and "no such corpus file" in r.output

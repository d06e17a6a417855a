"""``sparsearch eval`` on ids with spaces, its id-mismatch warnings, and bounded ``-k`` (issue 14 items 12, 13).

The dataset is four documents whose ids are people's names, small enough
that the ranking, and so NDCG@10, can be worked out by hand.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import pytrec_eval
from typer.testing import CliRunner

from sparsearch import Index
from sparsearch.cli import app
from sparsearch.errors import InputError
from sparsearch.eval.beir import EvalSettings, effective_k, evaluate_beir
from sparsearch.types import Document

runner = CliRunner()

CORPUS = [
    {"_id": "Ada Lovelace", "title": "", "text": "notes on the analytical engine"},
    {"_id": "Charles Babbage", "title": "", "text": "designed the analytical engine and the difference engine"},
    {"_id": "Grace Hopper", "title": "", "text": "wrote the first compiler"},
    {"_id": "Alan Turing", "title": "", "text": "universal machine and computability"},
]
QUERIES = {
    "q1": "analytical engine notes",  # Ada (all three terms, "notes" is rare) above Babbage
    "q 2": "compiler",  # only Grace Hopper
    "q3": "difference engine",  # Babbage (both terms, engine twice) above Ada (engine once)
}
# BEIR layout: tab-separated with header and CRLF line ends, as BEIR ships them.
QRELS_ROWS = [("q1", "Ada Lovelace", 1), ("q1", "Charles Babbage", 2), ("q 2", "Grace Hopper", 1),
              ("q3", "Ada Lovelace", 1)]

# By hand (trec_eval gain = grade, discount log2(rank + 1)):
#   q1: ranking Ada (1), Babbage (2): DCG = 1 + 2/log2(3); ideal Babbage, Ada: IDCG = 2 + 1/log2(3)
#   q 2: Grace Hopper at rank 1: 1
#   q3: ranking Babbage (unjudged), Ada (1): DCG = 1/log2(3); IDCG = 1
NDCG = {"q1": (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)), "q 2": 1.0, "q3": 1 / math.log2(3)}
MEAN_NDCG = sum(NDCG.values()) / 3  # 0.7069


def write_dataset(root: Path, qrels_rows: list[tuple[str, str, int]] = QRELS_ROWS,
                  queries: dict[str, str] = QUERIES) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in CORPUS), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()),
                                        encoding="utf-8")
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels_rows]
    (root / "qrels" / "test.tsv").write_bytes(("\r\n".join(rows) + "\r\n").encode("utf-8"))
    return root


def _documents() -> list[Document]:
    return [Document(d["_id"], d["title"], d["text"], {}) for d in CORPUS]


@pytest.fixture
def names(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "names")


def cli(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def test_ids_with_spaces_evaluate_to_the_hand_computed_ndcg(names: Path, tmp_path: Path) -> None:
    index = Index.build(iter(_documents()), path=tmp_path / "idx")
    rankings = {q: index.search(text, 10) for q, text in QUERIES.items()}
    assert rankings["q1"].ids == ["Ada Lovelace", "Charles Babbage"]  # the order the hand computation assumes
    assert rankings["q 2"].ids == ["Grace Hopper"]
    assert rankings["q3"].ids == ["Charles Babbage", "Ada Lovelace"]

    report = evaluate_beir(names, tmp_path / "idx", settings=EvalSettings(measure_speed=False))
    assert report["metrics"]["ndcg_cut_10"] == pytest.approx(MEAN_NDCG, abs=1e-6)
    assert report["warnings"] == [] and report["qrels_docs_not_in_index"] == 0

    # pytrec_eval itself, on the qrels as written (not as sparsearch parsed them) and the engine's scores.
    qrels: dict[str, dict[str, int]] = {}
    for q, d, s in QRELS_ROWS:
        qrels.setdefault(q, {})[d] = s
    run = {q: {d: float(s) for d, s in zip(h.ids, h.scores)} for q, h in rankings.items()}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    assert {q: v["ndcg_cut_10"] for q, v in per_query.items()} == pytest.approx(NDCG, abs=1e-6)


def test_cli_eval_on_ids_with_spaces(names: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    r = cli("eval", names, "--no-speed", "--report", report)
    assert r.exit_code == 0, r.output
    assert f"NDCG@10 {MEAN_NDCG:.4f}" in r.stdout and "(3 queries)" in r.stdout
    assert r.stderr == ""
    assert json.loads(report.read_text())["metrics"]["ndcg_cut_10"] == pytest.approx(MEAN_NDCG, abs=1e-6)


def test_cli_eval_refuses_a_run_file_that_cannot_hold_the_ids(names: Path, tmp_path: Path) -> None:
    run = tmp_path / "run.trec"
    r = cli("eval", names, "--no-speed", "--run", run)
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and "query id 'q 2' contains whitespace" in r.output
    assert not run.exists()


def test_cli_eval_run_file_names_the_query_and_document(tmp_path: Path) -> None:
    """Query ids without spaces pass the early check; the document id is refused when the run is written."""
    data = write_dataset(tmp_path / "d", [("q1", "Ada Lovelace", 1)], queries={"q1": QUERIES["q1"]})
    run = tmp_path / "run.trec"
    r = cli("eval", data, "--no-speed", "--run", run)
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert "query 'q1': document id 'Ada Lovelace' contains whitespace" in r.output
    assert not run.exists()


MISMATCHED = [("q1", "Ada_Lovelace", 1), ("q 2", "Grace_Hopper", 1), ("q3", "Ada_Lovelace", 1)]


def test_eval_warns_on_mismatched_ids(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = write_dataset(tmp_path / "mismatch", MISMATCHED)
    with caplog.at_level(logging.WARNING, logger="sparsearch.eval.beir"):
        report = evaluate_beir(data, settings=EvalSettings(measure_speed=False))
    assert report["metrics"]["ndcg_cut_10"] == 0.0
    assert report["qrels_docs_not_in_index"] == 2
    messages = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert len(messages) == 2
    assert "none of the 5 documents retrieved for the 3 judged queries appears in their qrels" in messages[0]
    assert "2 of the 2 documents the qrels judge are not in the corpus" in messages[1]

    r = cli("eval", data, "--no-speed")
    assert r.exit_code == 0, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("warning: ") for line in lines)
    assert "corpus ids and the qrels corpus-ids probably differ" in lines[0]
    assert "2 of the 2 documents the qrels judge are not in the corpus (e.g. 'Ada_Lovelace')" in lines[1]


def test_eval_counts_judged_documents_missing_from_the_corpus(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "missing", QRELS_ROWS + [("q1", "Nobody Here", 1)])
    r = cli("eval", data, "--no-speed")
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == ["warning: 1 of the 4 documents the qrels judge are not in the corpus "
                                     "(e.g. 'Nobody Here'); they can never be retrieved, so recall stays below 1"]


# ---------------------------------------------------------------- -k bounds (item 13)


@pytest.fixture
def small_index(tmp_path: Path) -> Path:
    Index.build(iter(_documents()), path=tmp_path / "idx")
    return tmp_path / "idx"


def test_search_k_beyond_the_corpus_is_clamped(small_index: Path) -> None:
    r = cli("search", small_index, "analytical engine compiler", "-k", 10**12, "--json")
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)["hits"]
    # Every document with a query term, once: all there are (Alan Turing has none of them).
    assert sorted(h["_id"] for h in hits) == ["Ada Lovelace", "Charles Babbage", "Grace Hopper"]


@pytest.mark.parametrize("k", [0, -3])
def test_search_k_below_one_is_one_line(small_index: Path, k: int) -> None:
    r = cli("search", small_index, "engine", "-k", k)
    assert r.exit_code == 2
    assert r.output == f"error: k must be at least 1, got {k}\n"


def test_eval_k_is_clamped_and_checked(names: Path, small_index: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    r = cli("eval", names, "--index", small_index, "-k", 10**12, "--report", report)  # speed measured at k too
    assert r.exit_code == 0, r.output
    rep = json.loads(report.read_text())
    assert rep["k"] == 4 and rep["metrics"]["ndcg_cut_10"] == pytest.approx(MEAN_NDCG, abs=1e-6)
    r = cli("eval", names, "--index", small_index, "-k", 0)
    assert r.exit_code == 2 and r.output == "error: k must be at least 1, got 0\n"


def test_effective_k() -> None:
    assert effective_k(10**12, 4) == 4
    assert effective_k(3, 4) == 3
    assert effective_k(5, 0) == 1  # an empty index still searches with k = 1 (no hits)
    with pytest.raises(InputError, match="k must be at least 1, got 0"):
        effective_k(0, 4)

"""The reproducibility matrix: a tiny dataset written here, entries that pass, deviate, fail and skip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsearch.cli import app
from sparsearch.repro import DEFAULT_MATRIX, MatrixError, load_matrix, select

runner = CliRunner()


def cli(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four judged queries: three find their one relevant document first, one (a word no document has) nothing,
    so BM25's NDCG@10 and Recall@100 are exactly 0.75."""
    root = tmp_path_factory.mktemp("repro") / "tiny"
    (root / "qrels").mkdir(parents=True)
    docs = [("d1", "apples grow on trees"), ("d2", "cherries are red"), ("d3", "figs are sweet fruit"),
            ("d4", "trees need water"), ("d5", "red sweet water")]
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n"
                                               for i, t in docs))
    queries = [("q1", "apple"), ("q2", "cherry"), ("q3", "fig"), ("q4", "zucchini")]
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t1\n"
                                             "q4\td4\t1\n")
    return root


def write_matrix(path: Path, entries: list[dict], defaults: dict | None = None) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"version": 1, "defaults": defaults or {"tolerance": 0.0005},
                                    "entries": entries}, sort_keys=False))
    return path


def entry(dataset: Path, name: str = "bm25-tiny", **over: object) -> dict:
    e = {"name": name, "dataset": str(dataset), "encoder": "bm25", "settings": {"k1": 0.9, "b": 0.4},
         "expected": {"ndcg@10": 0.75, "recall@100": 0.75}}
    e.update(over)
    return e


def test_matrix_passes_and_check_exits_0(tiny: Path, tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path / "m.yaml", [entry(tiny)])
    md = tmp_path / "repro.md"
    report = tmp_path / "r.json"
    r = cli("repro", "--matrix", matrix, "--check", "--markdown", md, "--report", report)
    assert r.exit_code == 0, r.output
    assert "bm25-tiny" in r.output and "DEVIATION" not in r.output
    assert "1 ok, 0 deviating, 0 failed, 0 skipped" in r.output
    rows = [line for line in r.output.splitlines() if line.startswith("bm25-tiny ")]
    assert len(rows) == 2 and all(line.split()[-1] == "ok" for line in rows)
    text = md.read_text()
    assert text.startswith("# Reproducibility matrix") and "| bm25-tiny |" in text and "0.7500" in text
    assert "do not edit by hand" in text
    saved = json.loads(report.read_text())
    [res] = saved["results"]
    assert res["status"] == "ok" and res["metrics"]["ndcg@10"]["measured"] == pytest.approx(0.75)
    assert "commit" in saved["environment"]
    # Re-rendered from the report against a matrix whose expectation changed: nothing runs, the deviation shows.
    stricter = write_matrix(tmp_path / "m2.yaml", [entry(tiny, expected={"ndcg@10": 0.9, "recall@100": 0.75})])
    r = cli("repro", "--matrix", stricter, "--from-report", report, "--check", "--markdown", tmp_path / "again.md")
    assert r.exit_code == 1 and "DEVIATION" in r.output and "running" not in r.output
    assert "**0.7500**" in (tmp_path / "again.md").read_text()


def test_a_deviation_fails_check_but_not_a_plain_run(tiny: Path, tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path / "m.yaml", [entry(tiny), entry(tiny, "bm25-tiny-wrong",
                                                                   expected={"ndcg@10": 0.80, "recall@100": 0.75})])
    r = cli("repro", "--matrix", matrix, "--check")
    assert r.exit_code == 1, r.output
    deviating = [line for line in r.output.splitlines() if line.startswith("bm25-tiny-wrong ")]
    assert any("NDCG@10" in line and "-0.0500" in line and line.endswith("DEVIATION") for line in deviating)
    assert any("R@100" in line and line.endswith("ok") for line in deviating)
    assert "1 ok, 1 deviating" in r.output
    r = cli("repro", "--matrix", matrix)  # without --check: the table, exit 0
    assert r.exit_code == 0 and "DEVIATION" in r.output
    # inside a looser tolerance the same value passes
    loose = write_matrix(tmp_path / "loose.yaml", [entry(tiny, expected={"ndcg@10": 0.80, "recall@100": 0.75},
                                                         tolerance={"ndcg@10": 0.06, "recall@100": 0.0})])
    assert cli("repro", "--matrix", loose, "--check").exit_code == 0


def test_only_slow_and_missing_data(tiny: Path, tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path / "m.yaml", [
        entry(tiny), entry(tiny, "bm25-tiny-slow", slow=True),
        entry(tmp_path / "no-such-set", "missing-data"),
    ])
    r = cli("repro", "--matrix", matrix, "--only", "bm25-*", "--check")
    assert r.exit_code == 0, r.output  # the slow one is skipped (a pattern does not pull it in)
    assert "1 ok, 0 deviating, 0 failed, 1 skipped" in r.output
    r = cli("repro", "--matrix", matrix, "--only", "bm25-tiny-slow", "--check")
    assert r.exit_code == 0 and "1 ok, 0 deviating, 0 failed, 0 skipped" in r.output  # named outright: runs
    r = cli("repro", "--matrix", matrix, "--only", "missing-data", "--check")
    assert r.exit_code == 1 and "missing-data: error: dataset" in r.output and "not found" in r.output
    r = cli("repro", "--matrix", matrix, "--only", "nope")
    assert r.exit_code == 2 and "--only nope: no such entry" in r.output


def test_json_matrix_and_dataset_relative_to_data_folder(tiny: Path, tmp_path: Path) -> None:
    matrix = tmp_path / "m.json"
    matrix.write_text(json.dumps({"entries": [entry(Path("tiny"), expected={"ndcg_cut_10": 0.75})]}))
    r = cli("repro", "--matrix", matrix, "--data", tiny.parent, "--check")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("bad, message", [
    ({"encoder": "tfidf"}, "unknown encoder"),
    ({"expected": {"map": 0.5}}, "unknown metric"),
    ({"expected": {"ndcg@10": 1.5}}, "expected ndcg@10 must be a number"),
    ({"encoder": "splade"}, "needs 'model'"),
    ({"settings": {"k3": 1.0}}, "bad settings for bm25"),
    ({"colour": "red"}, "unknown key"),
    ({"tolerance": {"ndcg@10": 0.1}}, "no tolerance for recall@100"),
    ({"k": 0}, "'k' must be an integer"),
])
def test_bad_matrix_is_one_line(tiny: Path, tmp_path: Path, bad: dict, message: str) -> None:
    matrix = write_matrix(tmp_path / "m.yaml", [entry(tiny, **bad)])
    r = cli("repro", "--matrix", matrix, "--check")
    if message.startswith("bad settings"):  # found when the entry runs: an error row, and --check fails
        assert r.exit_code == 1 and message in r.output
    else:
        assert r.exit_code == 2 and r.output.startswith("error: ") and message in r.output, r.output


def test_duplicate_names_and_missing_file(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(MatrixError, match="two entries are named"):
        load_matrix(write_matrix(tmp_path / "m.yaml", [entry(tiny), entry(tiny)]))
    r = cli("repro", "--matrix", tmp_path / "absent.yaml")
    assert r.exit_code == 2 and "no such matrix file" in r.output


def test_shipped_matrix_is_valid() -> None:
    """configs/repro.yaml parses; BM25 runs by default, the learned entries are slow and name the shipped model."""
    matrix = load_matrix(DEFAULT_MATRIX)
    names = {e.name for e in matrix.entries}
    assert {"bm25-scifact", "bm25-nfcorpus", "bm25-cisi", "bm25-cranfield"} <= names
    runs = {e.name: run for e, run in select(matrix)}
    assert all(runs[n] for n in names if n.startswith("bm25-"))
    learned = [e for e in matrix.entries if e.encoder == "inference-free"]
    assert len(learned) == 4 and all(e.slow for e in learned)
    biomed = [e for e in learned if e.model == "models/inference-free-biomed"]
    general = [e for e in learned if e.model == "models/inference-free-general"]
    assert len(biomed) == 2 and all(e.settings == {"doc_threshold": 0.1} for e in biomed)
    assert {e.dataset for e in general} == {"classic/cranfield", "classic/cisi"}
    assert all(e.settings == {"idf": "collection"} for e in general)
    assert all(set(e.expected) == {"ndcg@10", "recall@100"} for e in matrix.entries)


@pytest.mark.slow
@pytest.mark.real_data
def test_shipped_matrix_reproduces_bm25(data_root: Path) -> None:
    """The four BM25 rows against the real data (the learned rows: ``sparsearch repro --slow --check``)."""
    r = cli("repro", "--data", data_root, "--only", "bm25-*", "--check")
    assert r.exit_code == 0, r.output
    assert "4 ok, 0 deviating, 0 failed" in r.output

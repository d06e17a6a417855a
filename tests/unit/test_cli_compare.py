"""``sparsearch compare``: per-query values from pytrec_eval, a missed query counting 0, and the paired tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsearch.cli import app
from sparsearch.cli_common import EXIT_USER_ERROR
from sparsearch.cli_compare import compare_runs

pytest.importorskip("scipy")

QRELS = "q1 0 d1 1\nq2 0 d2 1\nq3 0 d3 2\nq3 0 d4 1\nq4 0 d5 1\n"
# A: d1 first for q1, d2 first for q2, d3 then d4 for q3, d5 first for q4.
RUN_A = ("q1 Q0 d1 1 3.0 a\nq1 Q0 d9 2 2.0 a\nq2 Q0 d2 1 5.0 a\nq3 Q0 d3 1 4.0 a\nq3 Q0 d4 2 3.0 a\n"
         "q4 Q0 d5 1 1.0 a\n")
# B: q1's relevant document second, q2 the same as A, q3 the same, q4 missing (counts 0).
RUN_B = "q1 Q0 d9 1 3.0 b\nq1 Q0 d1 2 2.0 b\nq2 Q0 d2 1 5.0 b\nq3 Q0 d3 1 4.0 b\nq3 Q0 d4 2 3.0 b\n"


def write(tmp_path: Path) -> tuple[Path, Path, Path]:
    paths = tmp_path / "qrels.txt", tmp_path / "a.run", tmp_path / "b.run"
    for path, text in zip(paths, (QRELS, RUN_A, RUN_B)):
        path.write_text(text)
    return paths


def test_means_and_differences_by_hand(tmp_path: Path) -> None:
    qrels, a, b = write(tmp_path)
    result = compare_runs(qrels, a, b)
    # A is perfect on every query; B loses q1 (relevant at rank 2: 1/log2(3)) and q4 (missed: 0).
    assert result["queries"] == 4
    assert result["mean_a"] == pytest.approx(1.0)
    assert result["mean_b"] == pytest.approx((1 / math.log2(3) + 1 + 1 + 0) / 4)
    assert result["difference"] == pytest.approx(result["mean_b"] - 1.0)
    assert (result["better"], result["worse"], result["ties"]) == (0, 2, 2)
    mrr = compare_runs(qrels, a, b, measure="recip_rank")
    assert mrr["mean_b"] == pytest.approx((0.5 + 1 + 1 + 0) / 4)


def test_a_run_against_itself_differs_by_nothing(tmp_path: Path) -> None:
    qrels, a, _ = write(tmp_path)
    result = compare_runs(qrels, a, a)
    assert result["difference"] == 0.0 and result["t_test_p"] == 1.0 and result["randomization_p"] == 1.0
    assert result["ties"] == 4


def test_by_rank_orders_by_the_rank_column(tmp_path: Path) -> None:
    qrels, a, _ = write(tmp_path)
    swapped = tmp_path / "swapped.run"  # scores say d9 first, ranks say d1 first
    swapped.write_text(RUN_A.replace("q1 Q0 d1 1 3.0 a", "q1 Q0 d1 1 1.0 a"))
    assert compare_runs(qrels, a, swapped)["worse"] == 1
    assert compare_runs(qrels, a, swapped, by_rank=True)["difference"] == 0.0


def test_the_command_prints_json_and_names_bad_input(tmp_path: Path) -> None:
    qrels, a, b = write(tmp_path)
    runner = CliRunner()
    out = runner.invoke(app, ["compare", str(qrels), str(a), str(b), "--json", "--rounds", "2000"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == compare_runs(qrels, a, b, rounds=2000)
    text = runner.invoke(app, ["compare", str(qrels), str(a), str(b)])
    assert text.exit_code == 0 and "B better on 0, worse on 2, tied on 2" in text.output
    bad = runner.invoke(app, ["compare", str(qrels), str(a), str(b), "--measure", "map"])
    assert bad.exit_code == EXIT_USER_ERROR and "unknown measure 'map'" in bad.output
    other = tmp_path / "other.run"
    other.write_text("x1 Q0 d1 1 1.0 o\n")
    wrong = runner.invoke(app, ["compare", str(qrels), str(a), str(other)])
    assert wrong.exit_code == EXIT_USER_ERROR and "no query of this run is judged" in wrong.output
    broken = tmp_path / "broken.run"
    broken.write_text("q1 Q0 d1 1 1.0 a\nq2 Q0 d2 one 2.0\n")
    failed = runner.invoke(app, ["compare", str(qrels), str(a), str(broken)])
    assert failed.exit_code == EXIT_USER_ERROR and "broken.run:2: expected 6" in failed.output

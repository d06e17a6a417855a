"""The learned-sparse side of the CLI: eval with --encoder splade|inference-free, and train."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from sparsearch.cli import app
from sparsearch.corpus import read_corpus

from .plain import idf_query_vector, plain_splade

runner = CliRunner()


def cli(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def test_eval_inference_free_report(inference_free_mlm: Path, eval_slice: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    r = cli("eval", eval_slice, "--encoder", "inference-free", "--model", inference_free_mlm, "--report", report,
            "--no-speed", "--device", "cpu", "--max-length", 128, "--k", 100)
    assert r.exit_code == 0, r.output
    rep = json.loads(report.read_text(encoding="utf-8"))
    assert rep["encoder"]["name"] == "inference-free" and rep["n_docs"] == 200
    assert rep["encoder"]["model_dir"] == str(inference_free_mlm.resolve())
    assert rep["encode_docs_per_second"] > 0
    assert "latency_ms" not in rep and "qps_1_thread" not in rep  # --no-speed

    # Non-zeros per document and postings touched per query, recomputed from plain vectors.
    docs = list(read_corpus(eval_slice))
    vectors, pooled = plain_splade(inference_free_mlm, [d.contents for d in docs], max_length=128, return_pooled=True)
    vectors[:, :5] = 0.0  # special tokens are dropped from inference-free documents
    nonzero = vectors > 0
    edge = (np.abs(pooled) < 1e-5) & ~nonzero
    edge[:, :5] = False
    # (a weight within 1e-5 of the ReLU edge may fall either way; with none, the bounds are one number)
    assert nonzero.sum() / 200 <= rep["avg_nonzeros_per_doc"] <= (nonzero.sum() + edge.sum()) / 200
    df = nonzero.sum(axis=0)
    idf = json.loads((inference_free_mlm / "idf.json").read_text(encoding="utf-8"))
    queries = [json.loads(line)["text"] for line in (eval_slice / "queries.jsonl").read_text().splitlines()]
    assert rep["n_queries"] == len(queries) > 0
    touched = [df[idf_query_vector(inference_free_mlm, q, idf, vectors.shape[1]) > 0].sum() for q in queries]
    assert rep["avg_postings_touched_per_query"] == pytest.approx(np.mean(touched), rel=1e-3)
    assert rep["avg_nonzeros_per_query"] == pytest.approx(
        np.mean([(idf_query_vector(inference_free_mlm, q, idf, vectors.shape[1]) > 0).sum() for q in queries]))
    assert "non-zeros per document" in r.stdout and "docs/s" in r.stdout


def test_index_doc_threshold_prunes_postings(inference_free_mlm: Path, eval_slice: Path, tmp_path: Path) -> None:
    """``index --doc-threshold t`` keeps exactly the document weights above t (static pruning at build time)."""
    from sparsearch import Index

    docs = list(read_corpus(eval_slice))
    vectors = plain_splade(inference_free_mlm, [d.contents for d in docs], max_length=128)
    vectors[:, :5] = 0.0  # special tokens are dropped from inference-free documents
    t = float(np.median(vectors[vectors > 0]))  # drops about half the postings
    common = ("--encoder", "inference-free", "--model", inference_free_mlm, "--device", "cpu", "--max-length", 128,
              "--no-progress")
    assert cli("index", eval_slice, "--out", tmp_path / "full", *common).exit_code == 0
    r = cli("index", eval_slice, "--out", tmp_path / "pruned", *common, "--doc-threshold", t)
    assert r.exit_code == 0, r.output
    full, pruned = Index.open(tmp_path / "full"), Index.open(tmp_path / "pruned")
    assert pruned.info()["encoder"]["doc_threshold"] == t  # recorded in the manifest
    near = int((np.abs(vectors - t) < 1e-5).sum())  # float32 vs plain float64 rounding may tip these either way
    assert (vectors > t).sum() - near <= pruned.inverted.n_postings <= (vectors > t).sum() + near
    assert pruned.inverted.n_postings < 0.6 * full.inverted.n_postings
    # What is kept scores as before: a query's scores over the pruned index never exceed the full index's.
    query = docs[0].contents[:200]
    top_full, top_pruned = full.search(query, 200), pruned.search(query, 200)
    full_scores = dict(zip(top_full.ids, top_full.scores))
    assert all(s <= full_scores[i] + 1e-5 for i, s in zip(top_pruned.ids, top_pruned.scores))
    one_line_error(cli("index", eval_slice, "--out", tmp_path / "bad", *common, "--doc-threshold", -1),
                   "doc_threshold")
    assert not (tmp_path / "bad").exists()


def test_eval_splade_without_model_is_a_one_line_error(eval_slice: Path) -> None:
    one_line_error(cli("eval", eval_slice, "--encoder", "splade", "--no-speed"), "--model")
    one_line_error(cli("eval", eval_slice, "--encoder", "dense", "--no-speed"), "--model")
    # (inference-free without --model uses the general shipped model: tests/learned/test_default_model.py)


def test_eval_bad_model_and_encoder(eval_slice: Path, tmp_path: Path, tiny_mlm: Path) -> None:
    one_line_error(cli("eval", eval_slice, "--encoder", "splade", "--model", tmp_path / "nope"), "no such folder")
    one_line_error(cli("eval", eval_slice, "--encoder", "colbert", "--model", tiny_mlm), "unknown encoder")
    # An MLM folder without idf.json cannot make inference-free queries: say how to make one.
    one_line_error(cli("eval", eval_slice, "--encoder", "inference-free", "--model", tiny_mlm, "--no-speed"),
                   "sparsearch idf")


def tiny_config(tiny_mlm: Path, train_slice: Path, out: Path, **extra: object) -> dict:
    return {"kind": "inference-free", "base_model": str(tiny_mlm), "out_dir": str(out), "datasets": [str(train_slice)],
            "teachers": ["bm25"], "steps": 3, "batch_size": 2, "negatives_per_query": 1, "max_length": 32,
            "lambda_warmup_steps": 1, "lr": 1e-3, "lr_warmup_steps": 1, "bf16": False, "device": "cpu",
            "log_every": 1, "checkpoint_every": 2, **extra}


def test_train_command_writes_the_model(tiny_mlm: Path, train_slice: Path, tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_mlm, train_slice, tmp_path / "out")), encoding="utf-8")
    r = cli("train", config)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    model = tmp_path / "out" / "model"
    assert summary["model_dir"] == str(model) and summary["steps"] == 3 and summary["resumed_from"] == 0
    assert {"config.json", "model.safetensors", "tokenizer.json", "idf.json"} <= {p.name for p in model.iterdir()}
    assert not (tmp_path / "out" / "checkpoint").exists()
    assert len((tmp_path / "out" / "train_log.jsonl").read_text().splitlines()) == 3
    # The trained folder is a working inference-free model: eval runs on it.
    r = cli("eval", train_slice, "--split", "train", "--encoder", "inference-free", "--model", model, "--no-speed",
            "--device", "cpu", "--max-length", 32)
    assert r.exit_code == 0, r.output


def test_train_unknown_key_exits_2_naming_it(tiny_mlm: Path, train_slice: Path, tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_mlm, train_slice, tmp_path / "out", learning_rate=0.1)),
                      encoding="utf-8")
    one_line_error(cli("train", config), "learning_rate", str(config))
    assert not (tmp_path / "out").exists()


def test_train_config_errors(tmp_path: Path) -> None:
    one_line_error(cli("train", tmp_path / "missing.yaml"), "not found")
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "splade",', encoding="utf-8")
    one_line_error(cli("train", bad), "not valid JSON")

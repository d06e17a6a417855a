"""Vectors in and out: JsonVectorCollection import, Anserini / jsonl / OpenSearch export, round trips."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sparsearch import Index
from sparsearch.cli import app
from sparsearch.corpus import read_corpus
from sparsearch.errors import InputError
from sparsearch.retriever.bm25 import BM25Encoder
from sparsearch.vectors_io import build_from_vectors, export_index, read_vector_collection, search_vectors

runner = CliRunner()

WORDS = ("protein cell gene tumor cancer blood heart brain liver kidney muscle bone skin lung virus bacteria "
         "infection immune response signal pathway expression regulation mutation therapy treatment drug dose "
         "trial patient risk outcome survival disease diabetes insulin glucose lipid vitamin calcium iron diet "
         "stress enzyme membrane channel growth repair damage structure binding memory sleep exercise").split()


def cli(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 generated documents (Zipf-ish word choice, varied lengths, repeated words): no data folder needed."""
    rng = random.Random(7)
    weights = [1.0 / (i + 1) for i in range(len(WORDS))]
    rows = []
    for i in range(400):
        n = rng.randint(3, 80)
        rows.append({"_id": f"d{i}", "title": " ".join(rng.choices(WORDS, weights, k=3)),
                     "text": " ".join(rng.choices(WORDS, weights, k=n))})
    return write_jsonl(tmp_path_factory.mktemp("gen") / "corpus.jsonl", rows)


@pytest.fixture(scope="module")
def queries() -> list[str]:
    rng = random.Random(11)
    return [" ".join(rng.sample(WORDS, rng.randint(1, 5))) for _ in range(60)] + ["the proteins of cells"]


@pytest.fixture(scope="module")
def bm25_index(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Index:
    return Index.build(read_corpus(corpus), path=tmp_path_factory.mktemp("bm25") / "idx")


# ---------------------------------------------------------------- import


def test_import_pyserini_layout_scores_are_dot_products(tmp_path: Path) -> None:
    vectors = write_jsonl(tmp_path / "vectors.jsonl", [
        {"id": "a", "contents": "first", "vector": {"apple": 3, "pear": 1.5}},
        {"_id": "b", "contents": "second", "vector": {"apple": 1, "fig": 2.25, "zero": 0}},
        {"id": 7, "_id": "7", "vector": {"fig": 0.5, "##s": 4}},
        {"id": "empty", "vector": {}},
    ])
    idx = build_from_vectors(vectors, tmp_path / "idx")
    assert idx.n_docs == 4 and idx.encoder.name == "precomputed"
    again = Index.open(tmp_path / "idx")
    hits = again.search("apple fig fig")  # whitespace analyzer: weight = count
    assert hits.as_dict() == pytest.approx({"b": 1 * 1 + 2 * 2.25, "a": 3.0, "7": 2 * 0.5})
    assert hits.ids == ["b", "a", "7"]
    [vh] = search_vectors(again, [{"##s": 0.5, "pear": 2.0, "unknown": 9.0}], k=10)
    assert vh.as_dict() == pytest.approx({"a": 3.0, "7": 2.0})
    assert again.get("a") == {"text": "first"}
    assert "zero" not in again.encoder.vocab  # zero weights are no postings and no tokens


def test_import_reads_folders_and_gzip(tmp_path: Path) -> None:
    folder = tmp_path / "collection"
    folder.mkdir()
    write_jsonl(folder / "part-0.jsonl", [{"id": "a", "vector": {"x": 1}}])
    with gzip.open(folder / "part-1.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"id": "b", "vector": {"x": 2}}) + "\n")
    (folder / "README.txt").write_text("not a vector file")
    assert [d.doc_id for d in read_vector_collection(folder)] == ["a", "b"]


@pytest.mark.parametrize("row, message", [
    ({"contents": "x", "vector": {"a": 1}}, "field 'id': missing"),
    ({"id": "a"}, "field 'vector': missing"),
    ({"id": "a", "vector": [1, 2]}, "must be an object"),
    ({"id": "a", "vector": {"t": -1}}, "must be finite and >= 0"),
    ({"id": "a", "vector": {"t": "1"}}, "must be a number"),
    ({"id": "a", "vector": {"t": True}}, "must be a number"),
    ({"id": "a", "vector": {"": 1}}, "non-empty strings"),
    ({"id": "a", "_id": "b", "vector": {}}, "disagree"),
    ({"id": "", "vector": {}}, "non-empty string"),
    ({"id": "a", "contents": 3, "vector": {}}, "field 'contents': must be a string"),
])
def test_import_errors_name_file_line_and_field(tmp_path: Path, row: dict, message: str) -> None:
    path = write_jsonl(tmp_path / "v.jsonl", [{"id": "ok", "vector": {"a": 1}}, row])
    with pytest.raises(InputError, match=message) as err:
        list(read_vector_collection(path))
    assert f"{path}:2" in str(err.value)
    r = cli("index", "--vectors", path, "--out", tmp_path / "idx", "--no-progress")
    assert r.exit_code == 2 and r.output.startswith("error: ") and message.split(":")[-1].strip() in r.output
    assert not (tmp_path / "idx" / "MANIFEST").exists()


def test_import_duplicate_ids_and_bad_json(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "v.jsonl", [{"id": "a", "vector": {}}, {"_id": "a", "vector": {}}])
    with pytest.raises(InputError, match="duplicate id 'a'"):
        list(read_vector_collection(path))
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "vector": {}}\n{"id": \n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: malformed JSON"):
        list(read_vector_collection(tmp_path / "bad.jsonl"))


def test_precomputed_index_refuses_documents_without_vectors(tmp_path: Path, corpus: Path) -> None:
    idx = build_from_vectors(write_jsonl(tmp_path / "v.jsonl", [{"id": "a", "vector": {"x": 1}}]), tmp_path / "idx")
    r = cli("add", tmp_path / "idx", corpus)
    assert r.exit_code == 2 and "vectors only" in r.output
    assert Index.open(tmp_path / "idx").n_docs == idx.n_docs == 1


def test_cli_index_vectors_search_and_query_vector(tmp_path: Path) -> None:
    vectors = write_jsonl(tmp_path / "v.jsonl", [{"id": "a", "contents": "A", "vector": {"x": 1, "y": 2}},
                                                 {"id": "b", "contents": "B", "vector": {"y": 1}}])
    r = cli("index", "--vectors", vectors, "--out", tmp_path / "idx", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "indexed 2 documents (2 terms, 3 postings)" in r.output
    r = cli("search", tmp_path / "idx", "y x", "--json")
    assert [h["_id"] for h in json.loads(r.output)["hits"]] == ["a", "b"]
    r = cli("search", tmp_path / "idx", "--query-vector", '{"y": 2.0}', "--json")
    payload = json.loads(r.output)
    assert payload["query"] == {"y": 2.0}
    assert [(h["_id"], h["score"]) for h in payload["hits"]] == [("a", 4.0), ("b", 2.0)]
    for bad, message in [('{"y": -1}', "must be finite"), ("[1]", "JSON object"), ("{", "not valid JSON")]:
        r = cli("search", tmp_path / "idx", "--query-vector", bad)
        assert r.exit_code == 2 and message in r.output, r.output
    r = cli("search", tmp_path / "idx")
    assert r.exit_code == 2 and "one of the two" in r.output
    r = cli("index", tmp_path / "v.jsonl", "--vectors", vectors, "--out", tmp_path / "idx2")
    assert r.exit_code == 2 and "not both" in r.output
    r = cli("index", "--out", tmp_path / "idx3")
    assert r.exit_code == 2 and "missing the corpus" in r.output
    r = cli("index", "--vectors", vectors, "--out", tmp_path / "idx4", "--encoder", "splade")
    assert r.exit_code == 2 and "do not apply" in r.output


def test_query_vector_on_a_bm25_index_is_a_bm25_query(bm25_index: Index, queries: list[str]) -> None:
    """``{term: count·idf}`` under BM25 scoring gives the text query's scores."""
    from sparsearch.retriever.bm25 import bm25_idf

    enc: BM25Encoder = bm25_index.encoder  # type: ignore[assignment]
    stats = bm25_index.inverted.stats
    for q in queries[:20]:
        vector: dict[str, float] = {}
        for t in enc.query_terms(q):
            vector[enc.vocab.terms[t]] = vector.get(enc.vocab.terms[t], 0.0) + 1.0
        vector = {t: c * float(bm25_idf(stats.doc_freq[[enc.vocab.get(t)]], stats.n_docs)[0]) for t, c in vector.items()}
        [by_vector] = search_vectors(bm25_index, [vector], k=10)
        by_text = bm25_index.search(q, k=10)
        assert by_vector.ids == by_text.ids
        np.testing.assert_allclose(by_vector.scores, by_text.scores, rtol=1e-6)


# ---------------------------------------------------------------- export and round trips


def _analyzed(index: Index, queries: list[str]) -> list[dict[str, float]]:
    enc: BM25Encoder = index.encoder  # type: ignore[assignment]
    out = []
    for q in queries:
        v: dict[str, float] = {}
        for t in enc.query_terms(q):
            v[enc.vocab.terms[t]] = v.get(enc.vocab.terms[t], 0.0) + 1.0
        out.append(v)
    return out


def test_bm25_jsonl_round_trip_same_top10_and_scores(bm25_index: Index, queries: list[str], tmp_path: Path) -> None:
    """BM25 impacts exported exactly, imported with the BM25 analyzer: the same top-10 and scores (float rounding)."""
    summary = export_index(bm25_index, tmp_path / "bm25.jsonl", "jsonl")
    assert summary.bm25_impacts and summary.documents == bm25_index.n_docs
    assert summary.postings == bm25_index.inverted.n_postings
    imported = build_from_vectors(tmp_path / "bm25.jsonl", tmp_path / "imp", "lucene-english")
    by_text = imported.search_batch(queries, k=10)
    by_vector = search_vectors(imported, _analyzed(bm25_index, queries), k=10)
    for original, text_hits, vector_hits in zip(bm25_index.search_batch(queries, k=10), by_text, by_vector):
        assert text_hits.ids == original.ids == vector_hits.ids
        np.testing.assert_allclose(text_hits.scores, original.scores, rtol=2e-6)
        np.testing.assert_allclose(vector_hits.scores, original.scores, rtol=2e-6)
    # and out again: the import's export is the same file, since dot-product weights are exported as stored
    export_index(imported, tmp_path / "again.jsonl", "jsonl")
    first = [json.loads(line) for line in (tmp_path / "bm25.jsonl").read_text().splitlines()]
    second = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    assert [(d["id"], d["vector"]) for d in first] == [(d["id"], d["vector"]) for d in second]


@pytest.mark.parametrize("scale", [None, 100.0])
def test_bm25_anserini_round_trip_top10_up_to_quantisation(bm25_index: Index, queries: list[str], tmp_path: Path,
                                                            scale: float | None) -> None:
    """Integer weights round(w·s): each imported score / s is within Σ count·0.5/s of BM25's, and the top-10
    differs only by documents whose BM25 scores lie within twice that of the 10th."""
    summary = export_index(bm25_index, tmp_path / "anserini.jsonl", "anserini", scale=scale)
    s = summary.scale
    assert s is not None and (scale is None and s == pytest.approx(255.0 / max_impact(bm25_index)) or s == scale)
    rows = [json.loads(line) for line in (tmp_path / "anserini.jsonl").read_text().splitlines()]
    assert set(rows[0]) == {"id", "contents", "vector"}
    assert all(isinstance(w, int) and 0 < w <= round(255 if scale is None else 10**6) for r in rows
               for w in r["vector"].values())
    assert summary.max_abs_error <= 0.5 / s + 1e-6
    imported = build_from_vectors(tmp_path / "anserini.jsonl", tmp_path / "imp", "lucene-english")
    vectors = _analyzed(bm25_index, queries)
    originals = bm25_index.search_batch(queries, k=bm25_index.n_docs)
    for v, original, hits in zip(vectors, originals, search_vectors(imported, vectors, k=10)):
        bound = sum(v.values()) * (summary.max_abs_error + 1e-6)
        exact = original.as_dict()
        for doc_id, score in zip(hits.ids, hits.scores):
            assert abs(score / s - exact[doc_id]) <= bound + 1e-5 * exact[doc_id]
        if len(original) >= 10:
            tenth = float(original.scores[9])
            assert all(exact[d] >= tenth - 2 * bound - 1e-5 for d in hits.ids)


def max_impact(index: Index) -> float:
    from sparsearch.vectors_io import index_vectors

    return max(float(part.rows.weights.max()) for part in index_vectors(index))


def test_opensearch_bulk_file(bm25_index: Index, tmp_path: Path) -> None:
    export_index(bm25_index, tmp_path / "exact.jsonl", "jsonl")
    r = cli("export", bm25_index.path, "--format", "opensearch", "--out", tmp_path / "bulk.ndjson",
            "--field", "splade", "--index-name", "docs")
    assert r.exit_code == 0, r.output
    lines = (tmp_path / "bulk.ndjson").read_text(encoding="utf-8").splitlines()
    exact = {d["id"]: d["vector"] for d in map(json.loads, (tmp_path / "exact.jsonl").read_text().splitlines())}
    assert len(lines) == 2 * len(exact)
    for action_line, source_line in zip(lines[::2], lines[1::2]):
        action = json.loads(action_line)
        assert list(action) == ["index"] and action["index"]["_index"] == "docs"
        source = json.loads(source_line)
        assert list(source)[0] == "splade" and "title" in source
        features = source["splade"]
        assert all(isinstance(w, float) and w > 0 for w in features.values())
        assert features == exact[action["index"]["_id"]]


def test_export_cli_gzip_scale_and_errors(bm25_index: Index, tmp_path: Path) -> None:
    r = cli("export", bm25_index.path, "--out", tmp_path / "v.jsonl.gz", "--scale", "10")
    assert r.exit_code == 0, r.output
    assert "round(w * 10)" in r.output and "BM25 impacts" in r.output
    with gzip.open(tmp_path / "v.jsonl.gz", "rt", encoding="utf-8") as f:
        first = json.loads(f.readline())
    assert all(isinstance(w, int) for w in first["vector"].values())
    assert len(list(read_vector_collection(tmp_path / "v.jsonl.gz"))) == bm25_index.n_docs
    for args, message in [(("--format", "lucene"), "unknown export format"), (("--scale", "0"), "positive"),
                          (("--format", "jsonl", "--scale", "3"), "anserini only")]:
        r = cli("export", bm25_index.path, "--out", tmp_path / "x.jsonl", *args)
        assert r.exit_code == 2 and message in r.output, r.output
        assert not (tmp_path / "x.jsonl").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_export_skips_deleted_documents_and_reads_every_segment(corpus: Path, tmp_path: Path) -> None:
    docs = list(read_corpus(corpus))
    idx = Index.build(docs[:200], path=tmp_path / "idx")
    idx.add(docs[200:300])
    idx.delete(["d0", "d250"])
    idx.commit()
    assert len(idx.inverted.segments) == 2
    export_index(idx, tmp_path / "v.jsonl", "jsonl")
    ids = [json.loads(line)["id"] for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert len(ids) == 298 and "d0" not in ids and "d250" not in ids and ids[-1] == "d299"
    imported = build_from_vectors(tmp_path / "v.jsonl", tmp_path / "imp", "lucene-english")
    for q in ["protein cell", "blood pressure heart"]:
        a, b = idx.search(q), imported.search(q)
        assert a.ids == b.ids
        np.testing.assert_allclose(a.scores, b.scores, rtol=2e-6)


def test_eval_with_query_vectors(tmp_path: Path) -> None:
    """``sparsearch eval --query-vectors``: the same metrics as the text queries they stand for."""
    ds = tmp_path / "ds"
    (ds / "qrels").mkdir(parents=True)
    write_jsonl(ds / "corpus.jsonl", [{"_id": f"d{i}", "text": w} for i, w in enumerate(WORDS[:30])])
    write_jsonl(ds / "queries.jsonl", [{"_id": "q1", "text": "protein"}, {"_id": "q2", "text": "gene"},
                                       {"_id": "q3", "text": "cancer"}])
    (ds / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\nq2\td2\t1\nq3\td0\t1\n")
    vectors = write_jsonl(tmp_path / "docs.jsonl", [{"id": f"d{i}", "vector": {w: 1.0}}
                                                    for i, w in enumerate(WORDS[:30])])
    assert cli("index", "--vectors", vectors, "--out", tmp_path / "idx", "--no-progress").exit_code == 0
    qv = write_jsonl(tmp_path / "q.jsonl", [{"id": "q1", "vector": {"protein": 2}}, {"id": "q2", "vector": {"gene": 1}},
                                            {"id": "q9", "vector": {"cell": 1}}])
    report = tmp_path / "r.json"
    r = cli("eval", ds, "--index", tmp_path / "idx", "--query-vectors", qv, "--report", report)
    assert r.exit_code == 0, r.output
    rep = json.loads(report.read_text())
    assert rep["metrics"]["ndcg_cut_10"] == pytest.approx(2 / 3)  # q3 has no vector: counts 0
    assert "1 of the 3 judged queries have no vector" in r.output
    r = cli("eval", ds, "--query-vectors", qv)
    assert r.exit_code == 2 and "--index" in r.output


def test_scifact_slice_round_trip(scifact_slice: Path, tmp_path: Path) -> None:
    """Real text: 1,500 SciFact documents, its test queries; jsonl exact, anserini within quantisation."""
    queries = [json.loads(line)["text"] for line in (scifact_slice / "queries.jsonl").read_text().splitlines()]
    idx = Index.build(read_corpus(scifact_slice), path=tmp_path / "idx")
    export_index(idx, tmp_path / "v.jsonl", "jsonl")
    imported = build_from_vectors(tmp_path / "v.jsonl", tmp_path / "imp", "lucene-english")
    for a, b in zip(idx.search_batch(queries, k=10), imported.search_batch(queries, k=10)):
        assert a.ids == b.ids
        np.testing.assert_allclose(a.scores, b.scores, rtol=2e-6)


@pytest.mark.parametrize("analyzer", ["whitespace", "lucene-english"])
def test_precomputed_encoder_contract(analyzer: str, tmp_path: Path) -> None:
    """The protocol, and save -> load through the registry giving the same vectors and query vectors."""
    from sparsearch.protocols import SparseEncoder
    from sparsearch.retriever.precomputed import PrecomputedEncoder
    from sparsearch.retriever.registry import encoder_class
    from sparsearch.types import Document

    enc = PrecomputedEncoder.for_query_analyzer(analyzer)
    assert isinstance(enc, SparseEncoder) and enc.scoring.transform == "linear"
    docs = [Document("a", text="x", metadata={"vector": {"protein": 1.5, "cell": 2}}),
            Document("b", metadata={"vector": {"cell": 0.25, "run": 3}})]
    batch = enc.encode_documents(docs)
    assert enc.n_terms == 3 and batch.term_ids.tolist() == [0, 1, 1, 2]
    files = {}
    for kind, data in enc.state_files().items():
        (tmp_path / kind).write_bytes(data)
        files[kind] = tmp_path / kind
    loaded = encoder_class("precomputed").load(enc.config(), files)
    again = loaded.encode_documents(docs)
    assert again.term_ids.tolist() == batch.term_ids.tolist() and again.weights.tolist() == batch.weights.tolist()
    q = "Running cells cell run"
    assert loaded.query_vector(q) == enc.query_vector(q)
    expected = {"Running": 1.0, "cells": 1.0, "cell": 1.0, "run": 1.0} if analyzer == "whitespace" else \
        {"run": 2.0, "cell": 2.0}
    assert enc.query_vector(q) == expected

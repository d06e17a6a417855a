"""Hybrid collections (BM25 + a dense bi-encoder) from Python and the CLI, and their one log.

The dense model is the tiny random BertModel the learned tests make, in a
sentence-transformers layout.  Every ranking is checked against an
independent computation: the sparse part against a plain BM25 index, the
dense part against NumPy inner products, the fusion against
:func:`~sparsearch.retriever.fusion.fuse` of those two rankings.  Crash
safety is simulated as the fault tests do: the process "dies" by dropping
its log and locks without a flush, at the moment under test.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss")

from typer.testing import CliRunner  # noqa: E402

from sparsearch import BM25Encoder, Document, Retriever  # noqa: E402
from sparsearch.cli import app  # noqa: E402
from sparsearch.errors import StorageError  # noqa: E402
from sparsearch.eval.metrics import evaluate  # noqa: E402
from sparsearch.eval.runs import ranking_run  # noqa: E402
from sparsearch.index.flush_scheduler import scheduler  # noqa: E402
from sparsearch.index.writer import LiveSettings  # noqa: E402
from sparsearch.retriever.dense import DenseConfig, DenseEncoder  # noqa: E402
from sparsearch.retriever.fusion import FusionConfig, fuse  # noqa: E402
from sparsearch.retriever.hybrid_collection import HybridCollection  # noqa: E402
from sparsearch.retriever.retriever import WAL_NAME  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))  # the sentence-transformers layout helper beside this file
from test_dense_encoder import write_st_layout  # noqa: E402

QUIET = LiveSettings(flush_docs=10**9, flush_seconds=10**9, flush_bytes=10**12)


class SimulatedCrash(BaseException):
    """The process dies here (a BaseException: nothing on the way catches it as an error)."""


@pytest.fixture(scope="module")
def model(bare_mlm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hybrid-dense") / "model"
    shutil.copytree(bare_mlm, folder)
    return write_st_layout(folder, "mean", normalize=True)


@pytest.fixture(scope="module")
def docs(tiny_texts: list[str]) -> list[Document]:
    return [Document(f"d{i}", f"title {i}", text, {"n": i % 3}) for i, text in enumerate(tiny_texts[:40])]


def dense(model: Path) -> DenseEncoder:
    return DenseEncoder(DenseConfig(model_dir=str(model), device="cpu"))


def numpy_dense(model: Path, docs: list[Document], query: str) -> dict[str, float]:
    """The dense ranking by NumPy: inner products of the encoder's own vectors."""
    encoder = dense(model)
    scores = encoder.encode_documents(docs) @ encoder.encode_queries([query])[0]
    return {d.doc_id: float(s) for d, s in zip(docs, scores)}


def expected_hybrid(model: Path, docs: list[Document], query: str, config: FusionConfig, k: int) -> Any:
    """Min-max (or other) fusion of a fresh BM25 index's ranking and NumPy's dense one."""
    bm25 = Retriever.build(docs, encoder=BM25Encoder()).search(query, len(docs))
    return fuse([bm25, numpy_dense(model, docs, query)], config, k=k)


def crash(collection: HybridCollection) -> None:
    """kill -9: no flush, no close — the log and the locks just go away."""
    group = collection.group
    assert group is not None
    scheduler().unregister(group)
    group._log.close()
    for part in collection.parts.values():
        part.writer._held.close()


def test_build_open_and_every_mode_against_independent_rankings(model: Path, docs: list[Document],
                                                               tmp_path: Path) -> None:
    built = HybridCollection.build(docs, tmp_path / "h", {"sparse": BM25Encoder(), "dense": dense(model)})
    query = docs[5].text[:60]
    bm25 = Retriever.build(docs, encoder=BM25Encoder()).search(query, 5)
    want_dense = sorted(numpy_dense(model, docs, query).items(), key=lambda x: -x[1])[:5]
    for collection in (built, HybridCollection.open(tmp_path / "h")):
        sparse = collection.search(query, 5, mode="sparse")
        assert sparse.ids == bm25.ids
        np.testing.assert_allclose(sparse.scores, bm25.scores, rtol=1e-6)
        got = collection.search(query, 5, mode="dense")
        assert got.ids == [d for d, _ in want_dense]
        np.testing.assert_allclose(got.scores, [s for _, s in want_dense], rtol=1e-4, atol=1e-5)
        hybrid = collection.search(query, 5)  # the stored default: hybrid, min-max, alpha 0.5
        want = expected_hybrid(model, docs, query, FusionConfig("minmax", alpha=0.5), 5)
        assert hybrid.ids == want.ids
        np.testing.assert_allclose(hybrid.scores, want.scores, rtol=1e-4, atol=1e-5)
        assert hybrid.fields(0)["title"] == collection.document(hybrid.ids[0]).title
    # Per-call options override the defaults.
    collection = HybridCollection.open(tmp_path / "h")
    for config, options in ((FusionConfig("zscore", alpha=0.2), {"fusion": "zscore", "alpha": 0.2}),
                            (FusionConfig("rrf", alpha=0.9), {"fusion": "rrf", "alpha": 0.9})):
        got = collection.search(query, 5, **options)
        want = expected_hybrid(model, docs, query, config, 5)
        assert got.ids == want.ids, options
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-4, atol=1e-6)


def test_prf_and_filters_through_the_collection(model: Path, docs: list[Document], tmp_path: Path) -> None:
    from sparsearch.retriever.hybrid import HybridRetriever, HybridSettings

    collection = HybridCollection.build(docs, tmp_path / "h", {"sparse": BM25Encoder(), "dense": dense(model)})
    sparse, dense_part = Retriever.open(tmp_path / "h" / "sparse"), Retriever.open(tmp_path / "h" / "dense")
    texts = {d.doc_id: d for d in docs}
    query = docs[9].text[:50]
    for prf in ("rm3", "rocchio", "both"):
        settings = HybridSettings(FusionConfig("minmax", alpha=0.5), depth=1000, prf=prf, fb_docs=3)
        want = HybridRetriever([sparse, dense_part], settings, texts.get).search(query, 8)
        got = collection.search(query, 8, prf=prf, fb_docs=3)
        assert got.ids == want.ids, prf
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
    # RM3 on the BM25 part alone scores with the expanded query's BM25 scores (no fusion).
    alone = collection.search(query, 5, mode="sparse", prf="rm3", fb_docs=3)
    assert alone.ids == HybridRetriever([sparse], HybridSettings(prf="rm3", fb_docs=3), texts.get).search(query, 5).ids
    filtered = collection.search(query, 40, filter={"field": "n", "eq": 1})
    assert filtered.ids and all(texts[i].metadata["n"] == 1 for i in filtered.ids)
    assert set(filtered.ids) == {d.doc_id for d in docs if d.metadata["n"] == 1}


def test_the_cli_builds_searches_and_evaluates_a_hybrid_collection(model: Path, docs: list[Document],
                                                                   tmp_path: Path) -> None:
    corpus = tmp_path / "data" / "corpus.jsonl"
    corpus.parent.mkdir()
    corpus.write_text("".join(json.dumps({"_id": d.doc_id, "title": d.title, "text": d.text}) + "\n" for d in docs))
    runner = CliRunner()
    out = tmp_path / "h"
    built = runner.invoke(app, ["index", str(corpus), "--out", str(out), "--dense-model", str(model),
                                "--device", "cpu", "--no-progress", "--alpha", "0.3"])
    assert built.exit_code == 0, built.output
    assert "hybrid collection" in built.stdout
    query = docs[2].text[:70]
    cases = [([], FusionConfig("minmax", alpha=0.3)),  # the default stored at build time
             (["--fusion", "zscore", "--alpha", "0.7"], FusionConfig("zscore", alpha=0.7))]
    for options, config in cases:
        found = runner.invoke(app, ["search", str(out), query, "-k", "4", "--json", *options])
        assert found.exit_code == 0, found.output
        hits = json.loads(found.stdout)["hits"]
        want = expected_hybrid(model, docs, query, config, 4)
        assert [h["_id"] for h in hits] == want.ids
        np.testing.assert_allclose([h["score"] for h in hits], want.scores, rtol=1e-4, atol=1e-5)
        assert hits[0]["title"] == next(d.title for d in docs if d.doc_id == want.ids[0])
    found = runner.invoke(app, ["search", str(out), query, "-k", "3", "--json", "--mode", "dense"])
    want_dense = sorted(numpy_dense(model, docs, query).items(), key=lambda x: -x[1])[:3]
    assert [h["_id"] for h in json.loads(found.stdout)["hits"]] == [d for d, _ in want_dense]

    # eval with the same options: the report's metrics are pytrec_eval's of the collection's own ranking.
    queries = {f"q{i}": docs[i].text[:60] for i in range(0, 40, 5)}
    (corpus.parent / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n"
                                                         for q, t in queries.items()))
    (corpus.parent / "qrels").mkdir()
    (corpus.parent / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\td{i}\t1\n" for i in range(0, 40, 5)))
    report = tmp_path / "report.json"
    done = runner.invoke(app, ["eval", str(corpus.parent), "--index", str(out), "--prf", "rocchio", "--k", "20",
                               "--no-speed", "--report", str(report)])
    assert done.exit_code == 0, done.output
    assert "[hybrid, minmax alpha 0.3, prf rocchio]" in done.stdout
    result = json.loads(report.read_text())
    collection = HybridCollection.open(out)
    run = ranking_run(list(queries), collection.search_batch(list(queries.values()), 20, prf="rocchio"))
    metrics = evaluate({q: {f"d{q[1:]}": 1} for q in queries}, run)
    assert result["metrics"] == pytest.approx(metrics)
    assert result["search"]["prf"] == "rocchio" and set(result["parts"]) == {"sparse", "dense"}


def test_a_plain_index_works_as_before_and_refuses_a_mode_it_lacks_in_one_line(docs: list[Document],
                                                                                tmp_path: Path) -> None:
    Retriever.build(docs, path=tmp_path / "plain", encoder=BM25Encoder())
    runner = CliRunner()
    query = docs[4].text[:50]
    want = Retriever.build(docs, encoder=BM25Encoder()).search(query, 5)
    for options in ([], ["--mode", "sparse"]):
        found = runner.invoke(app, ["search", str(tmp_path / "plain"), query, "-k", "5", "--json", *options])
        assert found.exit_code == 0, found.output
        hits = json.loads(found.stdout)["hits"]
        assert [h["_id"] for h in hits] == want.ids
        np.testing.assert_allclose([h["score"] for h in hits], want.scores, rtol=1e-6)
    for options, message in ((["--mode", "hybrid"], "mode 'hybrid' needs a sparse and a dense part"),
                             (["--mode", "dense"], "mode 'dense' needs a dense part"),
                             (["--prf", "rocchio"], "Rocchio moves dense query vectors"),
                             (["--mode", "both"], "unknown mode 'both'"),
                             (["--alpha", "1.5"], "alpha must lie in [0, 1]")):
        refused = runner.invoke(app, ["search", str(tmp_path / "plain"), query, *options])
        assert refused.exit_code == 2, refused.output
        assert refused.output.count("\n") == 1 and message in refused.output, refused.output
        assert refused.output.startswith("error: ")


def test_one_log_for_both_parts_and_a_restart(model: Path, docs: list[Document], tmp_path: Path) -> None:
    live = HybridCollection.create_live(tmp_path / "c", {"sparse": BM25Encoder(), "dense": dense(model)},
                                        settings=QUIET)
    live.upsert(docs[:20])
    assert live.delete(["d3", "nope"]) == ["d3"]
    records = (tmp_path / "c" / WAL_NAME).read_text().splitlines()
    assert len(records) == 2  # one upsert, one delete: logged once for both parts
    assert not (tmp_path / "c" / "sparse" / WAL_NAME).exists() and not (tmp_path / "c" / "dense" / WAL_NAME).exists()
    final = [d for d in docs[:20] if d.doc_id != "d3"]
    assert_both_parts_hold(live, final, model)
    assert live.get("d3") is None and live.document("d0") == docs[0]
    with pytest.raises(Exception, match="write through the collection"):
        live.parts["dense"].add(docs[30:31])  # a part alone cannot be written behind the log's back
    live.close()  # flushes both parts, then empties the log
    assert (tmp_path / "c" / WAL_NAME).stat().st_size == 0
    again = HybridCollection.open_live(tmp_path / "c", QUIET)
    assert_both_parts_hold(again, final, model)
    again.close()


def assert_both_parts_hold(collection: HybridCollection, final: list[Document], model: Path) -> None:
    """Both parts hold exactly ``final``, and rank it as fresh indexes of ``final`` would."""
    ids = {d.doc_id for d in final}
    for part in collection.parts.values():
        assert part.n_docs == len(ids)
    query = final[1].text[:60]
    got = collection.search(query, len(final), mode="dense")
    assert set(got.ids) == ids
    want = expected_hybrid(model, final, query, FusionConfig("minmax", alpha=0.5), 6)
    hybrid = collection.search(query, 6)
    assert hybrid.ids == want.ids
    np.testing.assert_allclose(hybrid.scores, want.scores, rtol=1e-4, atol=1e-5)


def test_a_crash_between_logging_and_applying_recovers_both_parts(model: Path, docs: list[Document],
                                                                   tmp_path: Path) -> None:
    live = HybridCollection.create_live(tmp_path / "c", {"sparse": BM25Encoder(), "dense": dense(model)},
                                        settings=QUIET)
    live.upsert(docs[:10])
    dense_writer = live.parts["dense"].writer
    prepare = dense_writer.prepare

    def dies_when_applied(request: Any, present: dict[str, bool]) -> Any:
        r, data, _ = prepare(request, present)

        def apply() -> None:
            raise SimulatedCrash()

        return r, data, apply

    dense_writer.prepare = dies_when_applied  # type: ignore[method-assign]
    with pytest.raises(SimulatedCrash):
        live.upsert(docs[10:15])  # logged; applied to the sparse part only; then the process dies
    # The moment of the crash: the sparse part holds the write (buffered), the dense part does not.
    assert live.parts["sparse"].get("d12") is not None and live.parts["dense"].get("d12") is None
    with pytest.raises(StorageError, match="reopen the collection"):
        live.upsert(docs[15:16])  # a collection that saw it refuses further writes
    crash(live)
    again = HybridCollection.open_live(tmp_path / "c", QUIET)
    assert_both_parts_hold(again, docs[:15], model)  # the logged write is in both
    again.close()


def test_a_crash_after_one_part_flushed_recovers_both(model: Path, docs: list[Document], tmp_path: Path) -> None:
    live = HybridCollection.create_live(tmp_path / "c", {"sparse": BM25Encoder(), "dense": dense(model)},
                                        settings=QUIET)
    live.upsert(docs[:12])
    live.delete(["d4"])
    dense_writer = live.parts["dense"].writer

    def refuses() -> None:
        raise StorageError("injected: the disk refused the dense part's commit")

    dense_writer.commit = refuses  # type: ignore[method-assign]
    with pytest.raises(StorageError, match="injected"):
        live.flush()
    assert (tmp_path / "c" / WAL_NAME).stat().st_size > 0  # kept: one part is not committed
    crash(live)
    again = HybridCollection.open_live(tmp_path / "c", QUIET)
    final = [d for d in docs[:12] if d.doc_id != "d4"]
    assert_both_parts_hold(again, final, model)
    again.flush()
    assert (tmp_path / "c" / WAL_NAME).stat().st_size == 0  # both durable: the log is emptied
    again.close()
    reopened = HybridCollection.open_live(tmp_path / "c", QUIET)
    assert_both_parts_hold(reopened, final, model)
    reopened.close()

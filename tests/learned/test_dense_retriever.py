"""A dense Retriever end to end: build, save, reopen (the encoder found again through the registry),
incremental writes through the one writer, and a live collection that survives kill -9.

Scores are checked against NumPy inner products of the encoder's own vectors.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss")

from sparsearch import Document, Retriever  # noqa: E402
from sparsearch.index.flush_scheduler import scheduler  # noqa: E402
from sparsearch.index.writer import LiveSettings  # noqa: E402
from sparsearch.retriever.dense import DenseConfig, DenseEncoder  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))  # the sentence-transformers layout helper beside this file
from test_dense_encoder import write_st_layout  # noqa: E402

from .plain import assert_same_top_k  # noqa: E402

QUIET = LiveSettings(flush_docs=10**9, flush_seconds=10**9, flush_bytes=10**12)


@pytest.fixture(scope="module")
def model(bare_mlm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dense-retriever") / "model"
    shutil.copytree(bare_mlm, folder)
    return write_st_layout(folder, "mean", normalize=True)


@pytest.fixture(scope="module")
def docs(tiny_texts: list[str]) -> list[Document]:
    return [Document(f"d{i}", "", text) for i, text in enumerate(tiny_texts[:60])]


def brute_force(encoder: DenseEncoder, docs: list[Document], query: str) -> np.ndarray:
    """NumPy inner products of the encoder's own vectors: every document's score for ``query``."""
    return encoder.encode_documents(docs) @ encoder.encode_queries([query])[0]


def assert_found(hits, docs: list[Document], scores: np.ndarray, k: int = 5) -> None:  # type: ignore[no-untyped-def]
    """The top ``k`` of ``scores``, ties aside: faiss and NumPy add float32 products in different orders, so two
    documents within rounding of the k-th score may swap (the untrained test model's vectors lie close together)."""
    assert (scores > 0).all()  # assert_same_top_k counts only positive scores as matches
    assert_same_top_k(hits, [d.doc_id for d in docs], scores, k, rtol=1e-4, atol=1e-5)


def test_build_save_open_and_incremental_writes(model: Path, docs: list[Document], tmp_path: Path) -> None:
    encoder = DenseEncoder(DenseConfig(model_dir=str(model), device="cpu"))
    built = Retriever.build(docs[:40], path=tmp_path / "idx", encoder=encoder)
    query = docs[3].text[:80]
    for retriever in (built, Retriever.open(tmp_path / "idx")):
        assert_found(retriever.search(query, 5), docs[:40], brute_force(encoder, docs[:40], query))
    assert Retriever.open(tmp_path / "idx").info()["format"] == "dense"

    reopened = Retriever.open(tmp_path / "idx")
    reopened.add(docs[40:])
    assert reopened.delete(["d3", "nope"]) == ["d3"]
    reopened.commit()
    final = [d for d in docs if d.doc_id != "d3"]
    assert_found(Retriever.open(tmp_path / "idx").search(query, 5), final, brute_force(encoder, final, query))


def test_a_live_dense_collection_recovers_its_log(model: Path, docs: list[Document], tmp_path: Path) -> None:
    encoder = DenseEncoder(DenseConfig(model_dir=str(model), device="cpu"))
    live = Retriever.create_live(tmp_path / "c", encoder, settings=QUIET)
    live.upsert(docs[:20])
    live.delete(["d5"])
    query = docs[7].text[:60]
    final = [d for d in docs[:20] if d.doc_id != "d5"]
    before = live.search(query, 4)
    assert_found(before, final, brute_force(encoder, final, query), 4)  # visible at once
    # kill -9: no flush, no close.
    scheduler().unregister(live.writer)
    live.writer._log.close()
    live.writer._held.close()
    again = Retriever.open_live(tmp_path / "c", QUIET)
    assert again.n_docs == 19 and again.search(query, 4).ids == before.ids  # the log replayed: the same answer
    assert again.document("d0") == docs[0]
    again.close()


def test_the_cli_indexes_and_searches_with_a_dense_encoder(model: Path, docs: list[Document],
                                                            tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from sparsearch.cli import app

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": d.doc_id, "title": d.title, "text": d.text}) + "\n"
                              for d in docs[:30]))
    runner = CliRunner()
    built = runner.invoke(app, ["index", str(corpus), "--out", str(tmp_path / "idx"), "--encoder", "dense",
                                "--model", str(model), "--device", "cpu", "--no-progress"])
    assert built.exit_code == 0, built.output
    query = docs[4].text[:70]
    found = runner.invoke(app, ["search", str(tmp_path / "idx"), query, "-k", "3", "--json"])
    assert found.exit_code == 0, found.output
    encoder = DenseEncoder(DenseConfig(model_dir=str(model), device="cpu"))
    opened = Retriever.open(tmp_path / "idx").search(query, 3)
    assert_found(opened, docs[:30], brute_force(encoder, docs[:30], query), 3)
    assert [h["_id"] for h in json.loads(found.stdout)["hits"]] == opened.ids
    checked = runner.invoke(app, ["check", str(tmp_path / "idx")])
    assert checked.exit_code == 0 and "ok:" in checked.stdout and "30 documents" in checked.stdout, checked.output
    from sparsearch.index.manifest import Manifest

    vectors = tmp_path / "idx" / Manifest.read(tmp_path / "idx").segments[0].name / "vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[-3] ^= 0x04  # one bit of one weight
    vectors.write_bytes(bytes(data))
    damaged = runner.invoke(app, ["check", str(tmp_path / "idx")])
    assert damaged.exit_code == 2 and "vectors.npy: checksum mismatch" in damaged.output
    refused = runner.invoke(app, ["index", str(corpus), "--out", str(tmp_path / "x"), "--encoder", "dense",
                                  "--model", str(model), "--doc-threshold", "0.1"])
    assert refused.exit_code == 2 and "not for --encoder dense" in refused.output

"""Inference-free queries weighted by the collection's own text IDF (``idf="collection"``), exact under writes.

The reference is always a recomputation from scratch: ``idf_table`` over the
texts of the documents that should be alive (the function that makes a
model's ``idf.json``), and for scores a NumPy dot product of plain
transformers SPLADE vectors (tests/learned/plain.py) with that IDF.  The
index-level bookkeeping without a model is tests/unit/test_text_tokens.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer
from typer.testing import CliRunner

from sparsearch.cli import app
from sparsearch.errors import InputError
from sparsearch.index.flush_scheduler import scheduler
from sparsearch.index.manifest import Manifest
from sparsearch.index.merge import MergePolicy
from sparsearch.index.writer import LiveSettings
from sparsearch.retriever.idf import idf_table, idf_vector
from sparsearch.retriever.inference_free import IdfQueryEncoder, InferenceFreeConfig, InferenceFreeEncoder
from sparsearch.retriever.registry import EncoderError, build_encoder
from sparsearch.retriever.retriever import Retriever
from sparsearch.types import Document

from .conftest import HAND_VOCAB
from .plain import assert_same_top_k, plain_splade
from .test_idf import CORPUS, EXPECTED

MAX_LENGTH = 64
SPECIAL = [0, 1, 2, 3, 4]  # [PAD] [UNK] [CLS] [SEP] [MASK] of the tiny tokenizers


def encoder(model_dir: Path, idf: str = "collection") -> InferenceFreeEncoder:
    return build_encoder("inference-free", {"model_dir": str(model_dir), "idf": idf, "device": "cpu",
                                            "max_length": MAX_LENGTH, "batch_size": 16})


def reference_weights(model_dir: Path, texts: list[str]) -> np.ndarray:
    """IDF by token id recomputed from scratch over ``texts`` (special tokens 0: idf_table leaves them out)."""
    vocab = Tokenizer.from_file(str(model_dir / "tokenizer.json")).get_vocab()
    return idf_vector(idf_table(texts, model_dir), vocab)


def assert_weights(index: Retriever, model_dir: Path, alive: dict[str, Document]) -> None:
    """The index's query weights, and the weights of encoded queries, equal IDF over the live texts."""
    want = reference_weights(model_dir, [d.contents for d in alive.values()])
    got = index.encoder.query_weights(index.snapshot.stats)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
    queries = [d.title or d.text[:60] for d in list(alive.values())[:3]] + ["[CLS] cells cells ☃ [SEP]"]
    batch = index.encode_queries(queries)
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    for i, q in enumerate(queries):
        ids, weights = batch.row(i)
        expected = sorted(set(tok.encode(q, add_special_tokens=False).ids) - set(SPECIAL))
        assert ids.tolist() == expected, q
        np.testing.assert_allclose(weights, want[expected], rtol=1e-6, atol=0)


def documents(texts: list[str], lo: int, hi: int) -> list[Document]:
    return [Document(f"d{i}", f"doc {i}", t) for i, t in zip(range(lo, hi), texts[lo:hi])]


# ---------------------------------------------------------------- by hand and on a fresh index


def test_token_sets_and_weights_by_hand(hand_tokenizer: Path) -> None:
    """The hand corpus of test_idf: sets and IDF counted by hand, [UNK] (zebra) is no token of the sets."""
    ids = {t: i for i, t in enumerate(HAND_VOCAB)}
    enc = IdfQueryEncoder(Tokenizer.from_file(str(hand_tokenizer / "tokenizer.json")), {"the": 1.0})
    sets = enc.token_sets(CORPUS)
    rows = [sorted(HAND_VOCAB[i] for i in sets.row(r).tolist()) for r in range(len(CORPUS))]
    assert rows == [["cell", "the"], ["##s", "cell", "protein"], ["gene", "the"], ["##s", "cell", "the"]]
    weights = enc.collection_weights(len(CORPUS), sets.doc_freq())
    for tok, value in EXPECTED.items():
        assert weights[ids[tok]] == pytest.approx(value, rel=1e-6), tok
    assert weights[[ids[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")]].tolist() == [0.0] * 5
    # Under collection weights every non-special token is a query term, even one the model's table lacks.
    batch = enc.encode(["the gene [CLS] zebra"], weights)
    assert batch.term_ids.tolist() == [ids["the"], ids["gene"]]
    assert batch.weights.tolist() == pytest.approx([EXPECTED["the"], EXPECTED["gene"]], rel=1e-6)
    assert enc.encode(["the gene"]).term_ids.tolist() == [ids["the"]]  # the model's table: only 'the'


def test_fresh_index_equals_idf_table_and_differs_from_the_model(inference_free_mlm: Path,
                                                                 tiny_texts: list[str]) -> None:
    docs = documents(tiny_texts, 0, 80)
    index = Retriever.build(docs, encoder=encoder(inference_free_mlm))
    assert_weights(index, inference_free_mlm, {d.doc_id: d for d in docs})
    model = InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(inference_free_mlm))).query_weights()
    assert not np.allclose(index.encoder.query_weights(index.snapshot.stats), model, rtol=1e-3)  # not vacuous


def test_collection_documents_keep_tokens_the_model_table_lacks(inference_free_mlm: Path,
                                                                tiny_texts: list[str], tmp_path: Path) -> None:
    """A token outside idf.json weighs 0 for the model (its postings are dropped) but not for the collection."""
    table = json.loads((inference_free_mlm / "idf.json").read_text(encoding="utf-8"))
    model = tmp_path / "model"
    import shutil

    shutil.copytree(inference_free_mlm, model)
    dropped = sorted(table)[:200]
    (model / "idf.json").write_text(json.dumps({t: w for t, w in table.items() if t not in dropped}))
    docs = documents(tiny_texts, 0, 20)
    vocab = Tokenizer.from_file(str(model / "tokenizer.json")).get_vocab()
    dropped_ids = {vocab[t] for t in dropped}
    by_model = encoder(model, "model").encode_documents(docs)
    by_collection = encoder(model, "collection").encode_documents(docs)
    assert not dropped_ids & set(by_model.term_ids.tolist())
    assert dropped_ids & set(by_collection.term_ids.tolist())
    assert by_model.text_tokens is None and by_collection.text_tokens is not None


# ---------------------------------------------------------------- exact under writes


def upsert_round(index: Retriever, rng: random.Random, texts: list[str], alive: dict[str, Document],
                 next_id: list[int]) -> None:
    """New documents, new texts for live ids, then deletes; ``alive`` follows."""
    batch: list[Document] = []
    for _ in range(rng.randint(2, 8)):
        if alive and rng.random() < 0.35:
            doc_id = rng.choice(sorted(alive))
        else:
            doc_id = f"d{next_id[0]}"
            next_id[0] += 1
        batch.append(Document(doc_id, f"title {rng.randrange(1000)}", rng.choice(texts)))
    index.add(batch)
    for d in batch:
        alive.pop(d.doc_id, None)
        alive[d.doc_id] = d
    gone = rng.sample(sorted(alive), min(len(alive) - 1, rng.randint(0, 4)))
    assert sorted(index.delete(gone + ["nobody"])) == sorted(gone)
    for doc_id in gone:
        del alive[doc_id]


def assert_scores(index: Retriever, model_dir: Path, alive: dict[str, Document], queries: list[str]) -> None:
    """Top 20 of every query equal the brute-force dot products of plain vectors with IDF recomputed from scratch."""
    ids = list(alive)
    contents = [alive[i].contents for i in ids]
    vectors = plain_splade(model_dir, contents, max_length=MAX_LENGTH)
    vectors[:, SPECIAL] = 0.0
    idf = reference_weights(model_dir, contents)
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    for q in queries:
        query = np.zeros(vectors.shape[1])
        terms = sorted(set(tok.encode(q, add_special_tokens=False).ids))
        query[terms] = idf[terms]
        assert_same_top_k(index.search(q, 20), ids, vectors @ query, 20)


def test_exact_under_adds_deletes_upserts_commits_merges_and_reopen(inference_free_mlm: Path,
                                                                    tiny_texts: list[str], tmp_path: Path) -> None:
    rng = random.Random(7)
    first = documents(tiny_texts, 0, 30)
    index = Retriever.build(first, path=tmp_path / "idx", encoder=encoder(inference_free_mlm))
    alive = {d.doc_id: d for d in first}
    next_id = [30]
    merges = 0
    for round_ in range(9):
        upsert_round(index, rng, tiny_texts, alive, next_id)
        index.commit()
        assert_weights(index, inference_free_mlm, alive)
        if round_ % 3 == 1:
            while index.merge(MergePolicy(merge_factor=2, max_deleted_fraction=0.1)):
                merges += 1
            assert_weights(index, inference_free_mlm, alive)
        if round_ % 3 == 2:
            index = Retriever.open(tmp_path / "idx")
            assert index.encoder.settings.idf == "collection"
            assert_weights(index, inference_free_mlm, alive)
    assert merges and index.n_segments >= 1
    assert_scores(index, inference_free_mlm, alive, [alive[i].text[:80] for i in list(alive)[::9]])


def crash(index: Retriever) -> None:
    """What ``kill -9`` leaves of a live collection: no flush, no close; descriptors and lock just go away."""
    writer = index.writer
    scheduler().unregister(writer)
    writer._log.close()  # type: ignore[union-attr]
    writer._held.close()
    writer._closed = True


def test_live_collection_exact_through_flushes_merges_and_recovery(inference_free_mlm: Path,
                                                                   tiny_texts: list[str], tmp_path: Path) -> None:
    rng = random.Random(11)
    settings = LiveSettings(flush_docs=12, flush_seconds=10**9, flush_bytes=10**12, merge=MergePolicy(merge_factor=2))
    index = Retriever.create_live(tmp_path / "c", encoder(inference_free_mlm), settings=settings)
    alive: dict[str, Document] = {}
    next_id = [0]
    recovered = 0
    for round_ in range(10):
        upsert_round(index, rng, tiny_texts, alive, next_id)
        assert_weights(index, inference_free_mlm, alive)  # visible at once, buffer and pending deletes included
        if round_ in (4, 8):
            recovered += index.writer.log_bytes() > 0
            crash(index)
            index = Retriever.open_live(tmp_path / "c", settings)  # the log replays through the encoder
            assert_weights(index, inference_free_mlm, alive)
    assert recovered and index.writer.committed.manifest.generation > 2
    assert_scores(index, inference_free_mlm, alive, [alive[i].text[:80] for i in list(alive)[::7]])
    index.close()
    reopened = Retriever.open(tmp_path / "c" / "index")
    assert_weights(reopened, inference_free_mlm, alive)


# ---------------------------------------------------------------- the option: manifest, default, CLI


def test_option_round_trips_through_the_manifest_and_default_pays_nothing(inference_free_mlm: Path,
                                                                         tiny_texts: list[str],
                                                                         tmp_path: Path) -> None:
    docs = documents(tiny_texts, 0, 20)
    Retriever.build(docs, path=tmp_path / "collection", encoder=encoder(inference_free_mlm))
    Retriever.build(docs, path=tmp_path / "model", encoder=encoder(inference_free_mlm, "model"))
    assert Manifest.read(tmp_path / "collection").encoder["config"]["idf"] == "collection"
    assert Manifest.read(tmp_path / "model").encoder["config"]["idf"] == "model"
    assert len(list((tmp_path / "collection").rglob("text_tokens.*.npy"))) == 2
    assert not list((tmp_path / "model").rglob("text_tokens*"))  # no sidecar without the option

    plain = Retriever.open(tmp_path / "model")
    assert plain.encoder.settings.idf == "model" and plain.snapshot.stats.text_doc_freq is None
    table = json.loads((inference_free_mlm / "idf.json").read_text(encoding="utf-8"))
    vocab = Tokenizer.from_file(str(inference_free_mlm / "tokenizer.json")).get_vocab()
    np.testing.assert_array_equal(plain.encoder.query_weights(plain.snapshot.stats), idf_vector(table, vocab))

    # A manifest written before the option (no "idf" in the encoder config) loads as "model".
    manifest = Manifest.read(tmp_path / "model")
    config = {k: v for k, v in manifest.encoder["config"].items() if k != "idf"}
    files = {kind: tmp_path / "model" / name for kind, name in manifest.encoder["files"].items()}
    assert InferenceFreeEncoder.load(config, files).settings.idf == "model"


def test_bad_value_names_the_field(inference_free_mlm: Path) -> None:
    with pytest.raises(InputError, match="field 'idf'.*'model', 'collection'.*'corpus'"):
        InferenceFreeConfig(model_dir=str(inference_free_mlm), idf="corpus")
    with pytest.raises(EncoderError, match="unknown setting 'idf' for encoder 'splade'"):
        build_encoder("splade", {"model_dir": str(inference_free_mlm), "idf": "collection"})


def test_queries_need_the_index_statistics(inference_free_mlm: Path, tiny_texts: list[str]) -> None:
    enc = encoder(inference_free_mlm)
    with pytest.raises(ValueError, match="statistics"):
        enc.encode_queries(["cells"])
    plain = Retriever.build(documents(tiny_texts, 0, 5), encoder=encoder(inference_free_mlm, "model"))
    with pytest.raises(ValueError, match="without their text tokens"):
        enc.encode_queries(["cells"], plain.snapshot.stats)


runner = CliRunner()


def test_cli_index_takes_idf_and_refuses_bad_values(inference_free_mlm: Path, tiny_texts: list[str],
                                                     eval_slice: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    docs = documents(tiny_texts, 0, 15)
    corpus.write_text("".join(json.dumps({"_id": d.doc_id, "title": d.title, "text": d.text}) + "\n" for d in docs))
    args = ["index", str(corpus), "--encoder", "inference-free", "--model", str(inference_free_mlm), "--device",
            "cpu", "--max-length", str(MAX_LENGTH), "--no-progress"]
    r = runner.invoke(app, args + ["--out", str(tmp_path / "idx"), "--idf", "collection"])
    assert r.exit_code == 0, r.output
    index = Retriever.open(tmp_path / "idx")
    assert index.encoder.settings.idf == "collection"
    assert_weights(index, inference_free_mlm, {d.doc_id: d for d in docs})

    for extra, needle in ((["--idf", "corpus"], "--idf must be one of model, collection, got 'corpus'"),
                          (["--idf", "collection", "--encoder", "bm25"], "not for --encoder bm25")):
        r = runner.invoke(app, args + ["--out", str(tmp_path / "bad")] + extra)
        assert r.exit_code == 2, r.output
        assert r.stderr.startswith("error: ") and needle in r.stderr and "Traceback" not in r.output
        assert not (tmp_path / "bad").exists()
    # eval builds with --idf too; an existing index keeps the weighting it was built with.
    report = tmp_path / "report.json"
    r = runner.invoke(app, ["eval", str(eval_slice), "--encoder", "inference-free", "--model", str(inference_free_mlm),
                            "--idf", "collection", "--device", "cpu", "--max-length", str(MAX_LENGTH), "--no-speed",
                            "--k", "10", "--report", str(report)])
    assert r.exit_code == 0, r.output
    assert json.loads(report.read_text(encoding="utf-8"))["encoder"]["idf"] == "collection"
    r = runner.invoke(app, ["eval", str(eval_slice), "--index", str(tmp_path / "idx"), "--idf", "collection"])
    assert r.exit_code == 2 and "--idf applies when building" in r.stderr, r.output


@pytest.mark.parametrize("idf", ["model", "collection"])
def test_one_query_search_equals_its_row_of_a_batch(inference_free_mlm: Path, tiny_texts: list[str], idf: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Retriever.search takes the encoder's one-query row and the one-kernel path (InvertedIndex.hits_one).
    from sparsearch.index import small

    monkeypatch.setattr(small, "ENABLED", False)  # test-sized segments would take the NumPy path
    index = Retriever.build(documents(tiny_texts, 0, 120), encoder=encoder(inference_free_mlm, idf))
    stats = index.snapshot.stats
    queries = [t[:50] for t in tiny_texts[120:150]] + ["", "[CLS] cells cells ☃ [SEP]", "Ünïcödé naïve café"]
    expected = index.search_batch(queries, k=10, threads=1)
    for q, batch_hits in zip(queries, expected):
        term_ids, weights = index.encoder.encode_query(q, stats)
        row = index.encoder.encode_queries([q], stats)
        assert term_ids.tolist() == row.term_ids.tolist()
        assert weights.view(np.uint32).tolist() == row.weights.view(np.uint32).tolist()
        one = index.search(q, k=10)
        assert one.ids == batch_hits.ids
        assert one.scores.view(np.uint32).tolist() == batch_hits.scores.view(np.uint32).tolist()
    assert index.snapshot._single is not None

"""Teachers as pair scorers, candidate pools, validation-chosen checkpoints and ``sparsearch adapt`` end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sparsearch.corpus import read_corpus
from sparsearch.errors import InputError
from sparsearch.retriever.idf import idf_table, read_idf_json, write_idf_json
from sparsearch.retriever.registry import build_encoder
from sparsearch.retriever.retriever import Retriever
from sparsearch.index.config import IndexConfig
from sparsearch.training.adapt import AdaptConfig, adapt, micro_batch, pseudo_queries
from sparsearch.training.pools import mine_pools
from sparsearch.training.scorers import DenseScorer, bm25_scorer
from sparsearch.types import Document

from .conftest import make_tiny_mlm


@pytest.fixture(scope="module")
def corpus(tiny_texts: list[str]) -> list[Document]:
    return [Document(f"d{i}", t) for i, t in enumerate(tiny_texts[:150])]


@pytest.fixture(scope="module")
def queries(corpus: list[Document]) -> list[str]:
    return [" ".join(d.contents.split()[3:9]) for d in corpus[:40]]


def test_bm25_scorer_equals_the_index(corpus, queries) -> None:
    """Pair scores and top lists of the scorer are sparsearch's BM25 (unquantised index), exhaustively."""
    scorer = bm25_scorer(corpus, queries)
    index = Retriever.build(corpus, encoder=build_encoder("bm25"), config=IndexConfig(quantization="none"))
    top = scorer.top(20)
    for qi, hits in enumerate(index.search_batch(queries, k=len(corpus))):
        rows = np.array([int(i[1:]) for i in hits.ids])
        got = scorer.pairs(np.full(len(rows), qi), rows)
        np.testing.assert_allclose(got, hits.scores, rtol=1e-5, atol=1e-6)
        # The scorer's top 20 score as the index's 20 best (ties may reorder); past the matching documents,
        # random non-matching ones (score 0) fill the list.
        mine = np.sort(scorer.pairs(np.full(20, qi), top[qi]))[::-1]
        n = min(20, len(hits.scores))
        np.testing.assert_allclose(mine[:n], hits.scores[:n], rtol=1e-5, atol=1e-6)
        assert (mine[n:] == 0).all() and len(set(top[qi].tolist())) == 20


def test_pools_hold_positives_negatives_and_exact_teacher_scores(corpus, queries) -> None:
    rng = np.random.default_rng(3)
    emb_d = rng.normal(size=(len(corpus), 8)).astype(np.float32)
    emb_q = rng.normal(size=(len(queries), 8)).astype(np.float32)
    scorers = {"bm25": bm25_scorer(corpus, queries), "dense": DenseScorer("dense", emb_q, emb_d)}
    positives = [np.array([i, (i + 7) % len(corpus)]) for i in range(len(queries))]
    pools, negatives = mine_pools(scorers, positives, depth=10, min_negatives=7, n_docs=len(corpus))
    dense_top = np.argsort(-(emb_q @ emb_d.T), axis=1)[:, :10]
    for qi, pos in enumerate(positives):
        cands = pools.candidates(qi)
        assert set(pos) <= set(cands) and not set(pos) & set(negatives[qi])
        assert set(dense_top[qi]) - set(pos) <= set(negatives[qi])
        # float32 dot products summed in another order: absolute error ~1e-7 (matters only near 0)
        np.testing.assert_allclose(pools.lookup("dense", qi, cands), (emb_q[qi] @ emb_d[cands].T), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(pools.lookup("bm25", qi, cands[:3]),
                                   scorers["bm25"].pairs(np.full(3, qi), cands[:3]), rtol=1e-6)
    with pytest.raises(KeyError):
        outside = np.setdiff1d(np.arange(len(corpus)), pools.candidates(0))[:1]
        pools.lookup("bm25", 0, outside)
    # A corpus smaller than the depth: pools padded with random other documents up to min_negatives.
    small, small_neg = mine_pools({"dense": DenseScorer("dense", emb_q[:2], emb_d[:5])}, [np.array([0])] * 2,
                                  depth=2, miners=("dense",), min_negatives=4, n_docs=5)
    assert all(len(n) == 4 and 0 not in n for n in small_neg)


def test_pseudo_queries_are_spans_of_their_source(corpus) -> None:
    a = pseudo_queries(corpus, 60, random.Random(5), 4, 12)
    assert a == pseudo_queries(corpus, 60, random.Random(5), 4, 12)
    for text, row in zip(*a):
        words = text.split()
        assert 4 <= len(words) <= 12
        assert text in " ".join(corpus[row].contents.split())
    with pytest.raises(InputError, match="no document has 4"):
        pseudo_queries([Document("x", "too short")], 3, random.Random(0))


@pytest.fixture(scope="module")
def tiny_inference_free(tmp_path_factory, tiny_texts) -> Path:
    folder = make_tiny_mlm(tmp_path_factory.mktemp("tiny-if"), tiny_texts, seed=4)
    write_idf_json(idf_table(tiny_texts, folder), folder / "idf.json")
    return folder


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory, corpus) -> Path:
    folder = tmp_path_factory.mktemp("adapt-corpus")
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for d in corpus[:100]:
            f.write(json.dumps({"_id": d.doc_id, "title": "", "text": d.contents}) + "\n")
    return folder


def test_adapt_end_to_end_on_cpu(tiny_inference_free, corpus_dir, tmp_path) -> None:
    from safetensors.numpy import load_file

    out = adapt(AdaptConfig(model=str(tiny_inference_free), corpus=str(corpus_dir), out=str(tmp_path / "adapted"),
                            steps=4, batch_size=8, negatives_per_query=3, max_length=64, device="cpu",
                            max_queries=40, hard_negative_depth=10, lr=5e-3))
    texts = [d.contents for d in read_corpus(corpus_dir)]
    # Query weights: this corpus's IDF, not the model's.
    assert read_idf_json(out / "idf.json") == pytest.approx(idf_table(texts, tiny_inference_free))
    assert read_idf_json(out / "idf.json") != read_idf_json(tiny_inference_free / "idf.json")
    record = json.loads((out / "sparsearch_adapt.json").read_text())
    assert record["labels_used"].startswith("none") and record["teachers"] == ["bm25", "self"]
    assert record["pseudo_queries"] == 40 and record["steps"] == 4
    assert record["queries_per_pass"] == 4  # 8 a step on a CPU: two passes of 4, gradients added
    before = load_file(str(tiny_inference_free / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    changed = [k for k in before if k in after and not np.allclose(before[k], after[k].astype(before[k].dtype),
                                                                   atol=1e-3)]
    assert changed  # trained, not copied
    # The adapted folder loads wherever a model loads: here as an encoder, indexing and searching the corpus.
    index = Retriever.build(read_corpus(corpus_dir),
                            encoder=build_encoder("inference-free", {"model_dir": str(out), "device": "cpu"}))
    assert index.n_docs == 100 and len(index.search(texts[0][:60], k=5).ids) > 0
    assert not (tmp_path / "adapted.adapting").exists()
    with pytest.raises(InputError, match="not an empty folder"):
        adapt(AdaptConfig(model=str(tiny_inference_free), corpus=str(corpus_dir), out=str(out), steps=1))


def test_a_step_is_split_into_passes_on_a_cpu_only() -> None:
    """The default batch in one pass holds ~20 GB of activations: a CPU takes it in passes of at most 4 queries."""
    config = AdaptConfig(model="m", corpus="c", out="o")
    assert (config.batch_size, micro_batch(config, on_gpu=True), micro_batch(config, on_gpu=False)) == (32, 32, 4)
    assert micro_batch(AdaptConfig(model="m", corpus="c", out="o", batch_size=6), on_gpu=False) == 3
    assert micro_batch(AdaptConfig(model="m", corpus="c", out="o", batch_size=7), on_gpu=False) == 1
    assert micro_batch(AdaptConfig(model="m", corpus="c", out="o", batch_size=2), on_gpu=False) == 2
    assert micro_batch(AdaptConfig(model="m", corpus="c", out="o", micro_batch=8), on_gpu=False) == 8
    for bad in (5, 0, 2.0):
        with pytest.raises(InputError, match="micro_batch must divide"):
            AdaptConfig(model="m", corpus="c", out="o", micro_batch=bad)


def test_adapt_refuses_a_splade_folder_and_the_cli_reports_it(tiny_mlm, corpus_dir, tmp_path) -> None:
    from sparsearch.cli import app

    result = CliRunner().invoke(app, ["adapt", str(tiny_mlm), str(corpus_dir), "--out", str(tmp_path / "o"),
                                      "--device", "cpu"])
    assert result.exit_code != 0 and "inference-free model folder" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_adapts_to_the_bundled_sample_corpus(tiny_inference_free, tmp_path) -> None:
    """``sparsearch adapt`` on the corpus that ships with sparsearch (20 documents): 40 pseudo-queries, CPU."""
    from sparsearch.cli import app
    from sparsearch.quickstart import SAMPLE_CORPUS

    result = CliRunner().invoke(app, ["adapt", str(tiny_inference_free), str(SAMPLE_CORPUS), "--out",
                                      str(tmp_path / "m"), "--steps", "2", "--batch-size", "4", "--micro-batch", "2",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "m" / "sparsearch_adapt.json").read_text())
    assert record["documents"] == 20 and record["pseudo_queries"] == 40 and record["queries_per_pass"] == 2
    texts = [d.contents for d in read_corpus(SAMPLE_CORPUS)]
    assert read_idf_json(tmp_path / "m" / "idf.json") == pytest.approx(idf_table(texts, tiny_inference_free))


def test_a_dense_sentence_transformers_folder_is_a_training_base(tmp_path, tiny_texts) -> None:
    """all-MiniLM-style folders (modules.json: Transformer, Pooling, Normalize) start a student: its encoder
    gets a tied MLM head; sparse folders pass through unchanged."""
    import torch

    from sparsearch.training.base_model import trainable_base
    from sparsearch.training.config import DatasetSpec, TrainConfig
    from sparsearch.training.trainer import Student

    folder = make_tiny_mlm(tmp_path / "st", tiny_texts, bare=True)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    view = trainable_base(folder)
    assert view != folder and not (view / "modules.json").exists() and (view / "config.json").exists()
    config = TrainConfig(kind="inference-free", base_model=str(folder), out_dir=str(tmp_path / "o"),
                         datasets=(DatasetSpec(str(tmp_path)),), teachers=("bm25",))
    student = Student(config, idf_table(tiny_texts, folder), torch.device("cpu"))
    assert student.encode(["protein folding in cells"], 32).shape[1] == student.idf.shape[0]
    plain = make_tiny_mlm(tmp_path / "mlm", tiny_texts)
    assert trainable_base(plain) == plain


def test_dense_teacher_embeddings_saved_ahead_teach_like_the_teacher(tiny_inference_free, corpus_dir, tmp_path,
                                                                      tiny_texts) -> None:
    """Embeddings saved by one run (on a CPU) stand for the dense teacher in another (on a GPU), checked to match."""
    from sparsearch.cli import app
    from sparsearch.training.adapt import corpus_and_pseudo_queries, save_dense_embeddings
    from sparsearch.training.scorers import dense_scorer
    from sparsearch.training.teacher_embeddings import load_teacher_scorer

    teacher = make_tiny_mlm(tmp_path / "dense", tiny_texts, bare=True, seed=5)
    config = AdaptConfig(model=str(tiny_inference_free), corpus=str(corpus_dir), out=str(tmp_path / "a"),
                         steps=2, batch_size=4, negatives_per_query=3, max_length=64, device="cpu", max_queries=40,
                         hard_negative_depth=10)
    path = save_dense_embeddings(config, str(teacher), tmp_path / "teacher.npz")
    documents, queries, _ = corpus_and_pseudo_queries(config)
    saved = load_teacher_scorer(path, documents, queries, "cpu")
    direct = dense_scorer(teacher, documents, queries, "cpu")
    rng = np.random.default_rng(0)
    q_rows, d_rows = rng.integers(0, len(queries), 300), rng.integers(0, len(documents), 300)
    np.testing.assert_allclose(saved.pairs(q_rows, d_rows), direct.pairs(q_rows, d_rows), atol=2e-3)  # float16
    # Another seed draws other pseudo-queries: the file is refused, not misused.
    other = AdaptConfig(model=config.model, corpus=config.corpus, out=config.out, max_queries=40, seed=14)
    docs2, queries2, _ = corpus_and_pseudo_queries(other)
    with pytest.raises(InputError, match="other documents or pseudo-queries"):
        load_teacher_scorer(path, docs2, queries2, "cpu")
    with pytest.raises(InputError, match="not both"):
        AdaptConfig(model=config.model, corpus=config.corpus, out=config.out, dense_teacher=str(teacher),
                    dense_embeddings=str(path))
    out = adapt(AdaptConfig(**{**config.__dict__, "dense_embeddings": str(path)}))
    assert json.loads((out / "sparsearch_adapt.json").read_text())["teachers"] == ["bm25", "dense", "self"]
    # The CLI saves the same file (and asks for the teacher it embeds with).
    runner = CliRunner()
    result = runner.invoke(app, ["adapt", str(tiny_inference_free), str(corpus_dir), "--max-queries", "40",
                                 "--device", "cpu", "--dense-teacher", str(teacher), "--save-dense-embeddings",
                                 str(tmp_path / "cli.npz")])
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "cli.npz") as a, np.load(path) as b:
        assert str(a["fingerprint"]) == str(b["fingerprint"]) and np.array_equal(a["queries"], b["queries"])
    result = runner.invoke(app, ["adapt", str(tiny_inference_free), str(corpus_dir), "--save-dense-embeddings",
                                 str(tmp_path / "x.npz")])
    assert result.exit_code != 0 and "needs --dense-teacher" in result.output

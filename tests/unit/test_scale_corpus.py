"""Unit tests for benchmarks/scale_corpus.py.

They fit a tiny model on made-up corpora, so they need neither the apt
dictionaries nor the BEIR data, and run in about a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark_scripts import load_benchmark  # tests/fixtures (on sys.path through tests/conftest.py)

sc = load_benchmark("scale_corpus")


def _toy_corpus(rng: np.random.Generator, n_docs: int, mean_len: int, n_types: int
                ) -> list[tuple[str, str]]:
    """Zipf-ish bag-of-words documents with a few hapaxes, for a quick fit."""
    ranks = np.arange(1, n_types + 1)
    p = 1.0 / ranks ** 1.1
    p /= p.sum()
    docs = []
    for _ in range(n_docs):
        n_title = int(rng.integers(1, 6))
        n_text = int(rng.integers(mean_len // 2, mean_len * 3 // 2))
        words = rng.choice(n_types, size=n_title + n_text, p=p)
        toks = [f"w{w}" for w in words]
        docs.append((" ".join(toks[:n_title]), " ".join(toks[n_title:])))
    return docs


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory):
    rng = np.random.default_rng(123)
    vocab: dict[str, int] = {}
    profiles = [
        sc.profile_corpus("long", _toy_corpus(rng, 150, 60, 3000), vocab),
        sc.profile_corpus("short", _toy_corpus(rng, 300, 12, 3000), vocab),
    ]
    pool = [{"_id": f"q{i}", "text": f"query {i}", "test": i < 5} for i in range(20)]
    model = sc.fit_model(profiles, pool, weighting="corpus", min_count=2, seed=0,
                         calibration_tokens=20_000)
    path = tmp_path_factory.mktemp("model") / "tiny.npz"
    sc.save_model(model, path)
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_model_roundtrip_is_small_and_sane(tiny_model: Path) -> None:
    model = sc.load_model(tiny_model)
    assert tiny_model.stat().st_size < 1_000_000
    assert np.isclose(model.head_prob.sum(), 1.0)
    assert 0.0 < model.tail_mass < 0.5
    assert model.tail_alpha > 1.0
    assert 0.0 <= model.burst < 0.95
    assert np.isclose(model.len_prob.sum(), 1.0)
    assert model.info["postings_per_token"]["model"] == pytest.approx(
        model.info["postings_per_token"]["real"], abs=0.02)


def test_generation_is_deterministic_and_counts(tiny_model: Path, tmp_path: Path) -> None:
    model = sc.load_model(tiny_model)
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    stats = sc.generate_synthetic(model, 200, seed=7, corpus_path=a, progress=False)
    sc.generate_synthetic(model, 200, seed=7, corpus_path=b, progress=False)
    sc.generate_synthetic(model, 200, seed=8, corpus_path=c, progress=False)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()

    docs = _read(a)
    assert len(docs) == 200 == stats["n_docs"]
    assert [d["_id"] for d in docs] == [str(i) for i in range(200)]
    assert all(set(d) == {"_id", "title", "text"} for d in docs)

    # The generator's own statistics are what a tokenizer sees in the file.
    lengths = [len(sc.tokenize(d["title"])) + len(sc.tokenize(d["text"])) for d in docs]
    vocab = {w for d in docs for w in sc.tokenize(d["title"] + " " + d["text"])}
    assert sum(lengths) == stats["n_tokens"]
    assert len(vocab) == stats["vocab"]


def test_length_mean_matches_model(tiny_model: Path, tmp_path: Path) -> None:
    model = sc.load_model(tiny_model)
    out = tmp_path / "corpus.jsonl"
    sc.generate_synthetic(model, 200, seed=1, corpus_path=out, progress=False)
    lengths = np.array([len(sc.tokenize(d["title"])) + len(sc.tokenize(d["text"]))
                        for d in _read(out)])
    doc_len = model.len_pairs.sum(axis=1)
    sd = np.sqrt(model.len_prob @ (doc_len - model.mean_doc_len) ** 2)
    # 4 standard errors of the mean of 200 draws
    assert abs(lengths.mean() - model.mean_doc_len) < 4 * sd / np.sqrt(200)


def test_smaller_corpus_is_prefix_of_larger(tiny_model: Path, tmp_path: Path) -> None:
    model = sc.load_model(tiny_model)
    small, large = tmp_path / "s.jsonl", tmp_path / "l.jsonl"
    sc.generate_synthetic(model, 120, seed=3, corpus_path=small, progress=False)
    sc.generate_synthetic(model, 200, seed=3, corpus_path=large, progress=False)
    assert large.read_text().splitlines()[:120] == small.read_text().splitlines()


def test_make_synthetic_caches_by_meta(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "syn"
    meta = sc.make_synthetic(tiny_model, n=50, seed=0, n_queries=8, out_dir=out)
    assert meta["queries"] == {"test": 5, "non_test": 3}
    queries = _read(out / "queries.jsonl")
    assert len(queries) == 8 and len({q["_id"] for q in queries}) == 8
    mtime = (out / "corpus.jsonl").stat().st_mtime_ns
    sc.make_synthetic(tiny_model, n=50, seed=0, n_queries=8, out_dir=out)
    assert (out / "corpus.jsonl").stat().st_mtime_ns == mtime  # skipped
    meta2 = sc.make_synthetic(tiny_model, n=50, seed=1, n_queries=8, out_dir=out)
    assert meta2["seed"] == 1 and json.loads((out / "meta.json").read_text())["seed"] == 1


def test_pseudo_words_vectorised_match_reference() -> None:
    ranks = np.array([0, 1, 74, 75, 75 ** 4 - 1, 75 ** 4, 123_456_789, 10 ** 15])
    pool, lengths = sc._encode_pseudo(ranks, clash=np.array([75], dtype=np.int64))
    words = []
    pos = 0
    for n in lengths:
        words.append(pool[pos:pos + n].tobytes().decode())
        pos += n
    expected = [sc.pseudo_word(int(r)) for r in ranks]
    expected[3] += "x"  # the clashing rank gets the marker
    assert words == expected
    assert all(sc._pseudo_rank(sc.pseudo_word(int(r))) == r for r in ranks)
    assert len(set(words)) == len(words)


def test_query_sample_prefers_test_queries() -> None:
    pool = [{"_id": str(i), "text": f"q{i}", "test": i % 3 == 0} for i in range(30)]
    chosen, split = sc.sample_queries(pool, 15, seed=0)
    assert split == {"test": 10, "non_test": 5}
    assert {q["_id"] for q in chosen} >= {str(i) for i in range(0, 30, 3)}
    assert chosen == sc.sample_queries(pool, 15, seed=0)[0]
    with pytest.raises(ValueError):
        sc.sample_queries(pool, 31, seed=0)


def test_gcide_entry_cleaning() -> None:
    block = ('Spurt \\Spurt\\ (sp[^u]rt), n. [Cf. Icel. sprettr a spurt.]\n'
             '   A sudden and energetic effort; an {increased} exertion.\n'
             '   [1913 Webster] Spurtle\n')
    title, text = sc.clean_gcide_entry(block, "Spurt")
    assert title == "Spurt"
    assert text == ("n. [Cf. Icel. sprettr a spurt.] A sudden and energetic effort; "
                    "an increased exertion.")

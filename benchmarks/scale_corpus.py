"""Corpus generator for the sparsearch scaling benchmark.

The scaling benchmark asks how build time, index size, memory and query
throughput of our BM25 index grow, compared with bm25s, at 10^5, 10^6 and
10^7 documents.  No real collection of 10^7 documents fits our machines and
licences, so this module produces two kinds of corpora in BEIR layout
(``corpus.jsonl`` + ``queries.jsonl``):

``real``
    10^5 documents of genuine English prose: one document per entry of the
    GNU Collaborative International Dictionary of English (Debian package
    ``dict-gcide``) and per synset gloss of WordNet 3.0 (``wordnet-base``).
    It anchors the benchmark on text that no model produced.

``synthetic``
    N documents (10^6 by default, 10^7 streams to disk in fixed chunks)
    drawn from a small statistical model that is *fitted* on the real
    corpora: the joint (title, text) length distribution in words, and the
    lowercase unigram distribution extended by a Zipf tail of pseudo-words
    so that the vocabulary keeps growing with corpus size (Heaps' law).
    The fitted model is stored as one small ``.npz`` file so that a machine
    holding only the repository can generate 10^7 documents.

Queries for both modes are real SciFact + NFCorpus queries (test split
first).  No qrels are written: the scaling benchmark measures speed and size,
not retrieval quality.

Typical use::

    python benchmarks/scale_corpus.py real                # 10^5 docs
    python benchmarks/scale_corpus.py fit --model M.npz   # needs real data
    python benchmarks/scale_corpus.py synthetic --model M.npz --n 10000000
    python benchmarks/scale_corpus.py stats DIR/corpus.jsonl

Sizes and speed on one core: a synthetic corpus takes ~1.06 GB and ~45 s
per 10^6 documents (10^7: 10.6 GB, ~7 min, < 0.6 GB RAM).

Outputs go to ``~/.cache/sparsearch/scale/<mode>-<N>`` unless ``--out`` is
given; a run is skipped when ``meta.json`` there already describes the same
request, because regenerating 10^7 documents is minutes of wasted work.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for a run without install
from sparsearch.training.dictionaries import clean_gcide_entry, iter_gcide, iter_wordnet  # noqa: E402,F401

#: Bumped whenever the bytes produced for a given (mode, n, seed, model)
#: change, so that cached corpora made by an older generator are rebuilt.
GENERATOR_VERSION = 1

#: Format of the fitted model file; ``load_model`` refuses other versions.
MODEL_FORMAT_VERSION = 1

#: Synthetic documents are produced in chunks of this many documents, each
#: chunk from its own RNG stream ``default_rng([seed, chunk_index])``.  The
#: chunk size is part of the output definition (changing it changes the
#: corpus), and because of it the first M documents of a larger run are
#: exactly the M-document corpus: 10^5 is a prefix of 10^6, which is a
#: prefix of 10^7.
DOCS_PER_CHUNK = 10_000

DEFAULT_REAL_N = 100_000
DEFAULT_SYNTHETIC_N = 1_000_000
DEFAULT_N_QUERIES = 1_000
DEFAULT_SEED = 0

DEFAULT_CACHE_ROOT = Path.home() / ".cache" / "sparsearch" / "scale"
#: The fitted model is committed (584 KB) so that any machine with the repository alone
#: (the GPU machine included) generates the same synthetic corpora.
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "data" / "scale_model.npz"
DEFAULT_DATA_ROOT = Path(os.environ.get("SPARSEARCH_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
DEFAULT_GCIDE_DIR = Path("/usr/share/dictd")
DEFAULT_WORDNET_DIR = Path("/usr/share/wordnet")

#: Real corpora the synthetic model is fitted on, relative to the data root.
FIT_CORPORA: Mapping[str, str] = {
    "scifact": "beir/scifact",
    "nfcorpus": "beir/nfcorpus",
    "cranfield": "classic/cranfield",
    "cisi": "classic/cisi",
}

#: Query sources (relative to the data root).  Only these two: they are the
#: real user-style queries we have in bulk; the classic sets are tiny.
QUERY_DATASETS: Mapping[str, str] = {
    "scifact": "beir/scifact",
    "nfcorpus": "beir/nfcorpus",
}

# A "word" is a maximal run of Unicode letters/digits in lowercased text.
# This is close to what BM25 tokenisers (bm25s, Lucene's standard analyzer
# before stemming) split on, and every generated word is itself one such
# token, so re-tokenising a synthetic corpus yields exactly the sampled ids.
_WORD_RE = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens, the unit of every length and vocabulary figure."""
    return _WORD_RE.findall(text.lower())


def log(msg: str) -> None:
    """Progress goes to stderr so stdout stays machine-readable (JSON)."""
    print(f"[scale_corpus] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Real text: GCIDE (dictd format) and WordNet 3.0 glosses
# ---------------------------------------------------------------------------
# The parsers live in sparsearch.training.dictionaries (the general training
# text uses them too); imported here under their old names.

@dataclass
class RealCorpusReport:
    """How the real corpus was assembled; stored in ``meta.json``."""

    candidates: dict[str, int]
    selected: dict[str, int]
    note: str


def build_real_documents(n: int, seed: int, gcide_dir: Path = DEFAULT_GCIDE_DIR,
                         wordnet_dir: Path = DEFAULT_WORDNET_DIR,
                         ) -> tuple[list[tuple[str, str, str]], RealCorpusReport]:
    """Pick ``n`` dictionary/gloss documents from GCIDE and WordNet.

    Both sources are pooled and ``n`` documents are drawn uniformly without
    replacement with ``seed``; the sample is returned in source order so the
    file reads like a dictionary.  Pooling (rather than GCIDE first) mixes
    GCIDE's long 1913 entries with WordNet's short modern glosses, which
    gives more varied lengths and vocabulary.  When the pool is smaller than
    ``n`` every candidate is used and the shortfall is reported, never padded
    with duplicates.
    """
    if not (gcide_dir / "gcide.index").exists():
        raise FileNotFoundError(f"{gcide_dir}/gcide.index missing: apt-get install dict-gcide")
    if not (wordnet_dir / "data.noun").exists():
        raise FileNotFoundError(f"{wordnet_dir}/data.noun missing: apt-get install wordnet-base")
    pool = list(iter_gcide(gcide_dir))
    n_gcide = len(pool)
    pool.extend(iter_wordnet(wordnet_dir))
    candidates = {"gcide": n_gcide, "wordnet": len(pool) - n_gcide}
    if len(pool) > n:
        keep = np.sort(np.random.default_rng(seed).choice(len(pool), size=n, replace=False))
        docs = [pool[i] for i in keep]
        note = f"seeded sample of {n} from {len(pool)} candidates"
    else:
        docs = pool
        note = f"only {len(pool)} candidates (< {n} requested): all used"
    selected = {"gcide": sum(d[0].startswith("gcide-") for d in docs)}
    selected["wordnet"] = len(docs) - selected["gcide"]
    return docs, RealCorpusReport(candidates, selected, note)


# ---------------------------------------------------------------------------
# BEIR input/output
# ---------------------------------------------------------------------------

def iter_beir_corpus(path: Path) -> Iterator[tuple[str, str]]:
    """Yield ``(title, text)`` per document of a BEIR ``corpus.jsonl``."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                doc = json.loads(line)
                yield doc.get("title") or "", doc.get("text") or ""


def load_query_pool(data_root: Path = DEFAULT_DATA_ROOT) -> list[dict[str, Any]]:
    """All SciFact + NFCorpus queries, each tagged with whether it is a test query.

    The pool is stored inside the fitted model, which is how the synthetic
    mode gets real queries on a machine without the data sets.
    """
    pool: list[dict[str, Any]] = []
    for name, rel in QUERY_DATASETS.items():
        base = data_root / rel
        test_ids: set[str] = set()
        with open(base / "qrels" / "test.tsv", encoding="utf-8") as fh:
            next(fh, None)  # header
            for line in fh:
                if line.strip():
                    test_ids.add(line.split("\t")[0].strip())
        with open(base / "queries.jsonl", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    q = json.loads(line)
                    pool.append({"_id": f"{name}-{q['_id']}", "text": q["text"],
                                 "test": q["_id"] in test_ids})
    return pool


def sample_queries(pool: Sequence[Mapping[str, Any]], n: int, seed: int
                   ) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Seeded sample of ``n`` queries: every test query first, then the rest.

    SciFact + NFCorpus have only 623 *test* queries, fewer than the default
    1000, so the remainder is a seeded sample of their train/dev queries (the
    benchmark measures speed, so the split does not matter, but test queries
    are preferred).  Queries are unique; asking for more than the pool holds
    is an error rather than silent duplication, which would flatter caches.
    """
    if n > len(pool):
        raise ValueError(f"asked for {n} queries, the pool has only {len(pool)}")
    rng = np.random.default_rng([seed, 7])
    test = [i for i, q in enumerate(pool) if q["test"]]
    rest = [i for i, q in enumerate(pool) if not q["test"]]
    test_pick = rng.permutation(test)[:n]
    rest_pick = rng.permutation(rest)[:n - len(test_pick)]
    order = rng.permutation(np.concatenate([test_pick, rest_pick]).astype(np.int64))
    queries = [{"_id": str(pool[i]["_id"]), "text": str(pool[i]["text"])} for i in order]
    return queries, {"test": int(len(test_pick)), "non_test": int(len(rest_pick))}


def write_queries(path: Path, queries: Iterable[Mapping[str, str]]) -> None:
    """Write BEIR ``queries.jsonl``."""
    with open(path, "w", encoding="utf-8") as fh:
        for q in queries:
            fh.write(json.dumps({"_id": q["_id"], "text": q["text"]}) + "\n")


# ---------------------------------------------------------------------------
# Corpus statistics (used for fitting and for the plausibility report)
# ---------------------------------------------------------------------------

@dataclass
class CorpusProfile:
    """One tokenised corpus: lengths, distinct words per document, counts, ids."""

    name: str
    title_len: np.ndarray  # int32, words per title
    text_len: np.ndarray   # int32, words per text
    distinct: np.ndarray   # int32, distinct words per document (= its postings)
    counts: Counter[str] = field(repr=False)
    doc_tokens: list[np.ndarray] = field(repr=False)  # ids into a shared vocab

    @property
    def n_docs(self) -> int:
        return int(self.title_len.size)

    @property
    def doc_len(self) -> np.ndarray:
        return self.title_len + self.text_len


def profile_corpus(name: str, docs: Iterable[tuple[str, str]],
                   vocab: dict[str, int]) -> CorpusProfile:
    """Tokenise a corpus once and keep what the fit needs.

    Token ids go into ``vocab``, shared by all corpora of one fit, so that
    document streams of different corpora can be mixed for the Heaps' law
    fit.
    """
    tl: list[int] = []
    xl: list[int] = []
    nd: list[int] = []
    counts: Counter[str] = Counter()
    doc_tokens: list[np.ndarray] = []
    for title, text in docs:
        toks = tokenize(title)
        tl.append(len(toks))
        body = tokenize(text)
        xl.append(len(body))
        toks += body
        counts.update(toks)
        nd.append(len(set(toks)))
        doc_tokens.append(np.fromiter((vocab.setdefault(w, len(vocab)) for w in toks),
                                      dtype=np.int32, count=len(toks)))
    return CorpusProfile(name, np.asarray(tl, np.int32), np.asarray(xl, np.int32),
                         np.asarray(nd, np.int32), counts, doc_tokens)


def summarize_lengths(lengths: np.ndarray) -> dict[str, float]:
    """Mean/median/p90/max of document lengths in words."""
    if lengths.size == 0:
        return {"mean": 0.0, "median": 0.0, "p90": 0.0, "max": 0.0}
    return {"mean": round(float(lengths.mean()), 2),
            "median": float(np.median(lengths)),
            "p90": float(np.percentile(lengths, 90)),
            "max": float(lengths.max())}


def corpus_stats(path: Path) -> dict[str, Any]:
    """Re-tokenise a ``corpus.jsonl`` and report size, lengths and vocabulary.

    Independent of the generator's own bookkeeping, so it checks what an
    indexer will actually see.  ``postings_per_token`` (distinct words per
    document / words per document, summed over documents) is what decides
    how large an inverted index gets for a given amount of text.
    """
    lengths: list[int] = []
    n_postings = 0
    vocab: set[str] = set()
    for title, text in iter_beir_corpus(path):
        toks = tokenize(title) + tokenize(text)
        lengths.append(len(toks))
        distinct = set(toks)
        n_postings += len(distinct)
        vocab.update(distinct)
    arr = np.asarray(lengths, np.int64)
    n_tokens = int(arr.sum())
    return {"path": str(path), "bytes": path.stat().st_size, "n_docs": int(arr.size),
            "n_tokens": n_tokens, "doc_len": summarize_lengths(arr), "vocab": len(vocab),
            "postings_per_token": round(n_postings / max(n_tokens, 1), 4)}


# ---------------------------------------------------------------------------
# The fitted model
# ---------------------------------------------------------------------------

@dataclass
class ScaleModel:
    """Everything the synthetic generator needs, well under 1 MB on disk.

    Word model: a fresh word is the head word of rank ``r`` with
    probability ``(1 - tail_mass) * head_prob[r]``; with probability
    ``tail_mass`` it is a pseudo-word whose rank ``r >= len(head_words)``
    follows a continuous Pareto (Zipf) law with exponent ``tail_alpha``.
    Burstiness: each word after the first of a document is, with probability
    ``burst``, a copy of a uniformly chosen earlier word of the same
    document instead of a fresh one.  Length model: ``(title_len,
    text_len)`` pairs with probabilities.
    """

    head_words: list[str]
    head_prob: np.ndarray      # float64, sums to 1, descending
    tail_mass: float
    tail_alpha: float
    burst: float
    len_pairs: np.ndarray      # int32 (P, 2): title words, text words
    len_prob: np.ndarray       # float64 (P,), sums to 1
    queries: list[dict[str, Any]]
    info: dict[str, Any]

    @property
    def mean_doc_len(self) -> float:
        """Expected words per document (title + text) under the length model."""
        return float(self.len_prob @ self.len_pairs.sum(axis=1))


def _reference_stream(profiles: Sequence[CorpusProfile], weighting: str, seed: int) -> tuple[np.ndarray, int]:
    """Real token stream with the same corpus mix as the synthetic corpus.

    For ``corpus`` weighting every corpus contributes the same number of
    documents (as many as the smallest corpus has); for ``doc`` weighting all
    documents are used.  Documents are shuffled (seeded) and concatenated.
    Returns the stream of word ids and its number of documents.
    """
    rng = np.random.default_rng([seed, 11])
    chosen: list[np.ndarray] = []
    k = min(p.n_docs for p in profiles)
    for p in profiles:
        take = (rng.permutation(p.n_docs)[:k] if weighting == "corpus"
                else np.arange(p.n_docs))
        chosen.extend(p.doc_tokens[i] for i in take)
    order = rng.permutation(len(chosen))
    return np.concatenate([chosen[i] for i in order]), len(chosen)


def _heaps_fit(stream: np.ndarray) -> dict[str, float]:
    """Fit Heaps' law V = K * N^beta on a token stream.

    The number of distinct words is read off at 40 log-spaced prefix
    lengths; beta and K come from least squares on the log-log points above
    10^4 tokens, past the small-sample start of the curve.
    """
    total = stream.size
    first = max(10, min(1_000, total // 100))
    checkpoints = np.unique(np.geomspace(first, total, 40).astype(np.int64))
    _, first_pos = np.unique(stream, return_index=True)  # first use of each word
    first_pos.sort()
    v_at = np.searchsorted(first_pos, checkpoints, side="left")
    mask = checkpoints >= min(10_000, total // 10)
    if mask.sum() < 2:
        mask[:] = True
    beta, log_k = np.polyfit(np.log(checkpoints[mask]), np.log(v_at[mask]), 1)
    return {"beta": float(beta), "K": float(math.exp(log_k)), "tokens": int(total),
            "vocab": int(first_pos.size)}


def _bisect(f: Any, lo: float, hi: float, iters: int = 30) -> float:
    """Root of a monotone increasing ``f`` on [lo, hi] (clamped to the ends)."""
    if f(lo) >= 0:
        return lo
    if f(hi) <= 0:
        return hi
    for _ in range(iters):
        mid = (lo + hi) / 2
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def fit_model(profiles: Sequence[CorpusProfile], query_pool: list[dict[str, Any]],
              weighting: str = "corpus", min_count: int = 2, seed: int = DEFAULT_SEED,
              calibration_tokens: int = 1_000_000) -> ScaleModel:
    """Fit the synthetic model on tokenised real corpora.

    Weighting.  With ``weighting="corpus"`` (default) every corpus gets the
    same share of *documents*: our dictionary corpus has 10^5 documents of
    ~26 words while the four retrieval corpora have ~12,000 documents of
    ~130-250 words; pooling documents would make the synthetic corpus a
    dictionary (mean ~40 words), far shorter than the passages and
    abstracts BM25 engines are benchmarked on.  Equal corpus weights give a
    mean of ~160 words, between MS MARCO passages and scientific abstracts.
    ``weighting="doc"`` pools documents instead.  The word distribution is
    the mixture of each corpus's unigram distribution weighted by its share
    of *tokens* under the same weighting, so lengths and words describe the
    same blend.

    Vocabulary growth.  Sampling only the words we have seen would freeze
    the vocabulary near 10^5 words, so a 10^7-document index would get a
    far too small term dictionary and too few short posting lists -- what
    dominates index size and build time at scale.  Real text follows Heaps'
    law V ~ K N^beta, and a Zipf rank-frequency tail p(r) ~ r^-alpha yields
    exactly that growth with beta = 1/alpha.  So the head is every word
    seen at least ``min_count`` times, with its mixture probability, and an
    unbounded tail of pseudo-words takes the rest of the mass, with ranks
    following a Pareto law of exponent ``alpha = 1 / beta``, beta fitted on
    a real token stream of the same corpus mix.  The tail mass starts as
    the mass of the rarer words (Good-Turing's estimate of unseen mass) and
    is then set so that the model's expected vocabulary equals the real
    stream's vocabulary at the real stream's size; beyond it the vocabulary
    grows along the fitted Heaps curve instead of saturating.

    Burstiness.  Independent draws spread a document over too many distinct
    words (real text repeats its topic words): on our corpora i.i.d. sampling
    gives ~0.75 distinct words per token against ~0.55 in real text, i.e.
    ~35% too many postings.  A copy process fixes it without changing word
    frequencies: each word is, with probability ``burst``, a copy of an
    earlier word of the same document.  ``burst`` is calibrated (seeded
    simulation, ``calibration_tokens`` tokens per trial) so the synthetic
    postings-per-token ratio equals the real mix's.
    """
    if weighting not in ("corpus", "doc"):
        raise ValueError("weighting must be 'corpus' or 'doc'")
    n_total = sum(p.n_docs for p in profiles)
    doc_w = np.array([1.0 / len(profiles) if weighting == "corpus" else p.n_docs / n_total
                      for p in profiles])
    mean_len = np.array([p.doc_len.mean() for p in profiles])
    tok_w = doc_w * mean_len / float(doc_w @ mean_len)  # token share of each corpus

    mix: Counter[str] = Counter()
    pooled: Counter[str] = Counter()
    for p, w in zip(profiles, tok_w):
        total = sum(p.counts.values())
        for word, c in p.counts.items():
            mix[word] += w * c / total
        pooled.update(p.counts)
    head = [w for w, c in pooled.items() if c >= min_count]
    head_p = np.array([mix[w] for w in head])
    order = np.argsort(-head_p, kind="stable")
    head = [head[i] for i in order]
    head_p = head_p[order]
    unseen_mass = float(max(0.0, 1.0 - head_p.sum()))
    head_p /= head_p.sum()

    # Length model: empirical (title, text) pairs with per-document weights.
    pairs = np.concatenate([np.stack([p.title_len, p.text_len], axis=1) for p in profiles])
    weights = np.concatenate([np.full(p.n_docs, w / p.n_docs) for p, w in zip(profiles, doc_w)])
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    len_prob = np.bincount(inverse.ravel(), weights=weights, minlength=len(uniq))
    len_prob /= len_prob.sum()

    stream, ref_docs = _reference_stream(profiles, weighting, seed)
    heaps = _heaps_fit(stream)
    tail_alpha = float(1.0 / min(max(heaps["beta"], 0.25), 0.9))
    target_ppt = float(doc_w @ np.array([p.distinct.mean() for p in profiles])
                       / (doc_w @ mean_len))

    model = ScaleModel(head, head_p, unseen_mass, tail_alpha, 0.0, uniq.astype(np.int32),
                       len_prob, list(query_pool), {})
    n_sim = max(1, int(calibration_tokens / max(model.mean_doc_len, 1.0)))
    ppt_iid = _postings_per_token(model, n_sim, seed)

    def calibrate_burst() -> None:
        def gap(rho: float) -> float:
            model.burst = rho
            return target_ppt - _postings_per_token(model, n_sim, seed)
        model.burst = _bisect(gap, 0.0, 0.95, iters=14)

    def calibrate_tail() -> None:
        def gap(m: float) -> float:
            model.tail_mass = m
            return expected_vocabulary(model, heaps["tokens"], ref_docs) - heaps["vocab"]
        model.tail_mass = _bisect(gap, 0.0, 0.5)

    calibrate_burst()
    calibrate_tail()
    calibrate_burst()  # the tail mass changes postings a little; settle once more

    model.info = {
        "format_version": MODEL_FORMAT_VERSION,
        "weighting": weighting,
        "min_count": min_count,
        "seed": seed,
        "corpora": {p.name: {"docs": p.n_docs, "tokens": int(p.doc_len.sum()),
                             "vocab": len(p.counts), "doc_len": summarize_lengths(p.doc_len),
                             "postings_per_token": round(float(p.distinct.sum() / p.doc_len.sum()), 4),
                             "doc_weight": round(float(w), 4), "token_weight": round(float(t), 4)}
                    for p, w, t in zip(profiles, doc_w, tok_w)},
        "pooled_vocab": len(pooled),
        "head_size": len(head),
        "unseen_mass_good_turing": round(unseen_mass, 6),
        "tail_mass": model.tail_mass,
        "tail_alpha": tail_alpha,
        "burst": model.burst,
        "heaps_reference": dict(heaps, docs=ref_docs),
        "postings_per_token": {"real": round(target_ppt, 4), "iid": round(ppt_iid, 4),
                               "model": round(_postings_per_token(model, n_sim, seed), 4)},
        "mean_doc_len": round(model.mean_doc_len, 2),
    }
    return model


def save_model(model: ScaleModel, path: Path) -> None:
    """Store the model as a compressed ``.npz`` of plain arrays (no pickle)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def as_bytes(s: str) -> np.ndarray:
        return np.frombuffer(s.encode("utf-8"), dtype=np.uint8)

    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        head_words=as_bytes("\n".join(model.head_words)),
        head_prob=model.head_prob.astype(np.float64),
        params=np.array([model.tail_mass, model.tail_alpha, model.burst], dtype=np.float64),
        len_pairs=model.len_pairs.astype(np.int32),
        len_prob=model.len_prob.astype(np.float64),
        queries=as_bytes(json.dumps(model.queries, ensure_ascii=False)),
        info=as_bytes(json.dumps(model.info)),
    )
    os.replace(tmp, path)


def load_model(path: Path) -> ScaleModel:
    """Load a model written by :func:`save_model`."""
    with np.load(path, allow_pickle=False) as z:
        info = json.loads(z["info"].tobytes().decode("utf-8"))
        if info.get("format_version") != MODEL_FORMAT_VERSION:
            raise ValueError(f"{path}: model format {info.get('format_version')}, "
                             f"expected {MODEL_FORMAT_VERSION}; refit it")
        words = z["head_words"].tobytes().decode("utf-8")
        tail_mass, tail_alpha, burst = (float(x) for x in z["params"])
        return ScaleModel(
            head_words=words.split("\n") if words else [],
            head_prob=z["head_prob"],
            tail_mass=tail_mass,
            tail_alpha=tail_alpha,
            burst=burst,
            len_pairs=z["len_pairs"],
            len_prob=z["len_prob"],
            queries=json.loads(z["queries"].tobytes().decode("utf-8")),
            info=info,
        )


def file_sha256(path: Path) -> str:
    """Content hash, recorded in ``meta.json`` so a new model invalidates caches."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def expected_vocabulary(model: ScaleModel, n_tokens: float, n_docs: float | None = None
                        ) -> float:
    """Expected number of distinct words in ``n_tokens`` tokens (``n_docs`` docs).

    Copies add no new words, so only the fresh draws count: all first words
    of documents plus a share ``1 - burst`` of the others.  Each word of
    probability p is then seen with probability 1 - exp(-N p) (Poisson
    approximation).  The head is summed directly; the Pareto tail is
    integrated numerically on a geometric grid.  Used for the tail
    calibration and to predict the vocabulary at 10^7 documents without
    generating them.
    """
    if n_docs is None:
        n_docs = n_tokens / max(model.mean_doc_len, 1.0)
    fresh = n_tokens - model.burst * max(n_tokens - n_docs, 0.0)
    head = float(np.sum(-np.expm1(-fresh * (1 - model.tail_mass) * model.head_prob)))
    if model.tail_mass <= 0:
        return head
    r0, a = float(max(len(model.head_words), 1)), model.tail_alpha
    x = np.geomspace(r0, r0 * 1e12, 20_001)
    dens = (a - 1) * r0 ** (a - 1) * x ** (-a)  # per-rank probability within the tail
    f = -np.expm1(-fresh * model.tail_mass * dens)
    tail = float(np.sum((f[1:] + f[:-1]) / 2 * np.diff(x)))
    return head + tail


# ---------------------------------------------------------------------------
# Synthetic generation
# ---------------------------------------------------------------------------

# Pseudo-words are pronounceable consonant-vowel syllables: 15 x 5 = 75
# syllables, rank written in base 75, big-endian, at least 4 syllables
# (8 letters, about the length of real rare words).  Every such string
# parses back to a single rank, so distinct ranks give distinct words.
_CONS = "bdfghklmnprstvz"
_VOWELS = "aeiou"
_SYLLABLES = np.array([[ord(c), ord(v)] for c in _CONS for v in _VOWELS], dtype=np.uint8)
_BASE = len(_SYLLABLES)
_MIN_SYLL = 4
_PSEUDO_RE = re.compile(rf"^(?:[{_CONS}][{_VOWELS}]){{{_MIN_SYLL},}}$")
_MAX_RANK = 10 ** 15


def pseudo_word(rank: int) -> str:
    """The pseudo-word for a tail rank (reference implementation, for tests)."""
    digits = []
    while rank:
        rank, d = divmod(rank, _BASE)
        digits.append(d)
    digits += [0] * (_MIN_SYLL - len(digits))
    return "".join(_CONS[d // 5] + _VOWELS[d % 5] for d in reversed(digits))


def _pseudo_rank(word: str) -> int | None:
    """Inverse of :func:`pseudo_word`, or None if ``word`` is not one."""
    if not _PSEUDO_RE.match(word):
        return None
    rank = 0
    for i in range(0, len(word), 2):
        rank = rank * _BASE + _CONS.index(word[i]) * 5 + _VOWELS.index(word[i + 1])
    return rank if pseudo_word(rank) == word else None


def _encode_pseudo(ranks: np.ndarray, clash: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised pseudo-words for ``ranks``: (byte pool, byte length per word).

    ``clash`` holds the few ranks whose syllable spelling happens to be a
    real head word; they get a trailing "x", which no primary spelling ends
    with, so words stay distinct from each other and from the head.
    """
    ranks = ranks.astype(np.int64)
    n_syll = np.full(ranks.size, _MIN_SYLL, dtype=np.int64)
    limit = np.full(ranks.size, _BASE ** _MIN_SYLL, dtype=np.int64)
    while True:  # exact integer digit count (float logs misjudge powers of 75)
        more = ranks >= limit
        if not more.any():
            break
        n_syll += more
        limit = np.where(more, limit * _BASE, limit)
    width = int(n_syll.max()) if ranks.size else _MIN_SYLL
    digits = np.zeros((ranks.size, width), dtype=np.int64)
    r = ranks.copy()
    for j in range(width - 1, -1, -1):
        r, digits[:, j] = np.divmod(r, _BASE)
    chars = _SYLLABLES[digits].reshape(ranks.size, 2 * width)
    extra = np.isin(ranks, clash)
    chars = np.concatenate([chars, np.full((ranks.size, 1), ord("x"), np.uint8)], axis=1)
    # digits are right-aligned: keep the last 2*n_syll letters (+ "x" if needed)
    col = np.arange(2 * width + 1)
    start = 2 * (width - n_syll)
    keep = (col[None, :] >= start[:, None]) & ((col[None, :] < 2 * width) | extra[:, None])
    return chars[keep], 2 * n_syll + extra


class _Sampler:
    """Precomputed tables for fast vectorised sampling from a ScaleModel."""

    def __init__(self, model: ScaleModel) -> None:
        self.model = model
        self.h = len(model.head_words)
        self.head_cdf = np.cumsum(model.head_prob) * (1.0 - model.tail_mass)
        self.len_cdf = np.cumsum(model.len_prob)
        self.len_cdf /= self.len_cdf[-1]
        encoded = [json.dumps(w)[1:-1].encode("ascii") for w in model.head_words]
        self.head_len = np.array([len(b) for b in encoded], dtype=np.int64)
        self.head_pool = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self.head_start = (np.cumsum(self.head_len) - self.head_len).astype(np.int64)
        clashes = (_pseudo_rank(w) for w in model.head_words)
        self.clash = np.array(sorted(r for r in clashes if r is not None and r >= self.h),
                              dtype=np.int64)

    def lengths(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, 2) title/text lengths drawn from the empirical pairs."""
        idx = np.searchsorted(self.len_cdf, rng.random(n), side="right")
        return self.model.len_pairs[np.minimum(idx, len(self.len_cdf) - 1)].astype(np.int64)

    def words(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n independent word ranks: head ranks < h, pseudo-word ranks >= h."""
        u = rng.random(n)
        out = np.searchsorted(self.head_cdf, u, side="right").astype(np.int64)
        in_tail = u >= self.head_cdf[-1]
        if self.model.tail_mass > 0 and in_tail.any():
            v = (u[in_tail] - self.head_cdf[-1]) / (1.0 - self.head_cdf[-1])
            v = np.clip(v, 0.0, 1.0 - 1e-16)
            ranks = self.h * (1.0 - v) ** (-1.0 / (self.model.tail_alpha - 1.0))
            out[in_tail] = np.minimum(np.floor(ranks), _MAX_RANK).astype(np.int64)
        else:
            np.minimum(out, self.h - 1, out=out)
        return out

    def bursts(self, rng: np.random.Generator, fresh: np.ndarray,
               per_doc: np.ndarray) -> np.ndarray:
        """Apply the copy process: some words repeat an earlier word of their doc.

        One uniform per token decides both whether it copies (``c < burst``)
        and which earlier position it copies (``c / burst`` scaled to the
        position).  A copy of a copy is resolved by pointer jumping, which
        takes O(log length) vectorised passes.
        """
        rho = self.model.burst
        c = rng.random(fresh.size)
        if rho <= 0 or fresh.size == 0:
            return fresh
        start = np.repeat(np.cumsum(per_doc) - per_doc, per_doc)
        pos = np.arange(fresh.size, dtype=np.int64) - start
        copy = (c < rho) & (pos > 0)
        src = np.arange(fresh.size, dtype=np.int64)
        back = np.minimum((c[copy] / rho * pos[copy]).astype(np.int64), pos[copy] - 1)
        src[copy] = start[copy] + back
        while True:
            nxt = src[src]
            if np.array_equal(nxt, src):
                break
            src = nxt
        return fresh[src]


def sample_chunk(sampler: _Sampler, seed: int, chunk: int, n_docs: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Lengths ``(n_docs, 2)`` and word ranks of documents of one chunk.

    Lengths, words and copies each use their own RNG stream
    (``[seed, chunk, k]``) and lengths are drawn for a full chunk, so a
    shorter last chunk is a prefix of the full one: an M-document corpus is
    the first M documents of any larger corpus with the same seed.
    """
    rl, rw, rc = (np.random.default_rng([seed, chunk, k]) for k in range(3))
    lens = sampler.lengths(rl, DOCS_PER_CHUNK)[:n_docs]
    per_doc = lens.sum(axis=1)
    fresh = sampler.words(rw, int(per_doc.sum()))
    return lens, sampler.bursts(rc, fresh, per_doc)


def _postings_per_token(model: ScaleModel, n_docs: int, seed: int) -> float:
    """Distinct words per document / words per document, by simulation."""
    sampler = _Sampler(model)
    total_tok = total_distinct = 0
    for chunk in range(-(-n_docs // DOCS_PER_CHUNK)):
        k = min(DOCS_PER_CHUNK, n_docs - chunk * DOCS_PER_CHUNK)
        lens, ranks = sample_chunk(sampler, seed + 1_000_003, chunk, k)
        per_doc = lens.sum(axis=1)
        doc = np.repeat(np.arange(k), per_doc)
        order = np.lexsort((ranks, doc))
        d, r = doc[order], ranks[order]
        new = np.ones(r.size, dtype=bool)
        new[1:] = (d[1:] != d[:-1]) | (r[1:] != r[:-1])
        total_distinct += int(new.sum())
        total_tok += int(r.size)
    return total_distinct / max(total_tok, 1)


@dataclass
class _ChunkResult:
    data: bytes
    doc_len: np.ndarray
    head_seen: np.ndarray
    tail_ranks: np.ndarray


def _render_chunk(sampler: _Sampler, seed: int, chunk: int, n_docs: int) -> _ChunkResult:
    """Documents ``chunk * DOCS_PER_CHUNK ...`` (``n_docs`` of them) as JSONL bytes.

    Tokens become bytes with one vectorised gather from a byte pool (head
    words + this chunk's pseudo-words); only the final per-document JSON
    framing is a Python loop.
    """
    lens, ranks = sample_chunk(sampler, seed, chunk, n_docs)
    per_doc = lens.sum(axis=1)

    is_tail = ranks >= sampler.h
    tail_uniq, tail_inv = np.unique(ranks[is_tail], return_inverse=True)
    t_pool, t_len = _encode_pseudo(tail_uniq, sampler.clash)
    local = ranks.copy()
    local[is_tail] = sampler.h + tail_inv.ravel()
    pool = np.concatenate([sampler.head_pool, t_pool])
    w_len = np.concatenate([sampler.head_len, t_len])
    w_start = np.concatenate([sampler.head_start,
                              sampler.head_pool.size + np.cumsum(t_len) - t_len])

    # Every token is written as " word": gather all of them at once.
    tok_len = w_len[local] + 1
    tok_end = np.cumsum(tok_len)
    tok_begin = tok_end - tok_len
    total = int(tok_end[-1]) if tok_end.size else 0
    src = np.repeat(w_start[local] - tok_begin - 1, tok_len) + np.arange(total)
    buf_arr = pool[np.maximum(src, 0)]
    buf_arr[tok_begin] = ord(" ")
    buf = buf_arr.tobytes()

    # byte offsets at every document/field boundary (title, text, next doc)
    bounds = np.concatenate([[0], tok_end])[np.concatenate([[0], np.cumsum(lens.ravel())])]
    first_id = chunk * DOCS_PER_CHUNK
    lines = []
    for i in range(n_docs):
        t0, t1, t2 = bounds[2 * i], bounds[2 * i + 1], bounds[2 * i + 2]
        lines.append(b'{"_id": "%d", "title": "%s", "text": "%s"}\n'
                     % (first_id + i, buf[t0 + 1:t1], buf[t1 + 1:t2]))
    return _ChunkResult(b"".join(lines), per_doc, np.unique(ranks[~is_tail]), tail_uniq)


def generate_synthetic(model: ScaleModel, n: int, seed: int, corpus_path: Path,
                       progress: bool = True) -> dict[str, Any]:
    """Stream ``n`` synthetic documents to ``corpus_path``; return their statistics.

    Memory stays at one chunk (10^4 documents) plus the set of pseudo-words
    seen so far (a few million ints at 10^7 documents), so RAM does not grow
    with the corpus text.
    """
    sampler = _Sampler(model)
    head_seen = np.zeros(sampler.h, dtype=bool)
    tail_seen: set[int] = set()
    lengths = np.empty(n, dtype=np.int32)
    n_chunks = -(-n // DOCS_PER_CHUNK)
    t0 = time.perf_counter()
    with open(corpus_path, "wb") as fh:
        for c in range(n_chunks):
            k = min(DOCS_PER_CHUNK, n - c * DOCS_PER_CHUNK)
            res = _render_chunk(sampler, seed, c, k)
            fh.write(res.data)
            lengths[c * DOCS_PER_CHUNK:c * DOCS_PER_CHUNK + k] = res.doc_len
            head_seen[res.head_seen] = True
            tail_seen.update(res.tail_ranks.tolist())
            if progress and (c + 1) % 20 == 0:
                log(f"{c * DOCS_PER_CHUNK + k}/{n} docs, {time.perf_counter() - t0:.1f}s")
    return {"n_docs": n, "n_tokens": int(lengths.sum(dtype=np.int64)),
            "doc_len": summarize_lengths(lengths),
            "vocab": int(head_seen.sum()) + len(tail_seen),
            "vocab_head": int(head_seen.sum()), "vocab_pseudo": len(tail_seen)}


# ---------------------------------------------------------------------------
# Output directories and cache metadata
# ---------------------------------------------------------------------------

def default_out_dir(mode: str, n: int) -> Path:
    """``~/.cache/sparsearch/scale/<mode>-<N>``: outside the repo, reusable."""
    return DEFAULT_CACHE_ROOT / f"{mode}-{n}"


def _meta_key(meta: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("mode", "n", "seed", "n_queries", "generator_version", "model_sha256")
    return {k: meta.get(k) for k in keys}


def is_up_to_date(out_dir: Path, request: Mapping[str, Any]) -> bool:
    """True when ``out_dir`` holds a finished corpus for the same request."""
    meta_path = out_dir / "meta.json"
    if not ((out_dir / "corpus.jsonl").exists() and (out_dir / "queries.jsonl").exists()
            and meta_path.exists()):
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    return _meta_key(meta) == _meta_key(request)


def _finish(out_dir: Path, meta: dict[str, Any]) -> None:
    """Write ``meta.json`` last: its presence marks a complete output."""
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def make_real(n: int = DEFAULT_REAL_N, seed: int = DEFAULT_SEED,
              n_queries: int = DEFAULT_N_QUERIES, out_dir: Path | None = None,
              data_root: Path = DEFAULT_DATA_ROOT, gcide_dir: Path = DEFAULT_GCIDE_DIR,
              wordnet_dir: Path = DEFAULT_WORDNET_DIR, force: bool = False) -> dict[str, Any]:
    """Build (or reuse) the real dictionary corpus; return its ``meta.json`` dict."""
    out_dir = out_dir or default_out_dir("real", n)
    request = {"mode": "real", "n": n, "seed": seed, "n_queries": n_queries,
               "generator_version": GENERATOR_VERSION, "model_sha256": None}
    if not force and is_up_to_date(out_dir, request):
        log(f"{out_dir} is up to date, skipping")
        return json.loads((out_dir / "meta.json").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "meta.json").unlink(missing_ok=True)
    t0 = time.perf_counter()
    docs, report = build_real_documents(n, seed, gcide_dir, wordnet_dir)
    with open(out_dir / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for doc_id, title, text in docs:
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    queries, qsplit = sample_queries(load_query_pool(data_root), n_queries, seed)
    write_queries(out_dir / "queries.jsonl", queries)
    lengths = np.array([len(tokenize(t)) + len(tokenize(x)) for _, t, x in docs])
    vocab = set()
    for _, t, x in docs:
        vocab.update(tokenize(t))
        vocab.update(tokenize(x))
    meta = dict(request, n_docs=len(docs), sources=report.__dict__, queries=qsplit,
                seconds=round(time.perf_counter() - t0, 1),
                stats={"n_tokens": int(lengths.sum()), "doc_len": summarize_lengths(lengths),
                       "vocab": len(vocab)})
    _finish(out_dir, meta)
    if len(docs) < n:
        log(f"WARNING: {report.note}")
    return meta


def make_synthetic(model_path: Path, n: int = DEFAULT_SYNTHETIC_N, seed: int = DEFAULT_SEED,
                   n_queries: int = DEFAULT_N_QUERIES, out_dir: Path | None = None,
                   force: bool = False) -> dict[str, Any]:
    """Generate (or reuse) a synthetic corpus from a fitted model file."""
    out_dir = out_dir or default_out_dir("synthetic", n)
    if not model_path.exists():
        raise FileNotFoundError(f"{model_path} missing: run the 'fit' command first "
                                "(needs the real corpora) or pass --model")
    request = {"mode": "synthetic", "n": n, "seed": seed, "n_queries": n_queries,
               "generator_version": GENERATOR_VERSION, "model_sha256": file_sha256(model_path)}
    if not force and is_up_to_date(out_dir, request):
        log(f"{out_dir} is up to date, skipping")
        return json.loads((out_dir / "meta.json").read_text())
    model = load_model(model_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "meta.json").unlink(missing_ok=True)
    t0 = time.perf_counter()
    stats = generate_synthetic(model, n, seed, out_dir / "corpus.jsonl")
    seconds = round(time.perf_counter() - t0, 1)
    queries, qsplit = sample_queries(model.queries, n_queries, seed)
    write_queries(out_dir / "queries.jsonl", queries)
    meta = dict(request, n_docs=n, queries=qsplit, seconds=seconds, stats=stats,
                model_mean_doc_len=round(model.mean_doc_len, 2),
                model_expected_vocab=round(expected_vocabulary(model, stats["n_tokens"], n)))
    _finish(out_dir, meta)
    return meta


def make_model(model_path: Path, real_corpus: Path | None = None,
               data_root: Path = DEFAULT_DATA_ROOT, weighting: str = "corpus",
               min_count: int = 2, seed: int = DEFAULT_SEED) -> ScaleModel:
    """Fit on the four BEIR/classic corpora + the real dictionary corpus and save.

    The dictionary corpus is built first (cached) when ``real_corpus`` is
    not given.
    """
    if real_corpus is None:
        make_real(seed=seed, data_root=data_root)
        real_corpus = default_out_dir("real", DEFAULT_REAL_N) / "corpus.jsonl"
    vocab: dict[str, int] = {}
    profiles = [profile_corpus(name, iter_beir_corpus(data_root / rel / "corpus.jsonl"), vocab)
                for name, rel in FIT_CORPORA.items()]
    profiles.append(profile_corpus("dictionary", iter_beir_corpus(real_corpus), vocab))
    model = fit_model(profiles, load_query_pool(data_root), weighting, min_count, seed)
    save_model(model, model_path)
    return model


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; prints a JSON summary on stdout."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p: argparse.ArgumentParser, n_default: int) -> None:
        p.add_argument("--n", type=int, default=n_default, help="number of documents")
        p.add_argument("--seed", type=int, default=DEFAULT_SEED)
        p.add_argument("--n-queries", type=int, default=DEFAULT_N_QUERIES)
        p.add_argument("--out", type=Path, default=None,
                       help="output dir (default ~/.cache/sparsearch/scale/<mode>-<N>)")
        p.add_argument("--force", action="store_true", help="regenerate even if cached")

    p_real = sub.add_parser("real", help="10^5 docs from GCIDE + WordNet (apt packages)")
    common(p_real, DEFAULT_REAL_N)
    p_real.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    p_real.add_argument("--gcide-dir", type=Path, default=DEFAULT_GCIDE_DIR)
    p_real.add_argument("--wordnet-dir", type=Path, default=DEFAULT_WORDNET_DIR)

    p_fit = sub.add_parser("fit", help="fit the synthetic model on the real corpora")
    p_fit.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    p_fit.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    p_fit.add_argument("--real-corpus", type=Path, default=None,
                       help="dictionary corpus.jsonl (default: build/reuse real-100000)")
    p_fit.add_argument("--weighting", choices=("corpus", "doc"), default="corpus")
    p_fit.add_argument("--min-count", type=int, default=2)
    p_fit.add_argument("--seed", type=int, default=DEFAULT_SEED)

    p_syn = sub.add_parser("synthetic", help="N docs from a fitted model (no real data needed)")
    common(p_syn, DEFAULT_SYNTHETIC_N)
    p_syn.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)

    p_stats = sub.add_parser("stats", help="re-tokenise corpus.jsonl files and report stats")
    p_stats.add_argument("paths", type=Path, nargs="+")

    args = ap.parse_args(argv)
    if args.cmd == "real":
        result: Any = make_real(args.n, args.seed, args.n_queries, args.out, args.data_root,
                                args.gcide_dir, args.wordnet_dir, args.force)
    elif args.cmd == "fit":
        t0 = time.perf_counter()
        model = make_model(args.model, args.real_corpus, args.data_root, args.weighting,
                           args.min_count, args.seed)
        result = dict(model.info, model=str(args.model), bytes=args.model.stat().st_size,
                      seconds=round(time.perf_counter() - t0, 1),
                      expected_vocab={str(n): round(expected_vocabulary(
                          model, n * model.mean_doc_len, n)) for n in (10**5, 10**6, 10**7)})
    elif args.cmd == "synthetic":
        result = make_synthetic(args.model, args.n, args.seed, args.n_queries, args.out,
                                args.force)
    else:
        result = [corpus_stats(p) for p in args.paths]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

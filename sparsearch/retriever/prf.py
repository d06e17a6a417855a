"""Pseudo-relevance feedback: RM3 for term-based queries, Rocchio for dense query vectors.

Both assume the top of a first-pass ranking is mostly relevant and move the
query toward it, then search again.

**RM3** (relevance model, Lavrenko & Croft 2001, "Relevance-Based Language
Models", SIGIR; interpolated with the original query as "RM3" in Abdul-Jaleel
et al. 2004, "UMass at TREC 2004: Novelty and HARD") — here as Anserini
implements it (``Rm3Reranker``; Pyserini's ``set_rm3``, defaults fb_docs 10,
fb_terms 10, original query weight 0.5), since that is the recipe published
BM25+RM3 baselines (BEIR included) ran:

1. Each of the top ``fb_docs`` documents gives a term vector of raw term
   frequencies, *filtered*: a term shorter than 2 or longer than 20 characters,
   one that is not ``[a-z0-9]+`` (Pyserini's default ``filter_terms=True``), or
   one in more than 10 % of the documents (Anserini's df cut-off, its
   replacement for a stop list: frequent terms make poor expansions and drift
   the query) is dropped.
2. Each vector keeps only its ``fb_terms`` most frequent terms and is
   L1-normalised: ``P(w|D) = tf(w, D) / Σ_{kept w'} tf(w', D)``.  (Note this is
   *not* ``tf/|D|``; the textbook maximum-likelihood estimate is available as
   ``doc_model="mle"``.)
3. ``RM1(w) = Σ_D P(w|D) · P(D|Q)`` with ``P(D|Q)`` the first-pass score
   normalised to sum 1 over the feedback documents.  Anserini multiplies by the
   raw scores; after step 4's L1 normalisation the result is identical, since a
   common factor changes neither the top terms nor the normalised weights.
4. The ``fb_terms`` largest RM1 weights are kept and L1-normalised.
5. The original query's term weights (term counts, as in Anserini's
   ``FeatureVector.fromTerms``) are L1-normalised, and
   ``RM3 = λ · query + (1 − λ) · RM1`` over the union of terms, ``λ =
   original_query_weight``.
6. The expanded query searches again as a boosted bag of words: each term's
   BM25 score times its weight — in this engine a query weight of
   ``weight · idf(term)`` (:func:`bm25_query_batch`), because the index scores
   ``Σ q_w · tf/(tf + k1·(…))``.

Ties among equal frequencies or weights (frequent: many terms occur once in
a document) are broken by term string like Anserini (``tie_rank`` from
:func:`term_string_ranks`), else by term id.  Anserini's query vector counts
every analysed query token, words the index lacks included: they take a
share of the original query's weight yet match nothing, so a query with such
words leans more on its feedback terms.  :func:`rm3_expand_queries` does the
same (``query_norm``); on SciFact 57 of 300 queries have such words, and
without this step their expansions differ from Anserini's.  One difference
remains: the df ratio divides by the number of documents *with terms*
(:class:`CollectionStats.n_docs`, Lucene's ``docCount``) where Anserini uses
``numDocs`` (equal unless some document is empty).  Checked against Pyserini
1.6.0 on BEIR SciFact: all 300 test-query expansions equal its
``get_feedback_terms`` within 1e-6, and NDCG@10 is the same, 0.6457
(benchmarks/prf_bm25.py).

**Rocchio** (Rocchio 1971, "Relevance Feedback in Information Retrieval", in
*The SMART Retrieval System*) for dense retrievers: ``q' = α·q + β·mean(top-k
document vectors)``, no negative term (pseudo feedback has no known
non-relevant documents).  Defaults α = 0.4, β = 0.6: the setting Pyserini
documents for its reproduction of Li et al.'s dense-retriever PRF study (Li,
Mourad, Zhuang, Koopman & Zuccon, "Pseudo Relevance Feedback with Deep
Language Models and Dense Retrievers: Successes and Pitfalls", TOIS 2023),
whose vector PRF Li et al. 2022 ("To Interpolate or not to Interpolate: PRF,
Dense and Sparse Retrievers", SIGIR) combine with sparse retrieval (their
exact α, β were not re-checked here; tune them per collection).  α = β
weighs query and feedback equally; the classic SMART text setting is α = 1,
β = 0.75 (no re-normalisation).  Following Li et al. 2022, fuse
(:mod:`sparsearch.retriever.fusion`) sparse and dense rankings both before
feedback (feedback documents from the fused list) and after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal, Sequence

import numpy as np

from sparsearch.retriever.analysis import LuceneEnglishAnalyzer
from sparsearch.retriever.bm25 import BM25Encoder, bm25_idf
from sparsearch.types import CollectionStats, Document, Hits, SparseBatch

if TYPE_CHECKING:
    from sparsearch.index.inverted import InvertedIndex
    from sparsearch.retriever.retriever import Retriever

#: One feedback document: its term ids, their frequencies in it, and its length (indexed tokens).
FeedbackDoc = tuple[np.ndarray, np.ndarray, float]
#: A sparse query: term ids and weights (what ``SparseBatch.row(i)`` returns).
TermWeights = tuple[np.ndarray, np.ndarray]

_ANSERINI_TERM = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class RM3Config:
    """RM3's settings; the defaults are Anserini/Pyserini's (fb_docs 10, fb_terms 10, weight 0.5, filters on).

    ``max_df_ratio``: drop feedback terms whose document frequency exceeds
    this share of the collection (``None``: keep all).  ``min_term_length``,
    ``max_term_length``, ``ascii_alnum_only``: the term-string filters of
    :func:`anserini_term_mask`.  ``doc_model``: ``"anserini"`` (per-document
    top-``fb_terms`` vector, L1-normalised) or ``"mle"`` (``tf/|D|`` over the
    whole document, then the filters).
    """

    fb_docs: int = 10
    fb_terms: int = 10
    original_query_weight: float = 0.5
    max_df_ratio: float | None = 0.1
    min_term_length: int = 2
    max_term_length: int = 20
    ascii_alnum_only: bool = True
    doc_model: Literal["anserini", "mle"] = "anserini"

    def __post_init__(self) -> None:
        if self.fb_docs < 1 or self.fb_terms < 1:
            raise ValueError(f"fb_docs and fb_terms must be at least 1, got {self.fb_docs}, {self.fb_terms}")
        if not 0.0 <= self.original_query_weight <= 1.0:
            raise ValueError(f"original_query_weight must lie in [0, 1], got {self.original_query_weight}")
        if self.max_df_ratio is not None and not 0.0 < self.max_df_ratio <= 1.0:
            raise ValueError(f"max_df_ratio must lie in (0, 1] or be None, got {self.max_df_ratio}")
        if self.doc_model not in ("anserini", "mle"):
            raise ValueError(f"doc_model must be 'anserini' or 'mle', got {self.doc_model!r}")


def anserini_term_mask(terms: Sequence[str], config: RM3Config = RM3Config()) -> np.ndarray:
    """Which term strings may become expansion terms: length within bounds and, by default, ``[a-z0-9]+``.

    Index terms are analysed (lower-cased, stemmed), so the pattern drops
    accented and non-Latin terms and tokenizer fragments (``##ing``), as
    Anserini's ``filterTerms`` does.
    """
    lo, hi = config.min_term_length, config.max_term_length
    pattern = _ANSERINI_TERM if config.ascii_alnum_only else None
    return np.fromiter(
        (lo <= len(t) <= hi and (pattern is None or pattern.fullmatch(t) is not None) for t in terms),
        bool, count=len(terms))


def term_string_ranks(terms: Sequence[str]) -> np.ndarray:
    """Rank of each term id when the term strings are sorted: Anserini's tie order (``String.compareTo``)."""
    order = sorted(range(len(terms)), key=terms.__getitem__)
    ranks = np.empty(len(terms), np.int64)
    ranks[order] = np.arange(len(terms))
    return ranks


def _ranks_of(ids: np.ndarray, tie_rank: np.ndarray | None) -> np.ndarray:
    """Tie-break keys of ``ids``: their ``tie_rank`` entries (ids beyond it after all others), else the ids."""
    ids = ids.astype(np.int64)
    if tie_rank is None:
        return ids
    inside = ids < len(tie_rank)
    return np.where(inside, tie_rank[np.where(inside, ids, 0)], len(tie_rank) + ids)


def _top(ids: np.ndarray, values: np.ndarray, n: int, tie_rank: np.ndarray | None) -> np.ndarray:
    """Positions of the ``n`` largest ``values``, largest first, ties by tie rank."""
    order = np.lexsort((_ranks_of(ids, tie_rank), -values))
    return order[:n]


def _merge(ids: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum the weights of repeated ids (sorted unique ids out)."""
    uniq, inverse = np.unique(np.asarray(ids, np.int64), return_inverse=True)
    total = np.zeros(len(uniq), np.float64)
    np.add.at(total, inverse, np.asarray(weights, np.float64))
    return uniq, total


def _eligible_terms(ids: np.ndarray, stats: CollectionStats | None, config: RM3Config,
                    eligible: np.ndarray | None) -> np.ndarray:
    """Mask over ``ids``: allowed by ``eligible`` and (with ``stats``) known to the index and under the df cut-off."""
    keep = np.ones(len(ids), bool)
    if eligible is not None:
        inside = ids < len(eligible)
        keep &= inside & eligible[np.where(inside, ids, 0)]
    if stats is not None:
        df_all = stats.doc_freq
        inside = ids < len(df_all)
        df = np.where(inside, df_all[np.where(inside, ids, 0)], 0)
        keep &= df > 0  # a term the index does not hold cannot be searched
        if config.max_df_ratio is not None and stats.n_docs > 0:
            keep &= df / stats.n_docs <= config.max_df_ratio
    return keep


def relevance_model(feedback: Sequence[FeedbackDoc], feedback_scores: Sequence[float] | np.ndarray,
                    stats: CollectionStats | None = None, config: RM3Config = RM3Config(),
                    eligible: np.ndarray | None = None, tie_rank: np.ndarray | None = None) -> TermWeights:
    """RM1 over the first ``config.fb_docs`` feedback documents (best first): top ``fb_terms`` terms, L1-normalised.

    Steps 1-4 of the module docstring.  ``feedback_scores`` must be
    non-negative (they stand for ``P(Q|D)``); all zero weighs the documents
    equally.  Returns ``(term_ids, weights)``, largest weight first; empty
    when no feedback document has an eligible term.
    """
    n = min(config.fb_docs, len(feedback))
    scores = np.asarray(feedback_scores, np.float64)[:n]
    if len(scores) != n:
        raise ValueError(f"{len(feedback_scores)} feedback scores for {len(feedback)} feedback documents")
    if (scores < 0).any() or not np.isfinite(scores).all():
        raise ValueError("feedback scores must be finite and non-negative (they weigh documents as P(Q|D))")
    total = scores.sum()
    doc_weights = scores / total if total > 0 else np.full(n, 1.0 / n) if n else scores
    acc_ids: list[np.ndarray] = []
    acc_values: list[np.ndarray] = []
    for (term_ids, tfs, length), w in zip(feedback[:n], doc_weights):
        ids, tf = _merge(term_ids, tfs)
        positive = tf > 0
        ids, tf = ids[positive], tf[positive]
        keep = _eligible_terms(ids, stats, config, eligible)
        if config.doc_model == "anserini":
            ids, tf = ids[keep], tf[keep]
            top = _top(ids, tf, config.fb_terms, tie_rank)
            ids, tf = ids[top], tf[top]
            norm = tf.sum()
        else:
            norm = float(length) if length > 0 else tf.sum()
            ids, tf = ids[keep], tf[keep]
        if len(ids) == 0 or norm <= 0:
            continue  # nothing eligible: the document adds no terms (Anserini skips such vectors too)
        acc_ids.append(ids)
        acc_values.append(tf / norm * w)
    if not acc_ids:
        return np.zeros(0, np.int32), np.zeros(0, np.float32)
    ids, weights = _merge(np.concatenate(acc_ids), np.concatenate(acc_values))
    top = _top(ids, weights, config.fb_terms, tie_rank)
    ids, weights = ids[top], weights[top]
    total = weights.sum()
    if not total > 0:  # every contributing document had score 0 while others did not
        return np.zeros(0, np.int32), np.zeros(0, np.float32)
    return ids.astype(np.int32), (weights / total).astype(np.float32)


def rm3_expand(query: TermWeights, feedback: Sequence[FeedbackDoc], feedback_scores: Sequence[float] | np.ndarray,
               stats: CollectionStats | None = None, config: RM3Config = RM3Config(),
               eligible: np.ndarray | None = None, tie_rank: np.ndarray | None = None,
               query_norm: float | None = None) -> TermWeights:
    """The RM3 query: ``λ·query/‖query‖₁ + (1 − λ)·RM1`` over the union of terms, largest weight first.

    ``query``: ``(term_ids, weights)`` (a ``SparseBatch`` row); pass term
    *counts* to match Anserini (:func:`rm3_expand_queries` does) — a BM25
    row from ``encode_queries`` holds ``count·idf``, which would weight rare
    query words more before the interpolation.  ``feedback``: ``(term_ids,
    term_freqs, doc_length)`` per feedback document, best first, with their
    first-pass ``feedback_scores``; only the first ``config.fb_docs`` are
    used.  ``stats`` enables the df cut-off and drops terms the index lacks;
    ``eligible`` (a mask over term ids, :func:`anserini_term_mask`) the
    string filters; ``tie_rank`` (:func:`term_string_ranks`) Anserini's tie
    order.  ``query_norm``: what the query weights are divided by (default
    their sum); pass the number of analysed query tokens, out-of-vocabulary
    ones included, to weigh the query as Anserini does.  Terms whose final
    weight is 0 are dropped.
    """
    q_ids, q_weights = _merge(*query)
    if (q_weights < 0).any():
        raise ValueError("query term weights must be non-negative")
    q_total = q_weights.sum() if query_norm is None else float(query_norm)
    if q_total < q_weights.sum() - 1e-9:
        raise ValueError(f"query_norm {query_norm} is below the query weights' sum {q_weights.sum()}")
    q_weights = q_weights / q_total if q_total > 0 else q_weights
    fb_ids, fb_weights = relevance_model(feedback, feedback_scores, stats, config, eligible, tie_rank)
    lam = config.original_query_weight
    ids, weights = _merge(np.concatenate([q_ids, fb_ids.astype(np.int64)]),
                          np.concatenate([lam * q_weights, (1.0 - lam) * fb_weights.astype(np.float64)]))
    positive = weights > 0
    ids, weights = ids[positive], weights[positive]
    order = _top(ids, weights, len(ids), tie_rank)
    return ids[order].astype(np.int32), weights[order].astype(np.float32)


def bm25_query_batch(expanded: Sequence[TermWeights], stats: CollectionStats) -> SparseBatch:
    """Rows of ``weight · idf(term)``: Anserini's boosted term queries (score = Σ weight · BM25 term score).

    The index multiplies a query weight into ``tf/(tf + k1·(…))``, so
    folding the IDF into the weight gives exactly Lucene's
    ``boost · idf · tf-norm``; both factors in float32, as Lucene multiplies
    them.  Terms the index does not hold (df 0) are dropped, as
    ``BM25Encoder.encode_queries`` drops them.
    """
    df_all = stats.doc_freq
    rows: list[dict[int, float]] = []
    for term_ids, weights in expanded:
        ids = np.asarray(term_ids, np.int64)
        inside = ids < len(df_all)
        known = inside & (np.where(inside, df_all[np.where(inside, ids, 0)], 0) > 0)
        rows.append(dict(zip(ids[known].tolist(), np.asarray(weights, np.float32)[known].tolist())))
    batch = SparseBatch.from_dicts(rows)
    idf = bm25_idf(df_all[batch.term_ids], stats.n_docs)
    batch.weights = (batch.weights * idf).astype(np.float32)
    return batch


def _bm25_encoder(retriever: "Retriever") -> BM25Encoder:
    encoder = retriever.encoder
    if not isinstance(encoder, BM25Encoder):
        raise ValueError(f"RM3 expands BM25 queries; this retriever's encoder is {encoder.name!r}")
    return encoder


def _query_counts(encoder: BM25Encoder, query: str, stats: CollectionStats) -> tuple[TermWeights, int]:
    """Term counts of a query over the terms the index holds, and the number of analysed tokens.

    The counts are the words ``encode_queries`` keeps; the token count also
    includes words the index lacks (stop words excluded), Anserini's L1 norm
    of the query vector.
    """
    counts: dict[int, float] = {}
    for t in encoder.query_terms(query):
        if t < len(stats.doc_freq) and stats.doc_freq[t] > 0:
            counts[t] = counts.get(t, 0.0) + 1.0
    analyzer = encoder.analyzer
    if isinstance(analyzer, LuceneEnglishAnalyzer):
        n_tokens = sum(analyzer.normalize(tok) is not None for tok in analyzer.raw_tokens(query))
    else:  # word pieces: every piece is in the vocabulary
        n_tokens = len(encoder.query_terms(query))
    ids = np.fromiter(counts, np.int64, len(counts))
    return (ids, np.fromiter(counts.values(), np.float64, len(counts))), max(n_tokens, int(sum(counts.values())))


def expand_with_feedback(retriever: "Retriever", queries: Sequence[str], feedback_ids: Sequence[Sequence[str]],
                         feedback_scores: Sequence[Sequence[float] | np.ndarray],
                         text_of: Callable[[str], Document | None], config: RM3Config = RM3Config(),
                         snapshot: "InvertedIndex | None" = None) -> list[TermWeights]:
    """RM3 expansion of every query from feedback documents the caller chose (``(term_ids, weights)`` each).

    ``feedback_ids[i]`` (best first) and ``feedback_scores[i]`` are query
    ``i``'s feedback documents and their weights — a BM25 first pass
    (:func:`rm3_expand_queries`), or a fused sparse + dense ranking, the
    "interpolate before PRF" of Li et al. 2022.  Scores must be non-negative
    (min-max and RRF fusion scores are; shift z-scores first); only the first
    ``config.fb_docs`` of each list are used.

    Feedback documents' term vectors come from encoding ``text_of(doc_id)``
    again with the retriever's encoder, since an index need not store texts
    (nor keep forward vectors).  For BM25 this *is* the indexed vector: the
    same analyzer yields the same terms, frequencies and length, provided
    ``text_of`` returns the document that was indexed.  Each feedback
    document is encoded once however many queries use it.  The original
    query is weighted by term count over every analysed token, as in
    Anserini (words the index lacks take weight but match nothing).  Raises
    ``KeyError`` for a feedback document ``text_of`` does not know.
    """
    encoder = _bm25_encoder(retriever)
    if not len(queries) == len(feedback_ids) == len(feedback_scores):
        raise ValueError(f"{len(queries)} queries, {len(feedback_ids)} feedback lists, "
                         f"{len(feedback_scores)} score lists: one of each per query")
    stats = (snapshot or retriever.snapshot).stats
    chosen = [list(ids[: config.fb_docs]) for ids in feedback_ids]
    fb_ids = list(dict.fromkeys(d for ids in chosen for d in ids))
    documents = []
    for doc_id in fb_ids:
        doc = text_of(doc_id)
        if doc is None:
            raise KeyError(f"no text for feedback document {doc_id!r}: text_of must return every indexed document")
        documents.append(doc)
    # Encoding may touch the encoder's vocabulary caches: hold the lock Retriever.add holds.
    with retriever._encode_lock:
        vectors = encoder.encode_documents(documents) if documents else SparseBatch.empty()
        terms = encoder.token_strings()
    lengths = vectors.lengths if vectors.lengths is not None else np.zeros(len(vectors), np.float32)
    by_id = {d: (*vectors.row(i), float(lengths[i])) for i, d in enumerate(fb_ids)}
    eligible = anserini_term_mask(terms, config)
    tie_rank = term_string_ranks(terms)
    out = []
    for query, ids, scores in zip(queries, chosen, feedback_scores):
        counts, n_tokens = _query_counts(encoder, query, stats)
        out.append(rm3_expand(counts, [by_id[d] for d in ids], np.asarray(scores, np.float64)[: len(ids)], stats,
                              config, eligible, tie_rank, query_norm=n_tokens))
    return out


def rm3_expand_queries(retriever: "Retriever", queries: Sequence[str], text_of: Callable[[str], Document | None],
                       config: RM3Config = RM3Config(), snapshot: "InvertedIndex | None" = None,
                       threads: int | None = None) -> list[TermWeights]:
    """First-pass BM25 search for ``config.fb_docs`` documents, then :func:`expand_with_feedback` from them."""
    snap = snapshot or retriever.snapshot
    first = snap.hits(retriever.encode_queries(queries, snap), config.fb_docs, threads=threads)
    return expand_with_feedback(retriever, queries, [h.ids for h in first],
                                [np.asarray(h.scores, np.float64) for h in first], text_of, config, snap)


def rm3_search(retriever: "Retriever", queries: Sequence[str], text_of: Callable[[str], Document | None],
               k: int = 1000, config: RM3Config = RM3Config(), threads: int | None = None) -> list[Hits]:
    """BM25 + RM3: top ``k`` for every query after expansion (Anserini's ``-bm25 -rm3``).

    The first pass takes ``config.fb_docs`` documents (retrieving deeper
    would not change the feedback set); both passes read one snapshot, so a
    concurrent write cannot make feedback and final scores disagree.  A
    query with no known word returns no hits, as plain BM25 does.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not queries:
        return []
    snap = retriever.snapshot
    expanded = rm3_expand_queries(retriever, queries, text_of, config, snap, threads)
    return snap.hits(bm25_query_batch(expanded, snap.stats), k, threads=threads)


def rocchio(query_vectors: np.ndarray, feedback_vectors: Sequence[np.ndarray] | np.ndarray, alpha: float = 0.4,
            beta: float = 0.6, normalize: bool = False) -> np.ndarray:
    """``q' = α·q + β·mean(feedback vectors)`` per query row (Rocchio 1971, positive feedback only).

    ``query_vectors``: ``(n, dim)``; ``feedback_vectors``: one ``(k_i, dim)``
    array per query (or an ``(n, k, dim)`` array), best first, already cut to
    the feedback depth.  A query with no feedback vector is returned as is
    (there is nothing to move toward).  ``normalize=True`` rescales every
    output row to unit L2 norm, for cosine-similarity models whose index
    holds unit vectors (a zero row stays zero).  Computed in float64, returned
    in the queries' floating dtype.
    """
    q = np.asarray(query_vectors)
    if q.ndim != 2:
        raise ValueError(f"query_vectors must be (n, dim), got shape {q.shape}")
    if len(feedback_vectors) != len(q):
        raise ValueError(f"{len(feedback_vectors)} feedback lists for {len(q)} queries")
    out_dtype = q.dtype if np.issubdtype(q.dtype, np.floating) else np.float64
    out = np.empty(q.shape, np.float64)
    for i, fb in enumerate(feedback_vectors):
        f = np.asarray(fb, np.float64)
        if f.size == 0:
            out[i] = q[i]
            continue
        if f.ndim != 2 or f.shape[1] != q.shape[1]:
            raise ValueError(f"feedback vectors of query {i} must be (k, {q.shape[1]}), got shape {f.shape}")
        out[i] = alpha * q[i].astype(np.float64) + beta * f.mean(axis=0)
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    return out.astype(out_dtype)

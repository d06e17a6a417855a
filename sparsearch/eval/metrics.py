"""IR metrics through pytrec_eval, with the conventions published BEIR numbers use.

* Means are over every judged query (every query in the qrels); a query with
  no hits in the run counts 0, as ``trec_eval -c`` does.
* ``ndcg_cut_10``, ``recall_100``, ``recall_1000`` are pytrec_eval's measures.
* ``recip_rank`` is MRR@10: reciprocal rank computed on the run cut to its
  10 best documents (BEIR's MRR@10; pytrec_eval's own ``recip_rank`` has no
  cut-off).
* pytrec_eval orders a query's documents by score (ties by document id
  string) whatever rank a run gives; to evaluate the order an engine returned,
  pass :func:`sparsearch.eval.runs.ranking_run`, as ``sparsearch eval`` does.
"""

from __future__ import annotations

from typing import Container, Mapping, Sequence

from sparsearch.errors import MissingDependencyError

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]

DEFAULT_MEASURES = ("ndcg_cut_10", "recall_100", "recall_1000", "recip_rank")


def _pytrec_eval():  # type: ignore[no-untyped-def]
    try:
        import pytrec_eval
    except ImportError:
        raise MissingDependencyError("evaluation needs pytrec_eval: pip install pytrec-eval-terrier") from None
    return pytrec_eval


def _top(run: Run, k: int) -> dict[str, dict[str, float]]:
    out = {}
    for qid, docs in run.items():
        ranked = sorted(docs.items(), key=lambda x: (-x[1], x[0]))[:k]
        out[qid] = dict(ranked)
    return out


def per_query(qrels: Qrels, run: Run) -> dict[str, dict[str, float]]:
    """Per-query values of the default measures, zero-filled for queries the run misses."""
    pe = _pytrec_eval()
    qrels = {q: dict(d) for q, d in qrels.items()}
    run = {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items() if q in qrels and docs}
    main = pe.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100,1000"}).evaluate(run)
    mrr = pe.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(_top(run, 10))
    out = {}
    for qid in qrels:
        values = {m: 0.0 for m in DEFAULT_MEASURES}
        for m, v in main.get(qid, {}).items():
            if m in values:
                values[m] = float(v)
        values["recip_rank"] = float(mrr.get(qid, {}).get("recip_rank", 0.0))
        out[qid] = values
    return out


def evaluate(qrels: Qrels, run: Run) -> dict[str, float]:
    """Means over all judged queries of the default measures."""
    pq = per_query(qrels, run)
    n = len(pq)
    if n == 0:
        return {m: 0.0 for m in DEFAULT_MEASURES}
    return {m: sum(v[m] for v in pq.values()) / n for m in DEFAULT_MEASURES}


def judgement_warnings(qrels: Qrels, retrieved: Mapping[str, Sequence[str]],
                       corpus_ids: Container[str] | None = None) -> tuple[list[str], int]:
    """Warnings about ids that cannot match, and how many judged documents the corpus lacks.

    A metric of 0 is a legitimate result, so :func:`evaluate` never fails on
    one; but when *no* query retrieved *any* document its qrels judge, the
    likeliest cause is ids that differ between corpus and qrels (a qrels
    parsed with the wrong column, a prefix, a different id scheme), and a
    silent 0.0 costs the user hours.  Judged documents missing from the
    corpus cap recall below 1 and usually mean a mismatched dataset.
    ``retrieved`` maps each query id to its ranked document ids;
    ``corpus_ids`` (when given) is what was indexed.  Returns the warning
    texts and the count of distinct judged documents not in ``corpus_ids``.
    """
    warnings: list[str] = []
    judged_queries = [q for q in qrels if qrels[q]]
    n_hits = sum(len(retrieved.get(q, ())) for q in judged_queries)
    if judged_queries and n_hits == 0:
        warnings.append(f"no document was retrieved for any of the {len(judged_queries)} judged queries, "
                        "so every metric is 0")
    elif judged_queries and not any(d in qrels[q] for q in judged_queries for d in retrieved.get(q, ())):
        example_q = next(q for q in judged_queries if retrieved.get(q))
        warnings.append(
            f"none of the {n_hits} documents retrieved for the {len(judged_queries)} judged queries appears in "
            f"their qrels, so every metric is 0: the corpus ids and the qrels corpus-ids probably differ "
            f"(query {example_q!r} retrieved {retrieved[example_q][0]!r}; its qrels judge "
            f"{next(iter(qrels[example_q]))!r})")
    missing = 0
    if corpus_ids is not None:
        judged_docs = {d for q in judged_queries for d in qrels[q]}
        absent = sorted(d for d in judged_docs if d not in corpus_ids)
        missing = len(absent)
        if absent:
            warnings.append(f"{missing} of the {len(judged_docs)} documents the qrels judge are not in the corpus "
                            f"(e.g. {absent[0]!r}); they can never be retrieved, so recall stays below 1")
    return warnings, missing

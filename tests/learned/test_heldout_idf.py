"""The dev-slice decisions of benchmarks/general_model.py: which query IDF an unseen domain should get (held-out
sources), and whether a second trained model replaces the first (dev-compare).

It decides a default from the training text alone, so its two IDFs and its
NDCG@10 are checked against computations from scratch: IDF recomputed over
the other source's texts, and a NumPy dot product ranked and scored by
pytrec_eval.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytrec_eval

from sparsearch.retriever.idf import bm25_form_idf, document_frequencies
from sparsearch.retriever.registry import build_encoder
from sparsearch.types import Document

from benchmark_scripts import load_benchmark  # tests/fixtures (on sys.path through tests/conftest.py)

gm = load_benchmark("general_model")


def _two_sources(root: Path, texts: list[str], per_source: int = 40, queries: int = 12) -> Path:
    """A training-text folder (BEIR layout, dev split) with sources ``aa`` and ``bb``; queries are passage openings."""
    root.mkdir(parents=True)
    corpus, query_lines, qrels = [], [], ["query-id\tcorpus-id\tscore"]
    for s, source in enumerate(("aa", "bb")):
        for i in range(per_source):
            text = texts[s * per_source + i]
            corpus.append(json.dumps({"_id": f"{source}-{i}", "title": "", "text": text}))
            if i < queries:
                query_lines.append(json.dumps({"_id": f"q-{source}-{i}", "text": " ".join(text.split()[3:9])}))
                qrels.append(f"q-{source}-{i}\t{source}-{i}\t1")
    (root / "corpus.jsonl").write_text("\n".join(corpus) + "\n", encoding="utf-8")
    (root / "queries.jsonl").write_text("\n".join(query_lines) + "\n", encoding="utf-8")
    (root / "qrels").mkdir()
    (root / "qrels" / "dev.tsv").write_text("\n".join(qrels) + "\n", encoding="utf-8")
    return root


def test_other_sources_idf_is_the_idf_of_the_other_sources_recomputed(inference_free_mlm, tiny_texts) -> None:
    first, second = tiny_texts[:150], tiny_texts[150:]
    all_df, all_n = document_frequencies(first + second, inference_free_mlm)
    idfs = gm.source_idfs(all_df, all_n, first, inference_free_mlm)
    other_df, other_n = document_frequencies(second, inference_free_mlm)
    own_df, own_n = document_frequencies(first, inference_free_mlm)
    np.testing.assert_array_equal(idfs["other_sources_idf"], bm25_form_idf(other_df, other_n))
    np.testing.assert_array_equal(idfs["collection_idf"], bm25_form_idf(own_df, own_n))
    assert not np.array_equal(idfs["other_sources_idf"], idfs["collection_idf"])  # the two differ on real text


def test_heldout_idf_scores_each_source_as_numpy_and_pytrec_eval_do(inference_free_mlm, tiny_texts,
                                                                    tmp_path) -> None:
    data = _two_sources(tmp_path / "gen", tiny_texts)
    # Sample sizes above each source's counts: every passage and query of a source takes part.
    report = gm.heldout_idf(inference_free_mlm, data, n_docs=100, n_queries=100)
    assert set(report) == {"aa", "bb", "mean"}
    encoder = build_encoder("inference-free", {"model_dir": str(inference_free_mlm)})
    all_texts = tiny_texts[:80]
    all_df, all_n = document_frequencies(all_texts, inference_free_mlm)
    for s, source in enumerate(("aa", "bb")):
        row = report[source]
        assert (row["queries"], row["documents"], row["source_passages"]) == (12, 40, 40)
        own = all_texts[s * 40:(s + 1) * 40]
        other = all_texts[(1 - s) * 40:(2 - s) * 40]
        batch = encoder.encode_documents([Document(f"{source}-{i}", t) for i, t in enumerate(own)])
        docs = np.zeros((40, len(encoder.queries.weights)))
        for i in range(40):
            span = slice(batch.offsets[i], batch.offsets[i + 1])
            docs[i, batch.term_ids[span]] = batch.weights[span]
        questions = [" ".join(t.split()[3:9]) for t in own[:12]]
        terms = encoder.queries.encode(questions)
        qrels = {f"q-{source}-{i}": {f"{source}-{i}": 1} for i in range(12)}
        for name, texts in (("other_sources_idf", other), ("collection_idf", own)):
            df, n = document_frequencies(texts, inference_free_mlm)
            idf = bm25_form_idf(df, n)
            run = {}
            for i in range(12):
                q = np.zeros(docs.shape[1])
                ids = terms.term_ids[terms.offsets[i]:terms.offsets[i + 1]]
                q[ids] = idf[ids]
                scores = docs @ q
                run[f"q-{source}-{i}"] = {f"{source}-{j}": float(scores[j]) for j in range(40) if scores[j] > 0}
            per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
            expected = sum(per_query.get(q, {}).get("ndcg_cut_10", 0.0) for q in qrels) / len(qrels)
            assert abs(row[name] - expected) < 6e-5, (source, name, row[name], expected)
        assert 0.0 <= row["model_idf"] <= 1.0
    assert report["mean"]["collection_idf"] == round((report["aa"]["collection_idf"]
                                                     + report["bb"]["collection_idf"]) / 2, 4)


def test_dev_compare_agrees_with_the_threshold_sweep_and_finds_no_difference_in_a_model_with_itself(
        inference_free_mlm, tiny_texts, tmp_path) -> None:
    """The other dev-slice decision of the script: whether a second trained model replaces the first."""
    data = _two_sources(tmp_path / "gen", tiny_texts)
    report = gm.dev_compare(inference_free_mlm, inference_free_mlm, data, n_docs=100)
    sweep = gm.dev_thresholds(inference_free_mlm, data, (0.0,), n_docs=100)
    assert report["queries"] == 24 and report["documents"] == 80
    assert round(report["mean_a"], 4) == sweep["0"]["ndcg_cut_10"] == round(report["mean_b"], 4)
    assert 0.0 < report["mean_a"] < 1.0  # real rankings, some queries missed
    assert report["difference"] == 0.0 and report["randomization_p"] == 1.0 and report["ties"] == 24

"""The search mode per call from Python and the CLI: the same hits for the same knobs (HTTP:
tests/service/test_learned_collections.py).

The index is the quickstart's learned one (real inference-free vectors of
the bundled sample, shipped with it: no model run).  A tight approximate
setting must change some ranking (so the knobs reach the kernel), a setting
with no cut must equal exact search, and bad knobs are one clear error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsearch.cli import app
from sparsearch.index.approx import ApproxSettings
from sparsearch.quickstart import SAMPLE_CORPUS, build_learned
from sparsearch.retriever.retriever import Retriever

QUERIES = ["sparse retrieval with learned term weights", "protein folding structure prediction",
           "neural ranking models for search", "how do vaccines train the immune system",
           "bm25 probabilistic relevance framework", "climate change sea level rise"]
TIGHT = ApproxSettings(query_terms=1, list_fraction=None, candidates=10)


@pytest.fixture(scope="module")
def learned_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("modes") / "learned"
    index, _how = build_learned(SAMPLE_CORPUS, path, encode=False)
    index.close()
    return path


def ranking(hits) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
    return [(doc_id, float(score)) for doc_id, score in zip(hits.ids, hits.scores)]


def cli_ranking(path: Path, query: str, *options: str) -> list[tuple[str, float]]:
    r = CliRunner().invoke(app, ["search", str(path), query, "-k", "10", "--json", *options])
    assert r.exit_code == 0, r.output
    return [(h["_id"], h["score"]) for h in json.loads(r.output)["hits"]]


def test_tight_approx_changes_a_ranking_and_no_cut_equals_exact(learned_index: Path) -> None:
    index = Retriever.open(learned_index)
    changed = 0
    for q in QUERIES:
        exact = ranking(index.search(q, 10))
        assert exact, q
        assert ranking(index.search(q, 10, mode="approx", approx=ApproxSettings.exhaustive())) == exact
        assert ranking(index.search(q, 10, mode="bmp")) == exact
        tight = ranking(index.search(q, 10, mode="approx", approx=TIGHT))
        assert len(tight) <= len(exact)
        changed += tight != exact
    assert changed > 0  # one query term and 10 candidates must miss something on some query


def test_cli_search_mode_equals_python(learned_index: Path) -> None:
    index = Retriever.open(learned_index)
    for q in QUERIES[:3]:
        expected = ranking(index.search(q, 10, mode="approx", approx=TIGHT))
        got = cli_ranking(learned_index, q, "--search-mode", "approx", "--approx-query-terms", "1",
                          "--approx-candidates", "10")
        assert got == expected  # JSON carries each float32 score exactly
        assert cli_ranking(learned_index, q, "--search-mode", "bmp") == ranking(index.search(q, 10))
    # The defaults of ApproxSettings fill the knobs left out.
    q = QUERIES[0]
    assert cli_ranking(learned_index, q, "--search-mode", "approx") == ranking(
        index.search(q, 10, mode="approx", approx=ApproxSettings()))


@pytest.mark.parametrize("options, message", [
    (["--search-mode", "fast"], "unknown search_mode 'fast'"),
    (["--approx-candidates", "5"], "candidates tune search_mode 'approx'"),
    (["--search-mode", "approx", "--approx-list-fraction", "1.5"], "list_fraction must lie in (0, 1]"),
    (["--search-mode", "approx", "--approx-query-terms", "0"], "query_terms must be at least 1"),
])
def test_cli_bad_knobs_are_one_line(learned_index: Path, options: list[str], message: str) -> None:
    r = CliRunner().invoke(app, ["search", str(learned_index), "protein", *options])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_bm25_bmp_is_its_exact_block_max_and_approx_stays_exact(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsearch import Index, read_corpus
    from sparsearch.index.inverted import InvertedIndex

    methods: list[str] = []
    search = InvertedIndex.search

    def recording(self, queries, k, threads=None, method="auto"):  # type: ignore[no-untyped-def]
        methods.append(method)
        return search(self, queries, k, threads=threads, method=method)

    monkeypatch.setattr(InvertedIndex, "search", recording)
    index = Index.build(read_corpus(SAMPLE_CORPUS), path=tmp_path / "bm25")
    index.search(QUERIES[0], 10, mode="bmp")
    assert methods == ["blockmax"]
    for q in QUERIES:
        exact = index.search(q, 10)
        blockmax = index.search(q, 10, method="blockmax")
        assert ranking(index.search(q, 10, mode="bmp")) == ranking(blockmax) == ranking(exact)
        assert ranking(index.search(q, 10, mode="approx", approx=TIGHT)) == ranking(exact)
    r = CliRunner().invoke(app, ["search", str(tmp_path / "bm25"), QUERIES[0], "--json", "--search-mode", "bmp"])
    assert r.exit_code == 0, r.output
    assert [(h["_id"], h["score"]) for h in json.loads(r.output)["hits"]] == ranking(index.search(QUERIES[0], 10))


def test_stored_approx_defaults_give_way_to_a_call_in_another_mode() -> None:
    from sparsearch.errors import InputError
    from sparsearch.retriever.hybrid_options import SearchOptions

    stored = SearchOptions(search_mode="approx", query_terms=4, candidates=50)
    assert stored.sparse_search() == {"mode": "approx", "approx": ApproxSettings(query_terms=4, candidates=50)}
    assert stored.override(search_mode="exact").sparse_search() == {}
    assert stored.override(search_mode="bmp").sparse_search() == {"mode": "bmp", "approx": None}
    assert stored.override(candidates=80).approx_settings() == ApproxSettings(query_terms=4, candidates=80)
    with pytest.raises(InputError, match="candidates tune search_mode 'approx'"):
        stored.override(search_mode="exact", candidates=80)

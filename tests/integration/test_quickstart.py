"""``sparsearch quickstart`` on the bundled sample: BM25 and the shipped learned model side by side, no JIT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparsearch.quickstart import LEARNED_MODEL, SAMPLE_VECTORS, learned_index_dir, read_vectors, side_by_side, Column
from sparsearch.sample import SAMPLE_CORPUS

REPO = Path(__file__).resolve().parents[2]
HAS_MODEL = (REPO / "models" / LEARNED_MODEL / "tokenizer.json").is_file()

#: Runs the CLI in a fresh process and reports whether Numba was imported (it must not be, for the sample).
RUNNER = """
import sys
from sparsearch.cli import app
try:
    app(sys.argv[1:], prog_name="sparsearch")
except SystemExit as e:
    code = e.code
else:
    code = 0
print("NUMBA IMPORTED" if "numba" in sys.modules else "NUMBA NOT IMPORTED")
sys.exit(code)
"""


def quickstart(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The command as a new user runs it: no data folder (SPARSEARCH_DATA unset, no ../shared), a fresh Numba cache."""
    env = {k: v for k, v in os.environ.items() if k != "SPARSEARCH_DATA"}
    env["NUMBA_CACHE_DIR"] = str(cwd / "numba-cache")
    env["COLUMNS"] = "140"
    return subprocess.run([sys.executable, "-c", RUNNER, "quickstart", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not HAS_MODEL, reason="needs the shipped model (models/ of the checkout)")
def test_quickstart_shows_bm25_and_the_learned_model_without_compiling(tmp_path: Path) -> None:
    done = quickstart(tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"corpus: {SAMPLE_CORPUS}" in out
    assert "BM25" in out and f"{LEARNED_MODEL} (learned sparse)" in out
    ranked = [line for line in out.splitlines() if line[:3].strip().isdigit()]
    assert [int(line[:3]) for line in ranked] == [1, 2, 3, 4, 5]
    assert all(line.count("ir-") == 2 for line in ranked)  # one hit per ranking on every row
    assert "NUMBA NOT IMPORTED" in out  # nothing compiled, Numba not even imported: a cold run is a warm run
    assert not (tmp_path / "numba-cache").exists()
    # The learned index is an ordinary inference-free index: it opens and searches like one the model built.
    from sparsearch import Index

    learned = Index.open(learned_index_dir(tmp_path / "quickstart-index"))
    assert learned.info()["encoder"]["name"] == "inference-free"
    assert learned.info()["encoder"]["model"] == LEARNED_MODEL
    hits = learned.search("how are documents ranked with term frequency", 5)
    for line, doc_id, score in zip(ranked, hits.ids, hits.scores):
        assert f"{float(score):8.4f}  {doc_id}  " in line.split("   ", 1)[1]  # the learned column


def test_quickstart_bm25_only_and_k(tmp_path: Path) -> None:
    done = quickstart(tmp_path, "--no-learned", "-k", "3", "--query", "documents ranked by term frequency")
    assert done.returncode == 0, done.stderr
    ranked = [line for line in done.stdout.splitlines() if line[:3].strip().isdigit()]
    from sparsearch import Index, read_corpus
    from sparsearch.sample import SAMPLE_CORPUS

    want = Index.build(read_corpus(SAMPLE_CORPUS)).search("documents ranked by term frequency", 3)
    assert len(ranked) == len(want.ids) == 3  # -k 3 is honoured: exactly the top 3 of a direct build
    for line, doc_id, score in zip(ranked, want.ids, want.scores):
        assert f"{float(score):8.4f}  {doc_id}  " in line
    assert LEARNED_MODEL not in done.stdout.split("query:")[1].splitlines()[1]
    assert not learned_index_dir(tmp_path / "quickstart-index").exists()
    assert "NUMBA NOT IMPORTED" in done.stdout
    bad = quickstart(tmp_path, "-k", "0")
    assert bad.returncode == 2 and "k must be at least 1" in bad.stderr


def test_shipped_vectors_cover_the_sample() -> None:
    """One vector per sample document, float32 weights written exactly (shortest decimal of each float32)."""
    import numpy as np

    vectors = read_vectors(SAMPLE_VECTORS)
    ids = [json.loads(line)["_id"] for line in SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines() if line]
    assert sorted(vectors) == sorted(ids)
    for vector in vectors.values():
        weights = np.array(list(vector.values()), np.float32)
        assert len(weights) and (weights > 0).all()
        assert [float(str(w)) for w in weights] == list(vector.values())


def test_side_by_side_cuts_long_titles_to_the_width() -> None:
    columns = [Column("BM25", [(3.5, "a", "x" * 200)]), Column("other", [(1.0, "b", "short"), (0.5, "c", "t")])]
    text = side_by_side(columns, width=100)
    lines = text.splitlines()
    assert len(lines) == 3 and all(len(line) <= 100 for line in lines)
    assert "…" in lines[1] and "short" in lines[1] and lines[2].startswith("  2") and "c  t" in lines[2]

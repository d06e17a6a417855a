"""SIGKILL while an index is being written leaves the previous index whole and openable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparsearch import Index, read_corpus

WRITER = """
import sys
from sparsearch import Index, read_corpus
Index.build(read_corpus(sys.argv[1]), path=sys.argv[2], overwrite=True)
print("done", flush=True)
"""


def start_writer(corpus: Path, target: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(corpus), str(target)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def big_corpus(data_root: Path) -> Path:
    return data_root / "beir" / "scifact" / "corpus.jsonl"


def corpus_size(corpus: Path) -> int:
    """Documents in a corpus file (5,183 for SciFact; fewer for the synthetic stand-in)."""
    with open(corpus, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def test_kill_at_spread_times(scifact_slice: Path, big_corpus: Path, tmp_path: Path) -> None:
    target = tmp_path / "idx"
    first = Index.build(read_corpus(scifact_slice), path=target)
    probe = ["cancer", "vitamin", "protein folding"]
    expected = [h.ids for h in first.search_batch(probe, 5)]
    # Time one full overwrite to spread kill points across its whole life.
    t = time.perf_counter()
    p = start_writer(big_corpus, tmp_path / "timing")
    p.wait(timeout=300)
    duration = time.perf_counter() - t
    for fraction in (0.2, 0.5, 0.7, 0.85, 0.95):
        p = start_writer(big_corpus, target)
        time.sleep(duration * fraction)
        p.send_signal(signal.SIGKILL)
        p.wait()
        idx = Index.open(target)
        if idx.inverted.manifest.generation == 1 or idx.n_docs == 1500:
            assert idx.n_docs == 1500
            assert [h.ids for h in idx.search_batch(probe, 5)] == expected
        else:
            assert idx.n_docs == corpus_size(big_corpus)  # the new index, committed whole before the kill
        if idx.n_docs == corpus_size(big_corpus):
            # Put the small index back for the next trial.
            Index.build(read_corpus(scifact_slice), path=target, overwrite=True)


def test_kill_while_segment_files_are_written(scifact_slice: Path, big_corpus: Path, tmp_path: Path) -> None:
    """Kill as soon as the new generation's segment directory appears (mid-write)."""
    target = tmp_path / "idx"
    Index.build(read_corpus(scifact_slice), path=target)
    p = start_writer(big_corpus, target)
    deadline = time.time() + 300
    seen = False
    while time.time() < deadline and p.poll() is None:
        if any(e.name.startswith("seg-000002") for e in target.iterdir()):
            os.kill(p.pid, signal.SIGKILL)
            seen = True
            break
        time.sleep(0.0005)
    p.wait()
    idx = Index.open(target)
    if seen and idx.inverted.manifest.generation == 1:
        assert idx.n_docs == 1500
    else:  # the writer won the race and committed: the new index must then be whole
        assert idx.n_docs == corpus_size(big_corpus)
    # The next writer sweeps the leftovers and commits normally.
    Index.build(read_corpus(scifact_slice), path=target, overwrite=True)
    names = sorted(e.name for e in target.iterdir() if not e.name.startswith("."))
    assert len([n for n in names if n.startswith("seg-")]) == 1
    assert Index.open(target).n_docs == 1500

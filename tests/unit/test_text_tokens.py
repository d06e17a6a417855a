"""Text token sets beside the postings: exact live document frequencies under every kind of write.

No encoder and no model here: batches carry hand-made token sets
(:class:`~sparsearch.types.TokenSets`), and the index's
``CollectionStats.text_doc_freq`` / ``text_n_docs`` are compared with a
recount over the documents that should be alive, after adds, deletes,
upserts, commits, merges, reopening and recovery of a live writer from its
log after an unclean stop.  The encoder side is tests/learned/test_collection_idf.py.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sparsearch.errors import IndexFormatError
from sparsearch.index import verify
from sparsearch.index.config import IndexConfig
from sparsearch.index.flush_scheduler import scheduler
from sparsearch.index.formats import SPARSE
from sparsearch.index.merge import MergePolicy
from sparsearch.index.segment import build_segment
from sparsearch.index.writer import IndexWriter, LiveSettings
from sparsearch.scoring import Scoring
from sparsearch.types import SparseBatch, TokenSets

VOCAB = 40
CONFIG = IndexConfig(stored_fields=("title",))


class Terms:
    """A fixed term space of ``VOCAB`` ids (the index asks nothing more of an encoder)."""

    n_terms = VOCAB

    def manifest_entry(self) -> dict[str, Any]:
        return {"name": "precomputed", "config": {}}

    def state_files(self) -> dict[str, bytes]:
        return {}


def batch(docs: list[tuple[dict[int, float], list[int]]], with_text: bool = True) -> SparseBatch:
    """Rows ``(vector, text token ids in any order, with repeats)``."""
    vectors = SparseBatch.from_dicts([v for v, _ in docs])
    return vectors.with_text_tokens(TokenSets.from_rows([t for _, t in docs], VOCAB)) if with_text else vectors


def recount(alive: dict[str, list[int]]) -> tuple[int, np.ndarray]:
    df = np.zeros(VOCAB, np.int64)
    for tokens in alive.values():
        for t in set(tokens):
            df[t] += 1
    return len(alive), df


def assert_exact(writer: IndexWriter, alive: dict[str, list[int]]) -> None:
    stats = writer.snapshot.stats
    n, df = recount(alive)
    assert stats.text_doc_freq is not None
    assert stats.text_n_docs == n == writer.n_docs
    got = np.zeros(VOCAB, np.int64)
    got[: len(stats.text_doc_freq)] = stats.text_doc_freq
    np.testing.assert_array_equal(got, df)


# ---------------------------------------------------------------- the sets themselves, by hand


def test_token_sets_by_hand() -> None:
    sets = TokenSets.from_rows([[5, 3, 5, 3], [], [1, 2, 1], [39]], VOCAB)
    assert sets.offsets.tolist() == [0, 2, 2, 4, 5] and sets.ids.tolist() == [3, 5, 1, 2, 39]
    assert sets.ids.dtype == np.uint16 and sets.offsets.dtype == np.uint32
    assert [sets.row(i).tolist() for i in range(4)] == [[3, 5], [], [1, 2], [39]]
    taken = sets.take([3, 0, 1])
    assert taken.offsets.tolist() == [0, 1, 3, 3] and taken.ids.tolist() == [39, 3, 5]
    joined = TokenSets.concatenate([taken, sets.take([2])])
    assert joined.offsets.tolist() == [0, 1, 3, 3, 5] and joined.ids.tolist() == [39, 3, 5, 1, 2]
    df = np.zeros(40, np.int64)
    df[[1, 2, 3, 5, 39]] = 1
    np.testing.assert_array_equal(sets.doc_freq(), df)
    # Rows 0 and 3 deleted: 3, 5 and 39 are held by no live row.
    df[[3, 5, 39]] = 0
    np.testing.assert_array_equal(sets.doc_freq(np.array([1, 0, 0, 1], np.uint8)), df)
    with pytest.raises(ValueError, match=r"\[0, 40\)"):
        TokenSets.from_rows([[40]], VOCAB)
    wide = TokenSets.from_rows([[70_000, 3]], 100_000)
    assert wide.ids.dtype == np.uint32 and wide.ids.tolist() == [3, 70_000]


def test_batches_carry_them_through_concatenation_and_refuse_a_mix() -> None:
    a = batch([({1: 1.0}, [4, 2]), ({2: 0.5}, [7])])
    b = batch([({3: 2.0}, [2, 2, 9])])
    both = SparseBatch.concatenate([a, b])
    assert both.text_tokens is not None and both.text_tokens.offsets.tolist() == [0, 2, 3, 5]
    assert both.text_tokens.ids.tolist() == [2, 4, 7, 2, 9]
    with pytest.raises(ValueError, match="text_tokens"):
        SparseBatch.concatenate([a, batch([({3: 2.0}, [1])], with_text=False)])
    with pytest.raises(ValueError, match="one row per row"):
        SparseBatch.from_dicts([{1: 1.0}]).with_text_tokens(TokenSets.from_rows([[1], [2]], VOCAB))


def test_structure_check_refuses_sets_that_would_miscount() -> None:
    seg = build_segment(batch([({1: 1.0}, [4, 2]), ({2: 0.5}, [7])]), ["a", "b"], [{}, {}], VOCAB, CONFIG)
    assert verify.first_problem(seg) is None
    for offsets, ids, needle in (([0, 2, 3], [4, 2, 7], "ascending"), ([0, 2, 3], [2, 2, 7], "ascending"),
                                 ([0, 2, 3], [2, 4, 40], "token id"), ([0, 3], [2, 4, 7], "entries"),
                                 ([0, 2, 4], [2, 4, 7], "monotone")):
        seg.text_tokens = TokenSets(np.asarray(offsets, np.uint32), np.asarray(ids, np.uint16))
        problem = verify.first_problem(seg)
        assert problem is not None and "text_tokens" in problem and needle in problem, problem
    # A row may start below where the previous one ended.
    seg.text_tokens = TokenSets(np.asarray([0, 2, 3], np.uint32), np.asarray([4, 9, 1], np.uint16))
    assert verify.first_problem(seg) is None


def test_build_refuses_token_ids_outside_the_term_space() -> None:
    vectors = SparseBatch.from_dicts([{1: 1.0}]).with_text_tokens(TokenSets.from_rows([[45]], 100))
    with pytest.raises(ValueError, match=r"text token ids must lie in \[0, 40\)"):
        build_segment(vectors, ["a"], [{}], VOCAB, CONFIG)


# ---------------------------------------------------------------- on disk


def test_files_round_trip_and_a_missing_one_is_corruption(tmp_path: Path) -> None:
    writer = IndexWriter.in_memory([], Scoring(), CONFIG, Terms())
    writer.add(["a", "b"], batch([({1: 1.0}, [4, 2]), ({2: 0.5}, [7, 2])]))
    writer.commit()
    writer.save(tmp_path / "idx")
    files = sorted(p.name for p in (tmp_path / "idx").rglob("text_tokens.*"))
    assert files == ["text_tokens.ids.npy", "text_tokens.offsets.npy"]
    again = IndexWriter.open(tmp_path / "idx", Terms())
    assert_exact(again, {"a": [4, 2], "b": [7, 2]})
    seg = again.snapshot.segments[0]
    assert seg.text_tokens.ids.tolist() == [2, 4, 2, 7]

    from sparsearch.index.manifest import Manifest

    manifest = Manifest.read(tmp_path / "idx")
    info = manifest.segments[0]
    assert set(info.crc32) >= {"text_tokens.ids.npy", "text_tokens.offsets.npy"}  # checksummed like the rest
    del info.files["text_tokens.ids.npy"], info.crc32["text_tokens.ids.npy"]
    manifest.write(tmp_path / "idx")
    with pytest.raises(IndexFormatError, match="text_tokens.offsets.npy but no text_tokens.ids"):
        IndexWriter.open(tmp_path / "idx", Terms())


def test_an_index_without_them_has_no_files_and_no_text_statistics(tmp_path: Path) -> None:
    writer = IndexWriter.in_memory([], Scoring(), CONFIG, Terms())
    writer.add(["a", "b"], batch([({1: 1.0}, []), ({2: 0.5}, [])], with_text=False))
    writer.commit()
    writer.save(tmp_path / "idx")
    assert not list((tmp_path / "idx").rglob("text_tokens*"))
    again = IndexWriter.open(tmp_path / "idx", Terms())
    assert again.snapshot.segments[0].text_tokens is None
    assert again.snapshot.stats.text_doc_freq is None and again.snapshot.stats.text_n_docs == 0


# ---------------------------------------------------------------- exact under writes


def random_doc(rng: random.Random) -> tuple[dict[int, float], list[int]]:
    vector = {rng.randrange(VOCAB): rng.uniform(0.1, 2.0) for _ in range(rng.randint(1, 5))}
    tokens = [rng.randrange(VOCAB) for _ in range(rng.randint(0, 12))]
    return vector, tokens


def write_round(writer: IndexWriter, rng: random.Random, alive: dict[str, list[int]], next_id: list[int],
                sources: bool = False) -> None:
    """Adds (new ids and upserts of live ones) then deletes (live ids and unknown ones), one model kept beside."""
    ids, docs = [], []
    for _ in range(rng.randint(1, 8)):
        if alive and rng.random() < 0.3:
            doc_id = rng.choice(sorted(alive))  # an upsert: new vector, new text
        else:
            doc_id = f"d{next_id[0]}"
            next_id[0] += 1
        ids.append(doc_id)
        docs.append(random_doc(rng))
    srcs = [{"vector": {str(t): w for t, w in v.items()}, "tokens": toks} for v, toks in docs] if sources else None
    writer.add(ids, batch(docs), sources=srcs)
    for doc_id, (_, tokens) in zip(ids, docs):
        alive.pop(doc_id, None)
        alive[doc_id] = tokens
    gone = rng.sample(sorted(alive), min(len(alive), rng.randint(0, 4))) + ["never-added"]
    assert sorted(writer.delete(gone)) == sorted(g for g in gone if g in alive)
    for doc_id in gone:
        alive.pop(doc_id, None)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_writer_rounds_commits_merges_and_reopens(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    alive: dict[str, list[int]] = {}
    next_id = [0]
    IndexWriter.in_memory([], Scoring(), CONFIG, Terms()).save(tmp_path / "idx")
    writer = IndexWriter.open(tmp_path / "idx", Terms())
    merged = False
    for round_ in range(12):
        write_round(writer, rng, alive, next_id)
        writer.commit()
        assert_exact(writer, alive)
        if round_ % 4 == 3:
            while writer.merge(MergePolicy(merge_factor=2, max_deleted_fraction=0.1)):
                merged = True
            assert_exact(writer, alive)
        if round_ % 3 == 2:
            writer = IndexWriter.open(tmp_path / "idx", Terms())
            assert_exact(writer, alive)
    assert merged


def reindex(ids: list[str], sources: list[dict[str, Any]]) -> tuple[SparseBatch, list[dict[str, Any]]]:
    """Recovery: the logged sources carry the vector and the text tokens."""
    docs = [({int(t): w for t, w in s["vector"].items()}, s["tokens"]) for s in sources]
    return batch(docs), [{} for _ in ids]


def crash(writer: IndexWriter) -> None:
    """What ``kill -9`` leaves of a live writer: no flush, no close; its descriptors and lock just go away."""
    scheduler().unregister(writer)
    writer._log.close()  # type: ignore[union-attr]
    writer._held.close()
    writer._closed = True


@pytest.mark.parametrize("seed", [0, 1])
def test_live_writer_flushes_merges_and_recovers_from_its_log(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    settings = LiveSettings(flush_docs=7, flush_seconds=10**9, flush_bytes=10**12, merge=MergePolicy(merge_factor=2))
    IndexWriter.in_memory([], Scoring(), CONFIG, Terms()).save(tmp_path / "idx")
    (tmp_path / "wal.jsonl").write_bytes(b"")

    def open_live() -> IndexWriter:
        return IndexWriter.open_live(tmp_path / "idx", tmp_path / "wal.jsonl", Terms(), reindex, settings)

    writer = open_live()
    alive: dict[str, list[int]] = {}
    next_id = [0]
    replayed = 0
    for round_ in range(14):
        write_round(writer, rng, alive, next_id, sources=True)
        assert_exact(writer, alive)  # visible at once: buffer parts, their masks, pending deletes
        if round_ % 5 == 4:
            replayed += writer.log_bytes() > 0
            crash(writer)
            writer = open_live()  # replays the log over the last flushed generation
            assert_exact(writer, alive)
    assert replayed and writer.committed.manifest.generation > 3  # recovered writes, and flushes happened
    writer.close()
    assert_exact(IndexWriter.open(tmp_path / "idx", Terms()), alive)

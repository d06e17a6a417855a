"""Random operations under random disk faults and crashes: the live index equals a model of acknowledged writes.

The model is exact because a failed write has no effect at all: every
operation that returned is in the model, every one that raised is not.  After
every crash (no flush, no close, as ``kill -9``) and at the end, the reopened
index must hold exactly the model's documents, with their content, and score
like a fresh build of them.
"""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsearch import BM25Encoder, Document, Index
from sparsearch.errors import StorageError
from sparsearch.index.flush_scheduler import scheduler
from sparsearch.index.merge import MergePolicy
from sparsearch.index.storage import FaultInjector, inject_faults
from sparsearch.index.writer import LiveSettings
from sparsearch.retriever.retriever import Retriever

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
SETTINGS = LiveSettings(flush_docs=4, flush_seconds=3600, flush_bytes=1500, merge=MergePolicy(merge_factor=2))

ids = st.sampled_from([f"d{i}" for i in range(8)])
texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(" ".join)
operations = st.lists(st.one_of(
    st.tuples(st.just("upsert"), st.lists(st.tuples(ids, texts), min_size=1, max_size=3)),
    st.tuples(st.just("delete"), st.lists(ids, min_size=1, max_size=2)),
    st.tuples(st.just("flush"), st.none()),
    st.tuples(st.just("crash"), st.none()),
), min_size=1, max_size=20)


def crash(live: Retriever) -> None:
    """What ``kill -9`` leaves: no flush, no close; file descriptors and the lock simply go away."""
    if live.closed:
        return
    scheduler().unregister(live.writer)
    live.writer._log.close()
    live.writer._held.close()
    live.writer._closed = True


def check(live: Retriever, model: dict[str, Document]) -> None:
    assert live.n_docs == len(model)
    for doc_id, d in model.items():
        assert live.document(doc_id) == Document(doc_id, d.title, d.text, d.metadata)
    if model:
        want = Index.build(list(model.values())).search("alpha gamma epsilon", 20).as_dict()
        got = {i: s for i, s in live.search("alpha gamma epsilon", 20)}
        assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-5 for k in got)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, rate=st.sampled_from([0.0, 0.05, 0.2]), seed=st.integers(0, 2**16))
def test_random_operations_faults_and_crashes_keep_exactly_the_acknowledged_writes(
        ops: list[tuple[str, object]], rate: float, seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c"
        live = Retriever.create_live(path, BM25Encoder(), settings=SETTINGS)
        model: dict[str, Document] = {}
        # A double fault (a write failed and the log could not be cut back) has an unknown
        # outcome until the log is repaired; a crash before that may replay that one write.
        unknown: dict[str, Document] | None = None
        faults = FaultInjector(rate=rate, errnos=(errno.ENOSPC, errno.EIO), seed=seed)
        try:
            for op, arg in ops:
                if op == "crash":
                    live, model = reopen(live, path, model, unknown)
                    unknown = None
                    continue
                with inject_faults(faults):
                    try:
                        model = apply(live, op, arg, model)
                    except StorageError as e:
                        # Refused with its cause and (checked below) without effect, unless unknown.
                        if e.outcome_unknown:
                            unknown = expected(op, arg, model)
                    if live.writer._log.broken is None:
                        unknown = None  # the log was repaired: an unknown record was cut off
                check(live, model)
            live, model = reopen(live, path, model, unknown)
            live.close()
            live = Retriever.open_live(path, SETTINGS)
            check(live, model)
        finally:
            crash(live)


def expected(op: str, arg: object, model: dict[str, Document]) -> dict[str, Document]:
    after = dict(model)
    if op == "upsert":
        for i, t in arg:  # type: ignore[attr-defined]
            after.pop(i, None)
            after[i] = Document(i, "", t, {"t": t})
    elif op == "delete":
        for i in arg:  # type: ignore[attr-defined]
            after.pop(i, None)
    return after


def apply(live: Retriever, op: str, arg: object, model: dict[str, Document]) -> dict[str, Document]:
    """Run one operation; returns the model after it (only reached when it succeeded)."""
    if op == "upsert":
        live.upsert([Document(i, "", t, {"t": t}) for i, t in arg])  # type: ignore[attr-defined]
    elif op == "delete":
        found = live.delete(arg)  # type: ignore[arg-type]
        assert set(found) == {i for i in arg if i in model}  # type: ignore[attr-defined]
    else:
        live.flush()
    return expected(op, arg, model)


def reopen(live: Retriever, path: Path, model: dict[str, Document],
           unknown: dict[str, Document] | None) -> tuple[Retriever, dict[str, Document]]:
    crash(live)
    live = Retriever.open_live(path, SETTINGS)
    if unknown is not None and live.n_docs == len(unknown) and all(
            live.document(i) == Document(i, d.title, d.text, d.metadata) for i, d in unknown.items()):
        model = unknown  # the write of unknown outcome was replayed
    check(live, model)
    return live, model

"""Chaos benchmark (issue 14): injected disk faults, kill -9, a real full disk, and recovery time.

    python benchmarks/chaos.py --out docs/results/chaos.json [--faults 200] [--extra-faults 50]
                               [--double-faults 200] [--kills 40] [--recovery-docs 100000] [--tmpfs-mb 20]
                               [--seed 0] [--only faults,kills,recovery,fulldisk] [--no-server]

Results and reading: docs/faults.md.

Five parts, each checked against the issue's targets (0 acknowledged writes
lost, 0 ghost writes, 0 restarts that fail, every fault answered with its
cause):

1. **Injected faults, in process.**  For every phase -- log append (write,
   fsync), flush (segment files, deletion masks), merge, manifest commit
   (temporary file, rename, directory fsync) -- and for each of ENOSPC and EIO,
   a campaign of random upserts, replacements, deletes and flushes on a
   ``Retriever`` runs until ``--faults`` faults of that kind have fired in that
   phase.  Faults go through the index's own I/O gate
   (``sparsearch.index.storage.inject_faults``); a subclass of its
   ``FaultInjector`` classifies each gated operation by the call stack, so a
   fault is placed at the n-th operation *of one phase* (n random, every
   position of the phase is hit).  After each fault: the error type and errno
   are checked, the failed write must be invisible (get and search), the log
   must be cut back, no partial files may stay behind, and the same kind of
   request must succeed again at once (no restart).  Often the index is
   "crashed" right after the fault (closed without flushing: the disk state
   of ``kill -9``) and reopened, and every document ever written is compared
   with the model of acknowledged writes.  At the end the scores are compared
   with a fresh build of the surviving documents.  Beyond the issue's list,
   ``--extra-faults`` per errno hit the flush's encoder files (vocabulary)
   and the emptying of the log after a flush.
2. **Double faults**: a log append fails and cutting the failed record back
   fails too (the error must then say its outcome is unknown); half the time
   a flush follows whose log reset fails as well, then more writes and
   crashes.  Reported separately.
3. **kill -9**: a child process (forked from a preloaded fork server) writes
   to a ``Retriever`` with the background flush scheduler running, printing
   each request before it starts and each acknowledgement after it returns
   (``os.write`` to a file, so nothing is buffered); it is killed with SIGKILL
   after a random delay and the parent reopens the index and checks every
   acknowledged write (the one request in flight may or may not have
   happened).  Half of the trials also inject random faults in the child.
4. **Recovery time** after ``kill -9`` with ``--recovery-docs`` unflushed
   single-document writes: the log is written directly with
   ``sparsearch.index.wal.encode_record`` (one record per document, the bytes
   ``Retriever.upsert`` would log), then a fresh process opens it and
   searches; the time is split into log read+parse, encoding and building.
   The same log under a restarted ``sparsearch serve``: time from process
   start to the first search answered 200.
5. **A real full disk**: ``sparsearch serve`` with its data directory on a
   ``--tmpfs-mb`` tmpfs (needs root to mount) and a filler file; a client
   writes until the disk is full, checks the answers (507/503 naming the
   cause), kills the server with SIGKILL and restarts it *on the full disk*,
   frees the space, checks writes succeed again without a restart, kills and
   restarts again, and checks every acknowledged document (exact content) is
   there and no refused one.

The fault campaigns and kill trials write under ``--workdir`` (default
``/dev/shm``, a tmpfs: fsyncs cost nothing there, and ``kill -9`` keeps the
page cache anyway, so what is checked is the same) and run the campaigns with
one Numba thread (their segments hold a few documents; waking a second thread
costs more than it saves).  The recovery measurement reads from the ordinary
temporary directory.  Everything is seeded (``--seed``); request counts and
kill points can differ a little between runs, because segment files are
fsynced by a thread pool and the kill delays are wall-clock.
"""

from __future__ import annotations

import argparse
import contextlib
import errno as errno_codes
import json
import logging
import multiprocessing
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(HERE.parent))

from sparsearch import BM25Encoder, Document, Index  # noqa: E402
from sparsearch.errors import StorageError, StorageFullError  # noqa: E402
from sparsearch.index.flush_scheduler import scheduler  # noqa: E402
from sparsearch.index.manifest import MANIFEST_NAME, Manifest  # noqa: E402
from sparsearch.index.merge import MergePolicy  # noqa: E402
from sparsearch.index.storage import FaultInjector, inject_faults  # noqa: E402
from sparsearch.index.writer import LiveSettings  # noqa: E402
from sparsearch.retriever.retriever import INDEX_DIR, WAL_NAME, Retriever  # noqa: E402

ERRNOS = {"ENOSPC": errno_codes.ENOSPC, "EIO": errno_codes.EIO}
# The phases the issue names: (a) log append, (b) flush, (c) merge, (d) manifest commit.
PHASES = ("wal_write", "wal_fsync", "flush_segment", "flush_deletes", "merge",
          "manifest_tmp", "manifest_rename", "manifest_dirsync")
# Beyond the list: the encoder's files of a flush (vocabulary), and emptying the log after a flush.
EXTRA_PHASES = ("flush_other", "wal_reset")
KEY = "chaos-key"
FAULTS_PER_INDEX = 25  # a campaign starts a new index after this many faults
AUTH = {"Authorization": f"Bearer {KEY}"}
log = logging.getLogger("chaos")


# ------------------------------------------------------------------ documents

_WORDS: list[str] = []


def words() -> list[str]:
    """SciFact's words (short scientific texts), or a synthetic vocabulary when the data is absent."""
    if not _WORDS:
        data = Path(os.environ.get("SPARSEARCH_DATA") or HERE.parent.parent / "shared" / "data")
        corpus = data / "beir" / "scifact" / "corpus.jsonl"
        if corpus.exists():
            with open(corpus, encoding="utf-8") as f:
                for i, line in enumerate(f):
                    if i >= 2000:
                        break
                    _WORDS.extend(json.loads(line)["text"].split())
        else:
            rng = random.Random(0)
            _WORDS.extend("".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(3, 9)))
                          for _ in range(50_000))
    return _WORDS


def token(n: int) -> str:
    """A unique searchable word per write attempt (the analyzer keeps ``zq0000123x`` whole)."""
    return f"zq{n:07d}x"


def make_doc(doc_id: str, attempt: int, rng: random.Random, lo: int = 6, hi: int = 24) -> Document:
    w = words()
    start = rng.randrange(len(w) - hi)
    text = " ".join(w[start : start + rng.randint(lo, hi)]) + " " + token(attempt)
    return Document(doc_id, f"doc {doc_id}", text, {"attempt": attempt})


def fields_of(d: Document) -> dict[str, Any]:
    return {"title": d.title, "text": d.text, "metadata": d.metadata}


def visible(live: Retriever, doc_id: str) -> dict[str, Any] | None:
    """A document's title, text and metadata as a live collection returns it, or ``None``."""
    doc = live.document(doc_id)
    return None if doc is None else fields_of(doc)


# ------------------------------------------------------------------ fault injection by phase

@dataclass
class Arm:
    """Fail the ``nth`` (0-based) gated operation of ``phase`` during one request; then maybe a second fault."""

    phase: str
    code: int
    nth: int
    then: tuple[str, int] | None = None  # (phase, errno) of a second fault right after the first
    seen: int = 0
    fired: bool = False
    then_fired: bool = False


@dataclass
class Fault:
    phase: str
    parent: str
    op: str
    path: str
    code: int


_FRAME_MARKS = {
    ("append", "wal.py"): "wal", ("_cut_back", "wal.py"): "wal_cutback", ("reset", "wal.py"): "wal_reset",
    ("open", "wal.py"): "wal_open", ("write", "manifest.py"): "manifest", ("merge", "writer.py"): "merge",
    ("commit", "writer.py"): "flush", ("save", "writer.py"): "save", ("create_live", "retriever.py"): "create",
}


_MARK_OF_CODE: dict[Any, str | None] = {}


@dataclass
class PhaseInjector(FaultInjector):
    """The storage layer's injector, placing faults by phase (read from the call stack).

    Segment files are fsynced by a thread pool whose stack does not show the
    caller; such operations inherit the phase context of the last operation
    the calling thread made (the writes just before them).
    """

    arm: Arm | None = None
    on_fire: Callable[[Fault], None] | None = None
    per_phase: Counter = field(default_factory=Counter)  # gated operations per phase, this request
    faults: list[Fault] = field(default_factory=list)
    _context: str = "other"

    def classify(self, op: str, path: str) -> tuple[str, str]:
        marks = []
        frame = sys._getframe(2)
        while frame is not None:
            code = frame.f_code
            mark = _MARK_OF_CODE.get(code, False)
            if mark is False:
                mark = _MARK_OF_CODE[code] = _FRAME_MARKS.get((code.co_name, os.path.basename(code.co_filename)))
            if mark:
                marks.append(mark)
            frame = frame.f_back
        if path.endswith(WAL_NAME):
            for m in ("wal_cutback", "wal_reset", "wal_open"):
                if m in marks:
                    return m, m
            return ("wal_" + op if "wal" in marks else "wal_other"), "wal"
        if "merge" in marks:
            ctx = "merge"
        elif "flush" in marks or "commit" in marks:
            ctx = "flush"
        elif marks:
            ctx = marks[-1]
        else:
            ctx = self._context  # a pool thread's fsync: the context of the writes just before
        if marks:
            self._context = ctx
        if "manifest" in marks:
            sub = "rename" if op == "rename" else "dirsync" if op == "fsync" and os.path.isdir(path) else "tmp"
            return "manifest_" + sub, ctx
        if ctx == "flush":
            name = os.path.basename(path)
            if name.startswith("del-"):
                return "flush_deletes", ctx
            if "/seg-" in path or name.startswith("seg-"):
                return "flush_segment", ctx
            return "flush_other", ctx
        return ctx, ctx

    def check(self, op: str, path: str | Path) -> int | None:  # type: ignore[override]
        phase, parent = self.classify(op, str(path))
        code: int | None = None
        with self._lock:
            self.calls += 1
            self.per_phase[phase] += 1
            a = self.arm
            if a is not None:
                if not a.fired and phase == a.phase:
                    if a.seen == a.nth:
                        a.fired, code = True, a.code
                    a.seen += 1
                elif a.fired and a.then and not a.then_fired and phase == a.then[0]:
                    a.then_fired, code = True, a.then[1]
            if code is None and self.rate and self._rng.random() < self.rate:
                code = self._rng.choice(self.errnos)
            if code is not None:
                fault = Fault(phase, parent, op, str(path), code)
                self.injected.append((op, str(path), code))
                self.faults.append(fault)
        if code is not None and self.on_fire is not None:
            self.on_fire(fault)
        return code


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def captured_logs() -> Iterator[LogCapture]:
    handler = LogCapture()
    logger = logging.getLogger("sparsearch")
    old = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = old


def error_chain_errnos(error: BaseException | None) -> set[int]:
    out, seen = set(), set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno is not None:
            out.add(error.errno)
        error = error.__cause__ or error.__context__
    return out


def raised_with_cause(error: BaseException | None, code: int) -> bool:
    """The error a caller can act on: StorageFullError for ENOSPC, another StorageError for EIO, errno kept."""
    if not isinstance(error, StorageError) or error.errno != code:
        return False
    if code == errno_codes.ENOSPC:
        return isinstance(error, StorageFullError) and "no space left" in str(error)
    return not isinstance(error, StorageFullError) and os.strerror(code) in str(error)


def logged_with_cause(records: list[logging.LogRecord], code: int) -> str | None:
    """``"cause"`` if a warning names the fault (errno in its exception or text), ``"no cause"`` if only a warning."""
    if not records:
        return None
    names = [os.strerror(code).lower()] + (["no space left"] if code == errno_codes.ENOSPC else [])
    for r in records:
        exc = r.exc_info[1] if r.exc_info else None
        text = r.getMessage().lower()
        if code in error_chain_errnos(exc) or any(n in text for n in names):
            return "cause"
    return "no cause"


# ------------------------------------------------------------------ the model of acknowledged writes

@dataclass
class Model:
    """What must be visible: id -> fields of its last acknowledged upsert (absent: deleted or never acked)."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempted: set[str] = field(default_factory=set)
    failed_texts: set[str] = field(default_factory=set)
    failed_tokens: list[str] = field(default_factory=list)
    acked_tokens: dict[str, str] = field(default_factory=dict)  # token -> id, last acked version only

    def upserted(self, docs: list[Document]) -> None:
        for d in docs:
            self.attempted.add(d.doc_id)
            old = self.docs.get(d.doc_id)
            if old is not None:
                self.acked_tokens.pop(old["text"].rsplit(" ", 1)[-1], None)
            self.docs[d.doc_id] = fields_of(d)
            self.acked_tokens[d.text.rsplit(" ", 1)[-1]] = d.doc_id

    def deleted(self, ids: list[str]) -> None:
        for i in ids:
            old = self.docs.pop(i, None)
            if old is not None:
                self.acked_tokens.pop(old["text"].rsplit(" ", 1)[-1], None)

    def adopt(self, doc_id: str, got: dict[str, Any] | None) -> None:
        """Take the observed state of an id whose last request was in flight at the kill."""
        if got is None:
            self.deleted([doc_id])
        else:
            self.upserted([Document(doc_id, got.get("title", ""), got.get("text", ""), got.get("metadata") or {})])

    def failed(self, docs: list[Document]) -> None:
        for d in docs:
            self.attempted.add(d.doc_id)
            self.failed_texts.add(d.text)
            self.failed_tokens.append(d.text.rsplit(" ", 1)[-1])


def compare(live: Retriever, model: Model, rng: random.Random, ambiguous: dict[str, list[Any]] | None = None,
            sample: int = 50) -> Counter:
    """Lost acknowledged writes, ghost writes and other mismatches between ``live`` and ``model``.

    ``ambiguous``: ids of a request in flight at ``kill -9``: either state is accepted.
    """
    out: Counter = Counter()
    ambiguous = ambiguous or {}
    out["documents_compared"] += len(model.attempted)
    for doc_id in sorted(model.attempted):
        got = visible(live, doc_id)
        if doc_id in ambiguous:
            if got not in ambiguous[doc_id]:
                out["wrong_in_flight"] += 1
            continue
        want = model.docs.get(doc_id)
        if got == want:
            continue
        if got is not None and got["text"] in model.failed_texts:
            out["ghost"] += 1
        elif want is None:
            out["ghost"] += 1  # a deleted (or never acknowledged) document is visible
        else:
            out["lost"] += 1
    expected_n = len(model.docs) + sum(1 for i in ambiguous if i not in model.docs and visible(live, i) is not None) \
        - sum(1 for i in ambiguous if i in model.docs and visible(live, i) is None)
    if live.n_docs != expected_n:
        out["count_mismatch"] += 1
    for tok in model.failed_tokens[-200:]:  # a refused write must not be searchable either
        if live.search(tok, 1):
            out["ghost_search"] += 1
    toks = list(model.acked_tokens.items())
    for tok, doc_id in rng.sample(toks, min(sample, len(toks))):
        if doc_id in ambiguous:
            continue
        hits = live.search(tok, 1)
        if not hits or hits.ids[0] != doc_id:
            out["lost_search"] += 1
    return out


def scores_match_fresh_build(live: Retriever, model: Model, rng: random.Random, queries: int = 3) -> bool:
    """Scores of every matching document equal a fresh build's over the surviving documents."""
    if not model.docs:
        return live.n_docs == 0
    fresh = Index.build([Document(i, f["title"], f["text"], f["metadata"]) for i, f in model.docs.items()])
    w = words()
    for _ in range(queries):
        q = " ".join(rng.choice(w) for _ in range(3))
        n = len(model.docs)
        got = {i: s for i, s in live.search(q, n)}
        want = fresh.search(q, n).as_dict()
        if got.keys() != want.keys() or any(abs(got[k] - want[k]) > 1e-4 * max(1.0, abs(want[k])) for k in got):
            return False
    return True


def leftover_files(live: Retriever) -> list[str]:
    """Files in the index directory that the manifest in force does not name (partial commits)."""
    directory = live.path  # a live retriever's index directory
    keep = Manifest.read(directory).referenced_names() | {MANIFEST_NAME, ".sparsearch", ".lock"}
    return sorted(e.name for e in directory.iterdir() if e.name not in keep)


# ------------------------------------------------------------------ 1, 2: in-process fault campaigns

@dataclass
class CampaignStats:
    phase: str
    errno: str
    injected: int = 0
    by_op: Counter = field(default_factory=Counter)
    by_parent: Counter = field(default_factory=Counter)
    raised_with_cause: int = 0
    logged_with_cause: int = 0
    logged_without_cause: int = 0
    not_surfaced: int = 0
    wrong_error: int = 0
    log_not_cut_back: int = 0
    leftover_files_after_failure: int = 0
    retry_failed: int = 0
    crashes: int = 0  # closed without a flush (what kill -9 leaves) and reopened
    reopens: int = 0  # all reopens, after a crash or a clean close
    reopen_failures: int = 0
    outcome_unknown: int = 0
    acknowledged: int = 0  # upserts and deletes that returned
    refused: int = 0  # upserts and deletes that raised
    checks: Counter = field(default_factory=Counter)
    requests: int = 0
    flushes_ok: int = 0
    merges_seen: int = 0
    fresh_build_checks: int = 0
    fresh_build_mismatches: int = 0
    examples: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def row(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if not isinstance(v, Counter)}
        out.update(by_op=dict(self.by_op), by_parent=dict(self.by_parent), checks=dict(self.checks))
        out["lost"] = self.checks["lost"] + self.checks["lost_search"]
        out["ghost"] = self.checks["ghost"] + self.checks["ghost_search"]
        return out


class Campaign:
    """Random requests on one live index, a fault armed in ``phase`` for about half of them."""

    def __init__(self, root: Path, phase: str, errname: str, seed: int, double: str | None = None) -> None:
        self.rng = random.Random(seed)
        self.phase, self.code, self.double = phase, ERRNOS[errname], double
        self.stats = CampaignStats(phase if not double else f"{phase}+{double}", errname)
        self.wal_phase = phase in ("wal_write", "wal_fsync")
        flush_docs = 10 if self.wal_phase else 10**9  # other phases: flushes only when this driver asks
        self.settings = LiveSettings(flush_docs=flush_docs, flush_seconds=1e9, flush_bytes=1 << 40,
                                     merge=MergePolicy(merge_factor=2))
        self.path = root / f"{self.stats.phase}-{errname}"
        self.live = Retriever.create_live(self.path, BM25Encoder(), settings=self.settings)
        scheduler().unregister(self.live.writer)  # deterministic: this driver decides when flushes happen
        self.model = Model()
        self.attempt = 0
        self.next_id = 0
        self.observed: dict[str, list[int]] = defaultdict(list)  # operations of each phase per request reaching it
        self.injector = PhaseInjector(seed=seed)
        self.generation = 0
        self.ambiguous: dict[str, list[Any]] = {}  # ids of refusals whose outcome is unknown, until a reopen

    # -- requests

    def new_docs(self) -> list[Document]:
        docs, ids = [], set()
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            if self.model.docs and self.rng.random() < 0.35:
                doc_id = self.rng.choice(sorted(self.model.docs))
            else:
                doc_id, self.next_id = f"d{self.next_id}", self.next_id + 1
            if doc_id in ids:
                continue
            ids.add(doc_id)
            self.attempt += 1
            docs.append(make_doc(doc_id, self.attempt, self.rng))
        return docs

    def request(self) -> tuple[str, Any]:
        r = self.rng.random()
        flush_share = 0.08 if self.wal_phase else 0.45
        if r < flush_share:
            return "flush", None
        if r < flush_share + 0.15 and self.model.docs:
            ids = self.rng.sample(sorted(self.model.docs), min(len(self.model.docs), self.rng.choice((1, 1, 2))))
            return "delete", ids
        return "upsert", self.new_docs()

    def perform(self, kind: str, arg: Any, arm: Arm | None) -> tuple[BaseException | None, list[Fault], list]:
        self.injector.arm = arm
        self.injector.per_phase = Counter()
        n_before = len(self.injector.faults)
        error = None
        with captured_logs() as logs, inject_faults(self.injector):
            try:
                if kind == "upsert":
                    self.live.upsert(arg)
                elif kind == "delete":
                    self.live.delete(arg)
                else:
                    self.live.flush()
            except Exception as e:  # noqa: BLE001 - judged below
                error = e
        self.injector.arm = None
        for ph, n in self.injector.per_phase.items():
            if len(self.observed[ph]) < 200:
                self.observed[ph].append(n)
        if "merge" in self.injector.per_phase:
            self.stats.merges_seen += 1
        return error, self.injector.faults[n_before:], logs.records

    def apply(self, kind: str, arg: Any, error: BaseException | None) -> None:
        """Update the model: an acknowledged request applies, a refused one must leave no trace.

        A refusal marked ``outcome_unknown`` (a double fault: the log could not
        be cut back) may reappear after a crash, as its message says: until the
        next reopen, its ids may be in either state.
        """
        unknown = getattr(error, "outcome_unknown", False)
        if kind in ("upsert", "delete"):
            if error is None:
                self.stats.acknowledged += 1
            else:
                self.stats.refused += 1
        if kind == "upsert":
            if unknown:
                self.stats.outcome_unknown += 1
                for d in arg:
                    self.ambiguous.setdefault(d.doc_id, [self.model.docs.get(d.doc_id)]).append(fields_of(d))
            elif error:
                self.model.failed(arg)
            else:
                for d in arg:
                    self.ambiguous.pop(d.doc_id, None)
                self.model.upserted(arg)
        elif kind == "delete":
            if unknown:
                self.stats.outcome_unknown += 1
                for i in arg:
                    self.ambiguous.setdefault(i, [self.model.docs.get(i)]).append(None)
            elif error is None:
                for i in arg:
                    self.ambiguous.pop(i, None)
                self.model.deleted(arg)
        elif kind == "flush" and error is None:
            self.stats.flushes_ok += 1

    def reopen(self, flush: bool = False) -> None:
        """Close (``flush=False``: the disk state ``kill -9`` leaves) and reopen; compare with the model.

        A reopen that fails is counted and the campaign goes on with a fresh index.
        """
        self.live.close(flush=flush)
        self.stats.crashes += not flush
        self.stats.reopens += 1
        try:
            self.live = Retriever.open_live(self.path, self.settings)
        except Exception as e:  # noqa: BLE001
            self.stats.reopen_failures += 1
            self.stats.examples.setdefault("reopen_failure", f"{type(e).__name__}: {e}")
            self.generation += 1
            self.path = self.path.with_name(f"{self.path.name.split('~')[0]}~{self.generation}")
            self.live = Retriever.create_live(self.path, BM25Encoder(), settings=self.settings)
            self.model = Model()
        else:
            self.stats.checks.update(compare(self.live, self.model, self.rng, self.ambiguous))
            for doc_id in self.ambiguous:  # what a refused-but-unknown write turned out to be
                self.model.adopt(doc_id, visible(self.live, doc_id))
        self.ambiguous = {}
        scheduler().unregister(self.live.writer)

    def check_touched(self, kind: str, arg: Any) -> None:
        """Right after a failed request: what it touched is as the model says (before any reopen)."""
        ids = [d.doc_id for d in arg] if kind == "upsert" else (arg if kind == "delete" else [])
        for doc_id in ids:
            got, want = visible(self.live, doc_id), self.model.docs.get(doc_id)
            if got != want:
                self.stats.checks["ghost" if got is not None and got["text"] in self.model.failed_texts
                                  or want is None else "lost"] += 1
        if kind == "upsert":
            for d in arg:
                if self.live.search(d.text.rsplit(" ", 1)[-1], 1):
                    self.stats.checks["ghost_search"] += 1

    # -- the loop

    def run(self, target: int) -> CampaignStats:
        t0 = time.perf_counter()
        s = self.stats
        arm_phase = self.phase
        while s.injected < target:
            kind, arg = self.request()
            arm = None
            reaches = (kind == "flush") != self.wal_phase  # wal faults hit writes; the others hit flushes
            if reaches and self.rng.random() < (0.6 if self.wal_phase else 0.7):
                seen = self.observed[arm_phase]  # a position drawn from how many operations requests make
                nth = self.rng.randrange(self.rng.choice(seen)) if seen else 0
                then = (self.double, self.rng.choice(list(ERRNOS.values()))) if self.double else None
                arm = Arm(arm_phase, self.code, nth, then)
            wal_size = self.live.writer.log_bytes()
            error, faults, records = self.perform(kind, arg, arm)
            s.requests += 1
            self.apply(kind, arg, error)
            if not faults:
                if error is not None:
                    s.examples.setdefault("unexpected_error", f"{kind}: {type(error).__name__}: {error}")
                    s.checks["unexpected_error"] += 1
                if self.rng.random() < 0.03:
                    self.reopen(flush=self.rng.random() < 0.5)
                continue
            first = faults[0]
            s.injected += 1
            s.by_op[first.op] += 1
            s.by_parent[first.parent] += 1
            self.judge(kind, error, first, records)
            if kind in ("upsert", "delete") and error is not None and not self.double:
                if os.path.getsize(self.path / WAL_NAME) != wal_size:
                    s.log_not_cut_back += 1
            if error is not None or first.parent == "merge":
                if leftover_files(self.live):
                    s.leftover_files_after_failure += 1
                    s.examples.setdefault("leftover_files", ", ".join(leftover_files(self.live)))
            self.check_touched(kind, arg)
            if self.double and self.rng.random() < 0.5:
                self.double_follow_up()
            if self.rng.random() < 0.25:  # crash right after the fault, before anything repairs it
                self.reopen(flush=False)
            self.retry(kind, arg)
            if s.injected % FAULTS_PER_INDEX == 0 and s.injected < target:
                self.rotate()
        self.reopen(flush=False)
        self.check_fresh_build()
        self.live.close()
        s.seconds = time.perf_counter() - t0
        return s

    def check_fresh_build(self) -> None:
        self.stats.fresh_build_checks += 1
        if not scores_match_fresh_build(self.live, self.model, self.rng):
            self.stats.fresh_build_mismatches += 1

    def rotate(self) -> None:
        """Crash, reopen and check, compare scores with a fresh build, then go on with a new empty index.

        Keeps every index small (so a fault costs the same at the end of a
        campaign as at its start) and checks many histories instead of one.
        """
        self.reopen(flush=False)
        self.check_fresh_build()
        self.live.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self.generation += 1
        self.path = self.path.with_name(f"{self.path.name.split('~')[0]}~{self.generation}")
        self.live = Retriever.create_live(self.path, BM25Encoder(), settings=self.settings)
        scheduler().unregister(self.live.writer)
        self.model = Model()

    def judge(self, kind: str, error: BaseException | None, fault: Fault, records: list) -> None:
        s, code = self.stats, fault.code
        if error is not None:
            if raised_with_cause(error, code) or (self.double and isinstance(error, StorageError)):
                s.raised_with_cause += 1
            else:
                s.wrong_error += 1
            s.examples.setdefault(f"error_{fault.phase}", f"{type(error).__name__}: {error}")
            return
        how = logged_with_cause(records, code)
        if how == "cause":
            s.logged_with_cause += 1
        elif how == "no cause":
            s.logged_without_cause += 1
            s.examples.setdefault(f"logged_without_cause_{fault.phase}_{fault.parent}",
                                  "; ".join(r.getMessage() for r in records))
        else:
            s.not_surfaced += 1
            s.examples.setdefault(f"silent_{fault.phase}", f"{kind} returned normally after {fault}")
        if kind != "flush" or fault.parent not in ("merge", "flush"):
            s.examples.setdefault(f"no_error_{fault.phase}", f"{kind} returned normally after {fault}")

    def retry(self, kind: str, arg: Any) -> None:
        """The same kind of request again, without a fault: it must succeed (no restart needed)."""
        if kind == "upsert":
            ids = [d.doc_id for d in arg]
            docs = []
            for doc_id in ids:
                self.attempt += 1
                docs.append(make_doc(doc_id, self.attempt, self.rng))
            arg = docs
        elif kind == "delete":
            arg = [i for i in arg if i in self.model.docs]
            if not arg:
                return
        error, faults, _ = self.perform(kind, arg, None)
        self.apply(kind, arg, error)
        if error is not None:
            self.stats.retry_failed += 1
            self.stats.examples.setdefault("retry_failed", f"{kind}: {type(error).__name__}: {error}")

    def double_follow_up(self) -> None:
        """After a log append whose cut-back failed: a flush whose log reset fails too, then one write."""
        arm = Arm("wal_reset", self.rng.choice(list(ERRNOS.values())), 0)
        error, _, _ = self.perform("flush", None, arm)  # no write first: a write would repair the log
        self.apply("flush", None, error)
        docs = self.new_docs()
        error, _, _ = self.perform("upsert", docs, None)
        self.apply("upsert", docs, error)


def run_campaigns(root: Path, target: int, seed: int, phases: tuple[str, ...] = PHASES,
                  errnames: tuple[str, ...] = tuple(ERRNOS), double_target: int = 0) -> list[dict[str, Any]]:
    import numba

    rows = []
    logging.getLogger("sparsearch").setLevel(logging.WARNING)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # segments of a few documents: waking a second thread costs more than it saves
    try:
        _campaigns(root, target, seed, phases, errnames, double_target, rows)
    finally:
        numba.set_num_threads(threads)
    return rows


def _campaigns(root: Path, target: int, seed: int, phases: tuple[str, ...], errnames: tuple[str, ...],
               double_target: int, rows: list[dict[str, Any]]) -> None:
    for i, phase in enumerate(phases):
        for j, errname in enumerate(errnames):
            stats = Campaign(root, phase, errname, seed * 1000 + i * 10 + j).run(target)
            rows.append(stats.row())
            print(f"  {phase:17s} {errname:6s} {stats.injected:4d} faults, {stats.requests:5d} requests, "
                  f"{stats.crashes:3d} crashes, lost {rows[-1]['lost']}, ghost {rows[-1]['ghost']}, "
                  f"reopen failures {stats.reopen_failures}, {stats.seconds:.1f} s", flush=True)
    for k, double in enumerate(("wal_cutback",) if double_target else ()):
        for phase in ("wal_write", "wal_fsync"):
            stats = Campaign(root, phase, "EIO", seed * 1000 + 500 + k * 10 + (phase == "wal_fsync"),
                             double=double).run(double_target)
            rows.append(stats.row())
            print(f"  {phase}+{double} EIO {stats.injected:4d} double faults, lost {rows[-1]['lost']}, "
                  f"ghost {rows[-1]['ghost']}, reopen failures {stats.reopen_failures}, {stats.seconds:.1f} s",
                  flush=True)


# ------------------------------------------------------------------ 3: kill -9 of a writing process

def warm_up(root: Path) -> None:
    """Compile (and cache on disk) every kernel a live index uses, so child processes start warm."""
    live = Retriever.create_live(root / "warm-up", BM25Encoder(),
                            settings=LiveSettings(flush_docs=5, flush_seconds=1e9, merge=MergePolicy(merge_factor=2)))
    rng = random.Random(0)
    for i in range(40):
        live.upsert([make_doc(f"w{i % 25}", i, rng)])
        if i % 7 == 0:
            live.delete([f"w{i % 25}"])
    live.search("cell", 5)
    live.close()
    shutil.rmtree(root / "warm-up")


KILL_SETTINGS = LiveSettings(flush_docs=12, flush_seconds=0.5, flush_bytes=1 << 20, merge=MergePolicy(merge_factor=2))


def _emit(fd: int, obj: dict[str, Any]) -> None:
    os.write(fd, (json.dumps(obj) + "\n").encode())


def kill_child(path: str, trial: int, seed: int, live_ids: list[str], events: str, fault_rate: float) -> None:
    """The writer that gets killed: every request logged before it starts and after it returns."""
    logging.disable(logging.CRITICAL)
    fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    live = Retriever.open_live(Path(path), KILL_SETTINGS)
    rng = random.Random(seed)
    warm = Index.build([make_doc(f"w{i}", i, random.Random(i)) for i in range(12)])  # load the cached kernels
    warm.delete(["w1"])
    warm.commit()
    warm.search("cell", 3)
    ids = list(live_ids)
    injector = PhaseInjector(rate=fault_rate, seed=seed, ops=("write", "fsync", "rename", "truncate", "open"),
                             on_fire=lambda f: _emit(fd, {"x": f.phase, "op": f.op, "errno": f.code}))
    _emit(fd, {"ready": True})
    with inject_faults(injector) if fault_rate else contextlib.nullcontext():
        for i in range(10**9):
            attempt = trial * 1_000_000 + i
            if ids and rng.random() < 0.15:
                victims = rng.sample(ids, 1)
                _emit(fd, {"b": i, "op": "delete", "ids": victims})
                try:
                    live.delete(victims)
                except Exception as e:  # noqa: BLE001 - reported to the parent
                    _emit(fd, {"f": i, "type": type(e).__name__, "errno": getattr(e, "errno", None),
                               "unknown": getattr(e, "outcome_unknown", False)})
                    continue
                _emit(fd, {"a": i})
                ids.remove(victims[0])
            else:
                doc_id = rng.choice(ids) if ids and rng.random() < 0.3 else f"k{trial}-{i}"
                doc = make_doc(doc_id, attempt, rng)
                _emit(fd, {"b": i, "op": "upsert", "doc": [doc.doc_id, doc.title, doc.text, doc.metadata]})
                try:
                    live.upsert([doc])
                except Exception as e:  # noqa: BLE001 - reported to the parent
                    _emit(fd, {"f": i, "type": type(e).__name__, "errno": getattr(e, "errno", None),
                               "unknown": getattr(e, "outcome_unknown", False)})
                    continue
                _emit(fd, {"a": i})
                if doc_id not in ids:
                    ids.append(doc_id)


def read_events(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_bytes().split(b"\n"):
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # the empty tail, or a line cut by the kill
    return out


def unknown_states(req: dict[str, Any], model: Model, ambiguous: dict[str, list[Any]]) -> None:
    """A request that may or may not have happened: its ids may end in either state."""
    if req["op"] == "upsert":
        d = Document(*req["doc"])
        ambiguous.setdefault(d.doc_id, [model.docs.get(d.doc_id)]).append(fields_of(d))
        model.attempted.add(d.doc_id)
    else:
        for i in req["ids"]:
            ambiguous.setdefault(i, [model.docs.get(i)]).append(None)


def run_kills(root: Path, trials: int, seed: int) -> dict[str, Any]:
    # A killed child leaves its semaphores to the resource tracker, which warns at exit: expected here.
    # (The tracker and the fork server start with the first child and keep this environment.)
    warnings_before = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = "ignore:resource_tracker:UserWarning"
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["sparsearch.retriever.retriever", "sparsearch.retriever.bm25", "numpy"])
    path = root / "kill"
    Retriever.create_live(path, BM25Encoder(), settings=KILL_SETTINGS).close()
    rng = random.Random(seed)
    model = Model()
    totals: Counter = Counter()
    rows = []
    logging.getLogger("sparsearch").setLevel(logging.ERROR)
    for trial in range(trials):
        t0 = time.perf_counter()
        events = root / f"kill-events-{trial}.jsonl"
        fault_rate = 0.02 if trial % 2 else 0.0
        delay = rng.uniform(0.05, 1.5)
        p = ctx.Process(target=kill_child, args=(str(path), trial, seed * 7919 + trial, sorted(model.docs),
                                                 str(events), fault_rate))
        p.start()
        deadline = time.time() + 60
        while time.time() < deadline and not (events.exists() and b"ready" in events.read_bytes()):
            if not p.is_alive():
                break
            time.sleep(0.01)
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)  # the same as p.kill(): SIGKILL, no cleanup of any kind
        p.join()
        evs = read_events(events)
        begun: dict[int, dict[str, Any]] = {}
        ambiguous: dict[str, list[Any]] = {}
        acked = failed = faults = 0
        for ev in evs:
            if "b" in ev:
                begun[ev["b"]] = ev
            elif "a" in ev or "f" in ev:
                req = begun.pop(ev.get("a", ev.get("f")))
                touched = [req["doc"][0]] if req["op"] == "upsert" else req["ids"]
                if "a" in ev:
                    acked += 1
                    for i in touched:
                        ambiguous.pop(i, None)
                    if req["op"] == "upsert":
                        model.upserted([Document(*req["doc"])])
                    else:
                        model.deleted(req["ids"])
                else:
                    failed += 1
                    if ev.get("unknown"):  # a double fault: may reappear after the kill, as the error says
                        totals["outcome_unknown"] += 1
                        unknown_states(req, model, ambiguous)
                    elif req["op"] == "upsert":
                        model.failed([Document(*req["doc"])])
                    if ev.get("errno") not in (errno_codes.ENOSPC, errno_codes.EIO) or \
                            ev["type"] not in ("StorageFullError", "StorageError"):
                        totals["wrong_error"] += 1
            elif "x" in ev:
                faults += 1
                totals[f"faults_{ev['x']}"] += 1
        for req in begun.values():  # the request in flight when the kill came: either outcome is fine
            unknown_states(req, model, ambiguous)
        try:
            live = Retriever.open_live(path, KILL_SETTINGS)
        except Exception as e:  # noqa: BLE001
            totals["reopen_failures"] += 1
            rows.append({"trial": trial, "reopen_failure": f"{type(e).__name__}: {e}"})
            print(f"  kill trial {trial}: REOPEN FAILED {e}", flush=True)
            break
        checks = compare(live, model, rng, ambiguous)
        for doc_id in ambiguous:  # adopt what the in-flight request turned out to be
            model.adopt(doc_id, visible(live, doc_id))
        live.close(flush=rng.random() < 0.5)
        totals.update(checks)
        totals["acked"] += acked
        totals["failed"] += failed
        totals["injected_faults"] += faults
        rows.append({"trial": trial, "delay_s": round(delay, 3), "fault_rate": fault_rate, "acked": acked,
                     "failed": failed, "injected_faults": faults, "in_flight": len(begun), **checks,
                     "seconds": round(time.perf_counter() - t0, 2)})
        events.unlink()
    if warnings_before is None:
        os.environ.pop("PYTHONWARNINGS", None)
    else:
        os.environ["PYTHONWARNINGS"] = warnings_before
    final = Retriever.open_live(path, KILL_SETTINGS)
    fresh_equal = scores_match_fresh_build(final, model, rng)
    documents = final.n_docs
    final.close()
    return {"trials": len(rows), "documents_at_end": documents, "fresh_build_equal": fresh_equal,
            "acknowledged_requests": totals.pop("acked", 0), "refused_requests": totals.pop("failed", 0),
            "injected_faults": totals.pop("injected_faults", 0),
            "lost": totals["lost"] + totals["lost_search"], "ghost": totals["ghost"] + totals["ghost_search"],
            "reopen_failures": totals["reopen_failures"], "checks": dict(totals), "rows": rows}


# ------------------------------------------------------------------ 4: recovery time

def load_test_texts() -> list[str]:
    """The texts of ``benchmarks/loadtest.py``'s writes: queries (SciFact's claims here; 5-30 words)."""
    data = Path(os.environ.get("SPARSEARCH_DATA") or HERE.parent.parent / "shared" / "data")
    queries = data / "beir" / "scifact" / "queries.jsonl"
    if queries.exists():
        with open(queries, encoding="utf-8") as f:
            return [json.loads(line)["text"] for line in f]
    rng = random.Random(1)
    w = words()
    # Each made-up text carries one word of the recovery probe query ("cell protein expression"),
    # so the first search after recovery has hits without the real data too.
    probe = ("cell", "protein", "expression")
    return [" ".join([probe[i % 3]] + [rng.choice(w) for _ in range(rng.randint(4, 24))]) for i in range(1000)]


def write_log(path: Path, n: int, seed: int) -> dict[str, Any]:
    """An empty live index plus a log of ``n`` single-document upserts, as ``kill -9`` would leave it.

    Documents as ``benchmarks/loadtest.py`` writes them: ``{"_id", "title": "load test", "text": a query}``.
    """
    from sparsearch.retriever.retriever import document_source
    from sparsearch.index.wal import encode_record

    rng = random.Random(seed)
    texts = load_test_texts()
    if not path.exists():
        Retriever.create_live(path, BM25Encoder(), settings=LiveSettings()).close()
    t = time.perf_counter()
    words_total = 0
    with open(path / WAL_NAME, "ab") as f:
        chunk = []
        for i in range(n):
            doc = Document(f"r{i}", "load test", rng.choice(texts))
            words_total += len(doc.text.split())
            chunk.append(encode_record({"op": "upsert", "docs": [{"_id": doc.doc_id, **document_source(doc)}]}))
            if len(chunk) == 10_000:
                f.write(b"".join(chunk))
                chunk = []
        f.write(b"".join(chunk))
        f.flush()
        os.fsync(f.fileno())
    return {"records": n, "log_bytes": (path / WAL_NAME).stat().st_size, "mean_words_per_document": words_total / n,
            "write_s": time.perf_counter() - t}


def recovery_child(path: str, spawned_at: float) -> None:
    """In a fresh process: open the live index (replaying the log) and answer one search; print timings.

    ``spawned_at``: the parent's ``time.time()`` just before it started this process.  Each step is
    timed in wall-clock seconds and in CPU seconds of the process (``time.process_time``): on a
    shared machine the CPU time is what the step costs, the wall time what a user waits.
    """
    t_start = time.perf_counter()
    startup = time.time() - spawned_at  # interpreter start and imports, until here
    import sparsearch.index.buffer as buffer_module
    import sparsearch.retriever.retriever as live_module
    from sparsearch.index.writer import LiveSettings
    from sparsearch.index.formats import SparseFormat
    from sparsearch.index.inverted import InvertedIndex
    from sparsearch.retriever.bm25 import BM25Encoder as Encoder
    from sparsearch.index.wal import WriteAheadLog

    t_import = time.perf_counter()
    wall: Counter = Counter()
    cpu: Counter = Counter()

    def timed(owner: Any, name: str, label: str, method: Callable[..., Any] | None = None) -> None:
        original = method or getattr(owner, name)

        def wrapper(*a: Any, **k: Any) -> Any:
            t, c = time.perf_counter(), time.process_time()
            try:
                return original(*a, **k)
            finally:
                wall[label] += time.perf_counter() - t
                cpu[label] += time.process_time() - c

        setattr(owner, name, classmethod(wrapper) if method else wrapper)

    timed(InvertedIndex, "open", "index_open", InvertedIndex.open.__func__)  # type: ignore[attr-defined]
    timed(WriteAheadLog, "read", "log_read_parse")
    timed(Encoder, "encode_documents", "encode")
    timed(SparseFormat, "build", "build")  # inverting the replayed documents
    timed(buffer_module.WriteBuffer, "add", "build")
    t0, c0 = time.perf_counter(), time.process_time()
    live = live_module.Retriever.open_live(Path(path), LiveSettings(flush_docs=10**9, flush_seconds=1e9,
                                                                       flush_bytes=1 << 40))
    t_open, c_open = time.perf_counter(), time.process_time()
    hits = live.search("cell protein expression", 10)
    t_search, c_search = time.perf_counter(), time.process_time()
    steps = ("index_open", "log_read_parse", "encode", "build")
    out: dict[str, Any] = {"documents": live.n_docs, "hits": len(hits),
                           "process_startup_and_imports_s": startup + (t_import - t_start)}
    for label in steps:
        out[f"{label}_s"], out[f"{label}_cpu_s"] = wall[label], cpu[label]
    # the rest of the replay: folding records into final documents, the live-id map, the snapshot
    out["replay_other_s"] = (t_open - t0) - sum(wall[x] for x in steps)
    out["replay_other_cpu_s"] = (c_open - c0) - sum(cpu[x] for x in steps)
    out.update(first_search_s=t_search - t_open, open_to_first_answer_s=t_search - t0,
               open_to_first_answer_cpu_s=c_search - c0,
               process_start_to_first_answer_s=startup + (t_search - t_start),
               load_average_1min=os.getloadavg()[0])
    live.close(flush=False)
    print(json.dumps(out))


def run_recovery(root: Path, n: int, seed: int, repeats: int = 3) -> dict[str, Any]:
    path = root / "recovery"
    made = write_log(path, n, seed)
    runs = []
    for _ in range(repeats):  # close(flush=False) in the child: the log stays for the next repetition
        out = subprocess.run([sys.executable, __file__, "--recovery-child", str(path), str(time.time())],
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    shutil.rmtree(path)
    return {"log": made, "how": "log written directly with sparsearch.index.wal.encode_record, one upsert record "
            "per document (what Retriever.upsert logs); each run is a fresh process", "runs": runs,
            "median": median}


# ------------------------------------------------------------------ the server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``sparsearch serve`` in a subprocess (the working tree's code: ``python -c 'sparsearch.cli.run()'``)."""

    def __init__(self, data_dir: Path, log_dir: Path, flush_docs: int = 200, flush_seconds: float = 2.0) -> None:
        self.data_dir, self.port = data_dir, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.args = ["serve", "--data-dir", str(data_dir), "--port", str(self.port),
                     "--flush-docs", str(flush_docs), "--flush-seconds", str(flush_seconds)]
        self.proc: subprocess.Popen | None = None
        self.stderr = log_dir / f"server-{self.port}.log"  # not on the tmpfs: it must take writes when full

    def start(self, wait: bool = True) -> float:
        import httpx

        t = time.perf_counter()
        env = {**os.environ, "SPARSEARCH_API_KEY": KEY,
               "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-c", "from sparsearch.cli import run; run()", *self.args],
                                     env=env, stdout=subprocess.DEVNULL, stderr=open(self.stderr, "ab"))
        if wait:
            while time.perf_counter() - t < 120:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited ({self.proc.returncode}): {self.tail()}")
                try:
                    if httpx.get(f"{self.base}/healthz", timeout=2).status_code in (200, 503):
                        return time.perf_counter() - t
                except httpx.HTTPError:
                    time.sleep(0.05)
            raise RuntimeError("server did not start within 120 s")
        return 0.0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        try:
            return self.stderr.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (Linux ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def server_recovery(root: Path, n: int, seed: int, repeats: int = 3) -> dict[str, Any]:
    """kill -9 of a server whose collection holds ``n`` unflushed single-document writes; time to a 200 search."""
    import httpx

    data = root / "server-recovery"
    server = Server(data, root, flush_docs=10**9, flush_seconds=1e9)
    server.start()
    r = httpx.put(f"{server.base}/collections/rec", json={"encoder": "bm25"}, headers=AUTH, timeout=30)
    r.raise_for_status()
    r = httpx.post(f"{server.base}/collections/rec/documents", headers=AUTH, timeout=30,
                   json={"documents": [{"_id": "first", "title": "", "text": "written through the server"}]})
    r.raise_for_status()
    server.kill()
    coll = data / "collections" / "rec"
    made = write_log(coll, n, seed)
    runs = []
    client = httpx.Client(base_url=server.base, timeout=120)  # one client: no TLS context per poll
    for _ in range(repeats):
        t = time.perf_counter()
        server.start(wait=False)
        listening = health = search = cpu = None
        while time.perf_counter() - t < 300:  # a cheap probe every 20 ms: the server has the 2 cores
            if listening is None:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", server.port)) != 0:
                        time.sleep(0.02)
                        continue
                listening = time.perf_counter() - t
            try:
                if health is None and client.get("/healthz").status_code == 200:
                    health = time.perf_counter() - t
                resp = client.post("/collections/rec/search", json={"query": "cell protein", "k": 10})
                if resp.status_code == 200:
                    search = time.perf_counter() - t
                    cpu = process_cpu_seconds(server.proc.pid)  # type: ignore[union-attr]
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        docs = client.get("/collections/rec").json().get("documents")
        server.kill()  # no flush: the next repetition replays the same log
        runs.append({"start_to_listening_s": listening, "start_to_healthz_200_s": health,
                     "start_to_first_search_200_s": search, "server_cpu_s_at_first_search": cpu, "documents": docs,
                     "load_average_1min": os.getloadavg()[0]})
    client.close()
    shutil.rmtree(data, ignore_errors=True)
    med = statistics.median(r["start_to_first_search_200_s"] or float("inf") for r in runs)
    cpu = statistics.median(r["server_cpu_s_at_first_search"] or float("inf") for r in runs)
    return {"log": made, "runs": runs, "median_start_to_first_search_200_s": med,
            "median_server_cpu_s_at_first_search": cpu}


# ------------------------------------------------------------------ 5: a real full disk

@contextlib.contextmanager
def tmpfs(size_mb: int) -> Iterator[Path | None]:
    mount = Path(tempfile.mkdtemp(prefix="sparsearch-tmpfs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  cannot mount a tmpfs ({done.stderr.strip()}): full-disk run skipped", flush=True)
        mount.rmdir()
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def full_disk(size_mb: int, seed: int, log_dir: Path) -> dict[str, Any]:
    import httpx

    rng = random.Random(seed)
    with tmpfs(size_mb) as mount:
        if mount is None:
            return {"skipped": "tmpfs could not be mounted (needs root)"}
        data = mount / "data"
        server = Server(data, log_dir, flush_docs=200, flush_seconds=2.0)
        server.start()
        client = httpx.Client(base_url=server.base, timeout=60, headers=AUTH)
        client.put("/collections/full", json={"encoder": "bm25"}).raise_for_status()
        filler = mount / "filler.bin"
        free = shutil.disk_usage(mount).free
        with open(filler, "wb") as f:  # leave about 2 MB for the collection to grow into
            f.write(b"\0" * max(0, free - 2 * 2**20))
        acked: dict[str, dict[str, Any]] = {}
        refused: dict[str, str] = {}
        statuses: Counter = Counter()
        details: dict[int, str] = {}
        attempt = 0
        read_statuses: Counter = Counter()

        def write_batch(n: int = 10) -> int:
            nonlocal attempt
            docs = []
            for _ in range(n):
                attempt += 1
                d = make_doc(f"f{attempt}", attempt, rng, 150, 250)  # abstract-sized: about 1.5 KB
                docs.append({"_id": d.doc_id, "title": d.title, "text": d.text, "metadata": d.metadata})
            try:
                r = client.post("/collections/full/documents", json={"documents": docs})
            except httpx.HTTPError as e:
                statuses["transport_error"] += 1
                details.setdefault(-1, repr(e))
                for d in docs:
                    refused[d["_id"]] = d["text"]  # unknown outcome is treated as refused: checked below
                return -1
            statuses[r.status_code] += 1
            if r.status_code == 200:
                for d in docs:
                    acked[d["_id"]] = {"title": d["title"], "text": d["text"], "metadata": d["metadata"]}
                    refused.pop(d["_id"], None)
            else:
                details.setdefault(r.status_code, r.text[:400])
                for d in docs:
                    refused[d["_id"]] = d["text"]
            return r.status_code

        # fill: write until 30 requests in a row are refused
        t = time.perf_counter()
        in_a_row = 0
        while in_a_row < 30 and time.perf_counter() - t < 120:
            in_a_row = in_a_row + 1 if write_batch() != 200 else 0
        fill_statuses = dict(statuses)
        for q in ("cell", "protein expression"):  # reads keep working on a full disk
            read_statuses[client.post("/collections/full/search", json={"query": q, "k": 5}).status_code] += 1
        if acked:
            read_statuses[client.get(f"/collections/full/documents/{next(iter(acked))}").status_code] += 1
        disk_free_when_full = shutil.disk_usage(mount).free
        # kill -9 and restart on the still-full disk
        server.kill()
        restart_full: dict[str, Any] = {}
        try:
            restart_full["start_s"] = server.start()
            restart_full.update(check_server_state(client, acked, refused))
            restart_full["write_status_while_full"] = write_batch()
        except Exception as e:  # noqa: BLE001
            restart_full["failed"] = f"{type(e).__name__}: {e} {server.tail()[-500:]}"
        # free the space: writes must succeed again without a restart
        filler.unlink()
        after_free: Counter = Counter()
        for _ in range(30):
            after_free[write_batch()] += 1
            time.sleep(0.05)
        # the background flush, backing off while the disk was full (1, 2, 4 ... 60 s), must get through now
        wal = data / "collections" / "full" / WAL_NAME
        t_free = time.perf_counter()
        while time.perf_counter() - t_free < 90 and wal.exists() and wal.stat().st_size > 0:
            time.sleep(0.5)
        log_emptied_after_s = time.perf_counter() - t_free if wal.exists() and wal.stat().st_size == 0 else None
        server.kill()
        server.start()
        final = check_server_state(client, acked, refused)
        server.stop()
        client.close()
        named = {code: ("space" in text.lower() or "disk" in text.lower() or "i/o" in text.lower())
                 for code, text in details.items()}
        refusals_ok = all(code in (507, 503) for code in details) and all(named.values())
        return {
            "tmpfs_mb": size_mb, "batch_documents": 10, "statuses_while_filling": fill_statuses,
            "refusal_details": {str(k): v for k, v in details.items()}, "refusals_name_the_cause": named,
            "refusals_are_507_or_503_with_cause": refusals_ok,
            "disk_free_bytes_when_full": disk_free_when_full, "reads_while_full": dict(read_statuses),
            "restart_on_full_disk": restart_full, "write_statuses_after_freeing": dict(after_free),
            "log_flushed_after_freeing_s": log_emptied_after_s, "acknowledged_documents": len(acked),
            "refused_documents": len(refused), "after_final_restart": final,
        }


def check_server_state(client: Any, acked: dict[str, dict[str, Any]], refused: dict[str, str]) -> dict[str, Any]:
    lost = ghost = 0
    for doc_id, want in acked.items():
        r = client.get(f"/collections/full/documents/{doc_id}")
        if r.status_code != 200 or {k: r.json().get(k) for k in want} != want:
            lost += 1
    for doc_id in refused:
        if client.get(f"/collections/full/documents/{doc_id}").status_code != 404:
            ghost += 1
    n = client.get("/collections/full").json().get("documents")
    return {"lost": lost, "ghost": ghost, "documents": n, "documents_expected": len(acked)}


# ------------------------------------------------------------------ main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "chaos.json")
    parser.add_argument("--faults", type=int, default=200, help="faults per phase and errno")
    parser.add_argument("--extra-faults", type=int, default=50,
                        help="faults per errno in the phases beyond the issue's list (vocabulary files, log reset)")
    parser.add_argument("--double-faults", type=int, default=200, help="double faults per log phase")
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--recovery-docs", type=int, default=100_000)
    parser.add_argument("--tmpfs-mb", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-server", action="store_true", help="skip the parts that run `sparsearch serve`")
    parser.add_argument("--update", action="store_true",
                        help="replace only the parts run now in an existing --out file (keep the others)")
    parser.add_argument("--parts", "--only", default="faults,kills,recovery,fulldisk",
                        help="comma-separated: faults, kills, recovery, fulldisk")
    parser.add_argument("--workdir", type=Path, default=Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None,
                        help="where the fault campaigns and kill trials write (default /dev/shm: a tmpfs, so "
                             "fsyncs cost nothing; kill -9 keeps the page cache anyway)")
    parser.add_argument("--recovery-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.recovery_child:
        recovery_child(args.recovery_child[0], float(args.recovery_child[1]))
        return
    parts = set(args.parts.split(","))
    result: dict[str, Any] = {"command": "python benchmarks/chaos.py " + " ".join(sys.argv[1:]),
                              "cpus": os.cpu_count(), "seed": args.seed}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sparsearch-chaos-", dir=args.workdir) as tmp, \
            tempfile.TemporaryDirectory(prefix="sparsearch-chaos-disk-") as disk_tmp:
        root, disk = Path(tmp), Path(disk_tmp)
        warm_up(root)
        result["workdir"] = str(args.workdir or tempfile.gettempdir())
        result["load_average_1min"] = {"start": os.getloadavg()[0]}
        if "faults" in parts:
            print(f"1-2. injected faults: {args.faults} per phase and errno", flush=True)
            t = time.perf_counter()
            rows = run_campaigns(root / "faults", args.faults, args.seed, PHASES, double_target=args.double_faults)
            rows += run_campaigns(root / "faults-extra", args.extra_faults, args.seed + 1, EXTRA_PHASES)
            result["faults"] = {"per_phase_and_errno": args.faults, "rows": rows,
                                "seconds": time.perf_counter() - t}
        if "kills" in parts:
            print(f"3. kill -9: {args.kills} trials", flush=True)
            t = time.perf_counter()
            result["kills"] = run_kills(root, args.kills, args.seed)
            result["kills"]["seconds"] = time.perf_counter() - t
            k = result["kills"]
            print(f"  {k['trials']} trials, {k['acknowledged_requests']} acknowledged, lost {k['lost']}, "
                  f"ghost {k['ghost']}, reopen failures {k['reopen_failures']}", flush=True)
        if "recovery" in parts:
            print(f"4. recovery after kill -9 with {args.recovery_docs} unflushed writes", flush=True)
            result["recovery"] = {"live_index": run_recovery(disk, args.recovery_docs, args.seed)}
            print("  live index:", json.dumps(result["recovery"]["live_index"]["median"]), flush=True)
            # for scale: the most a log holds with the default thresholds (flush_docs=10,000)
            result["recovery"]["live_index_10000"] = run_recovery(disk, 10_000, args.seed)
            print("  live index, 10,000 documents:",
                  json.dumps(result["recovery"]["live_index_10000"]["median"]), flush=True)
            if not args.no_server:
                result["recovery"]["server"] = server_recovery(disk, args.recovery_docs, args.seed)
                print("  server:", result["recovery"]["server"]["median_start_to_first_search_200_s"], flush=True)
        if "fulldisk" in parts and not args.no_server:
            print(f"5. full disk: {args.tmpfs_mb} MB tmpfs", flush=True)
            result["full_disk"] = full_disk(args.tmpfs_mb, args.seed, disk)
            print(json.dumps(result["full_disk"], indent=1), flush=True)
    result["load_average_1min"]["end"] = os.getloadavg()[0]
    result["seconds"] = seconds = time.perf_counter() - t0
    if args.update and args.out.exists():
        merged = json.loads(args.out.read_text())
        runs = merged.setdefault("partial_runs", [])
        runs.append({k: result[k] for k in ("command", "load_average_1min", "seconds")})
        merged.update({k: v for k, v in result.items() if k not in ("command", "load_average_1min", "seconds")})
        result = merged
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"done in {seconds:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()

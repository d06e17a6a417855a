"""One flush scheduler for every live index of the process: one thread and a small pool.

A thread per collection does not scale (1,000 collections took 1,010
threads); flushing is disk-bound, so two workers keep a disk busy as well as
a hundred would.  The scheduler holds live indexes weakly: an index dropped
without ``close`` (a simulated crash in a test) is simply forgotten.
"""

from __future__ import annotations

import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
WORKERS = 2


class Flushable(Protocol):
    def flush_due(self) -> bool: ...

    def flush(self) -> None: ...


class FlushScheduler:
    def __init__(self, workers: int = WORKERS, tick: float = TICK_SECONDS) -> None:
        self._indexes: "weakref.WeakSet[Flushable]" = weakref.WeakSet()
        self._running: "weakref.WeakSet[Flushable]" = weakref.WeakSet()
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sparsearch-flush")
        self._tick = tick
        self._thread = threading.Thread(target=self._loop, name="sparsearch-flush-scheduler", daemon=True)
        self._thread.start()

    def register(self, index: Flushable) -> None:
        with self._guard:
            self._indexes.add(index)

    def unregister(self, index: Flushable) -> None:
        with self._guard:
            self._indexes.discard(index)

    def _loop(self) -> None:
        event = threading.Event()
        while not event.wait(self._tick):
            with self._guard:
                due = [i for i in list(self._indexes) if i not in self._running]
            for index in due:
                try:
                    if not index.flush_due():
                        continue
                except Exception:  # pragma: no cover - a closing index
                    continue
                with self._guard:
                    self._running.add(index)
                self._pool.submit(self._flush, index)

    def _flush(self, index: Flushable) -> None:
        try:
            index.flush()
        except Exception:
            log.warning("background flush failed; it will be retried", exc_info=True)
        finally:
            with self._guard:
                self._running.discard(index)


_scheduler: FlushScheduler | None = None
_scheduler_guard = threading.Lock()


def scheduler() -> FlushScheduler:
    """The process's scheduler, started on first use."""
    global _scheduler
    with _scheduler_guard:
        if _scheduler is None:
            _scheduler = FlushScheduler()
        return _scheduler

"""Issue 14 item 9: many collections with a bounded number of threads and file descriptors.

Before the fix, 1,000 collections took 1,010 threads and 13,016 file
descriptors (every collection open from start-up, each with a flush thread
and a descriptor per mapped segment file), and with ``ulimit -n 1024``
start-up failed with "unreadable segment file ([Errno 24]...)", which reads
as corruption.  Now collections are opened on first use and idle ones closed
beyond a count and a share of the descriptor limit, flushes run on one shared
pool (``sparsearch.index.flush_scheduler``), and EMFILE is reported as a limit.

The server runs as ``sparsearch serve`` in a subprocess under a lowered
``RLIMIT_NOFILE``; its threads and descriptors are sampled from ``/proc``
while a client with 16 connections writes to and searches every collection.
"""

from __future__ import annotations

import os
import resource
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service_helpers import AUTH, app_client, spawn_serve
from sparsearch.errors import IndexFormatError
from sparsearch.retriever.retriever import Retriever
from sparsearch.service.store import CollectionStore

MAX_THREADS = 64


def make_collections(data_dir: Path, n: int) -> list[str]:
    """``n`` empty collections: one made by the store, the rest copies of it (creating each costs ~70 ms)."""
    with CollectionStore(data_dir) as store:
        store.create("c0000", "bm25", {"k1": 0.9, "b": 0.4})
    root = data_dir / "collections"
    names = [f"c{i:04d}" for i in range(n)]
    for name in names[1:]:
        shutil.copytree(root / names[0], root / name)
    return names


def proc_threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def serve_many(data_dir: Path, n: int, nofile: int) -> None:
    names = make_collections(data_dir, n)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with spawn_serve(data_dir, "--flush-docs", "100000", preexec_fn=limit) as (base, proc):
        peak = {"threads": 0, "fds": 0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    peak["threads"] = max(peak["threads"], proc_threads(proc.pid))
                    peak["fds"] = max(peak["fds"], proc_fds(proc.pid))
                except (OSError, StopIteration):
                    return
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        failures: list[str] = []
        with httpx.Client(base_url=base, headers=AUTH, timeout=60,
                          limits=httpx.Limits(max_connections=16)) as client:

            def work(i_name: tuple[int, str]) -> None:
                i, name = i_name
                doc = {"_id": f"doc-{name}", "title": name, "text": f"collection {name} number {i}"}
                r = client.post(f"/collections/{name}/documents", json={"documents": [doc]})
                if r.status_code != 200:
                    failures.append(f"upsert {name}: {r.status_code} {r.text[:200]}")
                r = client.post(f"/collections/{name}/search", json={"query": "collection"})
                if r.status_code != 200 or [h["_id"] for h in r.json()["hits"]] != [f"doc-{name}"]:
                    failures.append(f"search {name}: {r.status_code} {r.text[:200]}")

            with ThreadPoolExecutor(16) as pool:
                list(pool.map(work, enumerate(names)))
            listing = client.get("/collections").json()
            health = client.get("/healthz").json()
        stop.set()
        sampler.join()
    assert failures == []
    assert [c["documents"] for c in listing["collections"]] == [1] * n and listing["unavailable"] == []
    assert health == {"status": "ok", "collections": n, "unavailable": []}
    assert peak["threads"] <= MAX_THREADS, peak
    assert 0 < peak["fds"] < nofile, peak


def test_200_collections_under_256_file_descriptors(shm_path: Path) -> None:
    serve_many(shm_path, 200, nofile=256)


@pytest.mark.slow
def test_1000_collections_under_the_default_ulimit(shm_path: Path) -> None:
    serve_many(shm_path, 1000, nofile=1024)


def test_running_out_of_file_descriptors_is_reported_as_such(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """EMFILE, even flattened into a segment error's message, is a 503 limit, not a corrupt collection."""

    def emfile(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise IndexFormatError("seg-000001/postings_docs.npy: unreadable segment file "
                               "([Errno 24] Too many open files)")

    with app_client(tmp_path) as c:
        c.put("/collections/docs", json={}, headers=AUTH)
        store: CollectionStore = c.app.state.store
        store.close_idle()
        assert store.open_count() == 0
        with monkeypatch.context() as m:
            m.setattr(Retriever, "open_live", classmethod(emfile))
            r = c.post("/collections/docs/search", json={"query": "x"})
            assert r.status_code == 503, r.text
            assert "too many open files" in r.json()["detail"] and "not corruption" in r.json()["detail"]
            assert r.headers.get("retry-after") == "1"
            assert c.get("/healthz").json() == {"status": "ok", "collections": 1, "unavailable": []}
        assert c.post("/collections/docs/search", json={"query": "x"}).status_code == 200  # no restart needed


def test_idle_collections_beyond_the_cap_are_closed(tmp_path: Path) -> None:
    with app_client(tmp_path, max_open_collections=3) as c:
        store: CollectionStore = c.app.state.store
        for i in range(8):
            c.put(f"/collections/c{i}", json={}, headers=AUTH)
            c.post(f"/collections/c{i}/documents", json={"documents": [{"_id": f"d{i}", "text": "word"}]},
                   headers=AUTH)
            assert store.open_count() <= 3
        for i in range(8):  # reopened on use, each with its documents
            assert c.get(f"/collections/c{i}/documents/d{i}").json()["text"] == "word"
            assert store.open_count() <= 3
        text = c.get("/metrics").text
        assert all(f'sparsearch_documents{{collection="c{i}"}} 1' in text for i in range(8))

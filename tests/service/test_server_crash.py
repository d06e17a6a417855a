"""kill -9 of a real server while it takes writes: every acknowledged document survives.

The server runs as ``sparsearch serve`` on 127.0.0.1 in a subprocess; a
client thread keeps posting batches and records the ids of every batch that
got HTTP 200; the server is killed with SIGKILL at a random moment, restarted
on the same data directory, and every acknowledged id must be readable.
(The 20-trial benchmark of issue 5 reuses ``run_trial``.)
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

KEY = "crash-test-key"
HEADERS = {"Authorization": f"Bearer {KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "sparsearch"
    env = {**os.environ, "SPARSEARCH_API_KEY": KEY}
    proc = subprocess.Popen([str(exe), "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


def run_trial(data_dir: Path, seed: int, batches: int = 400) -> tuple[int, int]:
    """One crash trial; returns (acknowledged documents, documents after restart)."""
    rng = random.Random(seed)
    port = free_port()
    server = start_server(data_dir, port)
    base = f"http://127.0.0.1:{port}"
    httpx.put(f"{base}/collections/crash", json={"encoder": "bm25"}, headers=HEADERS, timeout=10)
    acked: list[str] = []
    stop = threading.Event()

    def write() -> None:
        with httpx.Client(base_url=base, headers=HEADERS, timeout=5) as client:
            for b in range(batches):
                if stop.is_set():
                    return
                ids = [f"s{seed}-b{b}-{i}" for i in range(5)]
                docs = [{"_id": d, "title": d, "text": f"document {d} words {rng.random()}"} for d in ids]
                try:
                    r = client.post("/collections/crash/documents", json={"documents": docs})
                except httpx.HTTPError:
                    return  # the server died mid-request: this batch was never acknowledged
                if r.status_code == 200:
                    acked.extend(ids)

    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(rng.uniform(0.3, 1.5))
    server.send_signal(signal.SIGKILL)
    server.wait()
    stop.set()
    thread.join()
    server = start_server(data_dir, port)
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            count = client.get("/collections/crash").json()["documents"]
            missing = [d for d in acked if client.get(f"/collections/crash/documents/{d}").status_code != 200]
            assert missing == [], f"{len(missing)} acknowledged documents lost, e.g. {missing[:3]}"
            assert client.post("/collections/crash/search", json={"query": "document", "k": 5}).status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return len(acked), count


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    total = 0
    for seed in range(3):
        acked, after = run_trial(tmp_path / "data", seed)
        total += acked
        assert after >= total  # earlier trials' documents are still there too
    assert total > 0

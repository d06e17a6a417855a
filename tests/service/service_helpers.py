"""Helpers for the service tests: an app under TestClient, and real servers on loopback.

TestClient drives the app in process through httpx, which is fast but is not
the wire: uvicorn parses and percent-decodes request lines itself, so the
tests that are about what reaches the server also run a real uvicorn, either
in a thread of the test process (:func:`running_server`) or as ``sparsearch
serve`` in a subprocess (:func:`spawn_serve`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sparsearch.index.writer import LiveSettings
from sparsearch.service.app import create_app
from sparsearch.service.settings import ServiceSettings

KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def settings_for(data_dir: Path, **overrides: Any) -> ServiceSettings:
    overrides.setdefault("api_key", KEY)
    overrides.setdefault("live", LiveSettings(flush_docs=1000))
    return ServiceSettings(data_dir=data_dir, **overrides)


def app_client(data_dir: Path, **overrides: Any) -> TestClient:
    raise_errors = overrides.pop("raise_server_exceptions", True)
    return TestClient(create_app(settings_for(data_dir, **overrides)), raise_server_exceptions=raise_errors)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(app: FastAPI, **config: Any) -> Iterator[str]:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread of this process; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def sparsearch_exe() -> str:
    return str(Path(sys.executable).parent / "sparsearch")


@contextmanager
def spawn_serve(data_dir: Path, *args: str, env: dict[str, str] | None = None,
                preexec_fn: Callable[[], None] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """``sparsearch serve`` in a subprocess (key ``KEY`` unless ``env`` says otherwise); yields (URL, process)."""
    port = free_port()
    environment = {**os.environ, "SPARSEARCH_API_KEY": KEY, **(env or {})}
    proc = subprocess.Popen([sparsearch_exe(), "serve", "--data-dir", str(data_dir), "--port", str(port), *args],
                            env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=preexec_fn)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start within 60 s")
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()

"""Issue 14 item 13 and the error mapping: protocol limits, start-up refusals, races, status codes.

Before the fix: a chunked body over the limit answered 400; a Content-Length
longer than the body held the connection open for as long as the client
liked; an empty ``SPARSEARCH_API_KEY`` silently left writes open; ``/metrics``
stayed open under ``--require-key-for-reads``; an upsert racing a collection
delete answered 500; a second server on the same data directory printed a
14-line traceback.
"""

from __future__ import annotations

import errno
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from service_helpers import AUTH, KEY, app_client, running_server, settings_for, spawn_serve, sparsearch_exe
from sparsearch.cli import app as cli
from sparsearch.errors import (
    IndexClosedError,
    IndexLockedError,
    InputError,
    StorageError,
    StorageFullError,
    TooManyOpenFilesError,
)
from sparsearch.retriever.retriever import Retriever
from sparsearch.service.app import create_app, status_for
from sparsearch.service.settings import ConfigurationError, ServiceSettings
from sparsearch.service.store import CollectionStore, CollectionUnavailable

DOC = {"_id": "a", "title": "t", "text": "some words"}


# ------------------------------------------------------------------ bodies and connections


def raw_exchange(base: str, request: bytes, wait: float) -> tuple[bytes, float | None]:
    """Send raw bytes; read until the server closes (or ``wait`` s); returns (bytes, seconds to close)."""
    host, port = base.removeprefix("http://").split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=wait) as s:
        s.sendall(request)
        received = b""
        try:
            while chunk := s.recv(65536):
                received += chunk
        except socket.timeout:
            return received, None
    return received, time.monotonic() - start


def test_chunked_body_over_the_limit_is_413(tmp_path: Path) -> None:
    with app_client(tmp_path, max_body_bytes=1000) as c:
        c.put("/collections/docs", json={}, headers=AUTH)
        body = b'{"documents": [{"_id": "x", "text": "' + b"y" * 5000 + b'"}]}'
        r = c.post("/collections/docs/documents", content=iter([body[:700], body[700:]]), headers=AUTH)
        assert r.status_code == 413 and "max_body_bytes=1000" in r.json()["detail"]
        small = b'{"documents": [{"_id": "x", "text": "y"}]}'
        r = c.post("/collections/docs/documents", content=iter([small[:10], small[10:]]),
                   headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 200, r.text  # chunked bodies under the limit are read whole


def test_over_a_real_socket_stalled_and_chunked_bodies_are_answered_and_closed(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path, max_body_bytes=1000, body_timeout_seconds=1.0))
    with running_server(app, timeout_keep_alive=1) as base:
        head = (f"POST /collections/docs/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                f"Content-Type: application/json\r\n")
        # Content-Length 100, 10 bytes sent: 408 after the body timeout, then the connection is closed.
        received, closed_after = raw_exchange(base, (head + "Content-Length: 100\r\n\r\n{\"docume").encode(), 10)
        assert received.startswith(b"HTTP/1.1 408"), received
        assert closed_after is not None and closed_after < 5
        # A chunked body past the limit: 413 (not 400), and closed.
        chunk = b"y" * 800
        chunked = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 2
        received, closed_after = raw_exchange(base, chunked, 10)
        assert received.startswith(b"HTTP/1.1 413") and b"max_body_bytes=1000" in received, received
        assert closed_after is not None
        # An idle keep-alive connection is closed after the keep-alive timeout.
        received, closed_after = raw_exchange(base, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 10)
        assert received.startswith(b"HTTP/1.1 200") and closed_after is not None and closed_after < 5


# ------------------------------------------------------------------ keys


def run_serve(monkeypatch: pytest.MonkeyPatch, data_dir: Path, *args: str,
              key: str | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """``sparsearch serve`` in process with uvicorn.run replaced; returns (result, uvicorn.run's kwargs)."""
    import uvicorn

    calls: list[dict[str, object]] = []

    def fake_run(app, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs)
        app.state.store.close()  # opened by serve before uvicorn runs; a real run's lifespan closes it

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.delenv("SPARSEARCH_API_KEY_FILE", raising=False)
    if key is None:
        monkeypatch.delenv("SPARSEARCH_API_KEY", raising=False)
    else:
        monkeypatch.setenv("SPARSEARCH_API_KEY", key)
    result = CliRunner().invoke(cli, ["serve", "--data-dir", str(data_dir), *args])
    return result, calls


@pytest.mark.parametrize("key", [None, "", "   "])
def test_no_key_refuses_to_start_unless_writes_are_made_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            key: str | None) -> None:
    result, calls = run_serve(monkeypatch, tmp_path, key=key)
    assert result.exit_code == 2 and calls == []
    assert result.stderr.startswith("error: no API key") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    result, calls = run_serve(monkeypatch, tmp_path / "open", "--open-writes", key=key)
    assert result.exit_code == 0, result.output
    assert calls and calls[0]["timeout_keep_alive"] == 5  # read timeouts are set on the real server


def test_contradictory_settings_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, _ = run_serve(monkeypatch, tmp_path, "--open-writes", key=KEY)
    assert result.exit_code == 2 and "contradicts" in result.stderr
    result, _ = run_serve(monkeypatch, tmp_path, "--open-writes", "--require-key-for-reads")
    assert result.exit_code == 2 and "needs an API key" in result.stderr
    with pytest.raises(ConfigurationError):
        create_app(ServiceSettings(data_dir=tmp_path))
    monkeypatch.setenv("SPARSEARCH_API_KEY", "  ")
    assert ServiceSettings.from_env(tmp_path).api_key is None


def test_metrics_need_the_key_when_reads_do(tmp_path: Path) -> None:
    with app_client(tmp_path, require_key_for_reads=True) as c:
        c.put("/collections/docs", json={}, headers=AUTH)
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=AUTH).status_code == 200
        assert c.get("/healthz").status_code == 200  # health stays open (load balancers)
    with app_client(tmp_path) as c:
        assert c.get("/metrics").status_code == 200


# ------------------------------------------------------------------ the data directory


def test_a_second_server_prints_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with CollectionStore(tmp_path):
        result, calls = run_serve(monkeypatch, tmp_path, key=KEY)
    assert result.exit_code == 2 and calls == []
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "another sparsearch process" in result.stderr


def test_a_second_real_server_and_a_stalled_body_on_the_real_server(tmp_path: Path) -> None:
    """``sparsearch serve`` end to end: its read timeout, and a second server on the same directory."""
    with spawn_serve(tmp_path, "--body-timeout", "1") as (base, _):
        head = f"POST /collections/docs/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        received, closed_after = raw_exchange(base, (head + "Content-Length: 50\r\n\r\n{").encode(), 15)
        assert received.startswith(b"HTTP/1.1 408") and closed_after is not None
        second = subprocess.run([sparsearch_exe(), "serve", "--data-dir", str(tmp_path), "--port", "1"],
                                env={"PATH": "/usr/bin:/bin", "SPARSEARCH_API_KEY": KEY},
                                capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    assert second.stderr.startswith("error: ") and second.stderr.count("\n") == 1, second.stderr


# ------------------------------------------------------------------ races and the error mapping


def test_an_upsert_racing_a_collection_delete_gets_404(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entered, proceed = threading.Event(), threading.Event()
    real_upsert = Retriever.upsert

    def paused_upsert(self, documents):  # type: ignore[no-untyped-def]
        entered.set()
        proceed.wait(10)
        return real_upsert(self, documents)

    with app_client(tmp_path, raise_server_exceptions=False) as c:
        c.put("/collections/docs", json={}, headers=AUTH)
        monkeypatch.setattr(Retriever, "upsert", paused_upsert)
        answer: list[object] = []
        writer = threading.Thread(target=lambda: answer.append(
            c.post("/collections/docs/documents", json={"documents": [DOC]}, headers=AUTH)))
        writer.start()
        assert entered.wait(10)
        assert c.delete("/collections/docs", headers=AUTH).status_code == 200
        proceed.set()
        writer.join(10)
        r = answer[0]
        assert r.status_code == 404 and "deleted" in r.json()["detail"], r.text  # type: ignore[attr-defined]
        monkeypatch.undo()
        assert c.get("/collections/docs").status_code == 404


def test_writes_racing_deletes_never_answer_500(tmp_path: Path) -> None:
    with app_client(tmp_path, raise_server_exceptions=False) as c:
        statuses: set[int] = set()

        def write() -> None:
            for i in range(40):
                r = c.post("/collections/docs/documents", json={"documents": [{**DOC, "_id": f"d{i}"}]},
                           headers=AUTH)
                statuses.add(r.status_code)

        for _ in range(3):
            c.put("/collections/docs", json={}, headers=AUTH)
            threads = [threading.Thread(target=write) for _ in range(3)]
            for t in threads:
                t.start()
            time.sleep(0.05)
            c.delete("/collections/docs", headers=AUTH)
            for t in threads:
                t.join()
        assert statuses <= {200, 404}, statuses


@pytest.mark.parametrize("error,status,words", [
    (StorageFullError("appending to the log failed: no space left on the device", errno.ENOSPC), 507, "no space"),
    (StorageError("fsync failed: Input/output error", errno.EIO), 503, "Input/output"),
    (TooManyOpenFilesError("too many open files", errno.EMFILE), 503, "too many open files"),
    (IndexLockedError("the index is being written by pid 4242"), 503, "pid 4242"),
    (IndexClosedError("the index was closed"), 404, "closed"),
    (CollectionUnavailable("docs", "corrupt manifest"), 503, "corrupt manifest"),
    (OSError(errno.ENOSPC, "No space left on device"), 507, "No space"),
    (OSError(errno.EIO, "Input/output error"), 503, "Input/output"),
    (InputError("bad document", field="text"), 422, "bad document"),
])
def test_errors_map_to_status_codes_naming_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     error: Exception, status: int, words: str) -> None:
    assert status_for(error) == status

    def failing(self, documents):  # type: ignore[no-untyped-def]
        raise error

    with app_client(tmp_path, raise_server_exceptions=False) as c:
        c.put("/collections/docs", json={}, headers=AUTH)
        monkeypatch.setattr(Retriever, "upsert", failing)
        r = c.post("/collections/docs/documents", json={"documents": [DOC]}, headers=AUTH)
        assert r.status_code == status and words in r.json()["detail"], r.text

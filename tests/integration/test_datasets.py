"""Datasets by name (issue 15, item 2), against a loopback HTTP server: no network needed.

The server serves a tiny BEIR dataset zipped by the test, honours
``Range: bytes=N-`` (206 + Content-Range) unless told not to, and can drop
the connection after a given number of body bytes.  The archive is registered
through ``$SPARSEARCH_DATASET_INDEX``, as a user would add a mirror.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import sys
import threading
import types
import zipfile
from collections import namedtuple
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from typer.testing import CliRunner

from sparsearch.cli import app
from sparsearch.datasets import DatasetError, get_dataset, resolve_dataset
from sparsearch.datasets.download import MARKER
from sparsearch.errors import MissingDependencyError

runner = CliRunner()

DOCS = [
    ("d1", "Vitamin D", "Vitamin D deficiency is linked to bone fractures in older adults."),
    ("d2", "Sleep", "Short sleep duration raises the risk of obesity in children."),
    ("d3", "Coffee", "Coffee consumption and liver disease: a cohort study of caffeine intake."),
    ("d4", "Exercise", "Aerobic exercise improves memory and hippocampal volume."),
    ("d5", "Smoking", "Smoking cessation lowers lung cancer incidence within ten years."),
    ("d6", "Salt", "Dietary salt reduction lowers blood pressure in hypertensive patients."),
]
QUERIES = [("q1", "vitamin D and fractures"), ("q2", "does coffee harm the liver"), ("q3", "salt and blood pressure")]
QRELS = [("q1", "d1", 1), ("q2", "d3", 1), ("q3", "d6", 2)]


def tiny_beir_zip(top: str = "tiny", extra: dict[str, bytes] | None = None) -> bytes:
    """A BEIR dataset (corpus, queries, qrels/test.tsv) zipped under one top-level folder, as BEIR ships them."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{top}/corpus.jsonl", "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n"
                                                  for i, t, x in DOCS * 1))
        z.writestr(f"{top}/queries.jsonl", "".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES))
        z.writestr(f"{top}/qrels/test.tsv", "query-id\tcorpus-id\tscore\r\n"
                   + "".join(f"{q}\t{d}\t{s}\r\n" for q, d, s in QRELS))
        # Incompressible padding so that the archive spans several reads and can be cut half-way.
        z.writestr(f"{top}/padding.bin", hashlib.sha256(b"seed").digest() * 2048, compress_type=zipfile.ZIP_STORED)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


@dataclass
class Loopback:
    files: dict[str, bytes]
    drop_after: dict[str, int] = field(default_factory=dict)  # path -> body bytes sent before dropping (once)
    ignore_range: bool = False
    requests: list[tuple[str, str | None, int]] = field(default_factory=list)  # (path, Range header, status)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(state: Loopback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _empty(self, status: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            state.requests.append((self.path, self.headers.get("Range"), status))

        def do_GET(self) -> None:  # noqa: N802
            body = state.files.get(self.path)
            rng = self.headers.get("Range")
            if body is None:
                return self._empty(404, {})
            start, status = 0, 200
            if rng and not state.ignore_range:
                m = re.fullmatch(r"bytes=(\d+)-", rng)
                assert m, rng
                start = int(m.group(1))
                if start >= len(body):
                    return self._empty(416, {"Content-Range": f"bytes */{len(body)}"})
                status = 206
            payload = body[start:]
            state.requests.append((self.path, rng, status))
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Accept-Ranges", "none" if state.ignore_range else "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            cut = state.drop_after.pop(self.path, None)
            if cut is not None:  # the connection drops mid-body
                self.wfile.write(payload[:cut])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(payload)

    return Handler


@pytest.fixture()
def loopback() -> Iterator[Loopback]:
    state = Loopback(files={})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def register(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: dict[str, dict[str, Any]]) -> None:
    index = tmp_path / "datasets.json"
    index.write_text(json.dumps(entries), encoding="utf-8")
    monkeypatch.setenv("SPARSEARCH_DATASET_INDEX", str(index))


@pytest.fixture()
def tiny(loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The tiny archive served at /tiny.zip and registered as ``tiny`` with its md5 and sha256."""
    data = tiny_beir_zip()
    loopback.files["/tiny.zip"] = data
    entry = {"url": loopback.url("/tiny.zip"), "md5": hashlib.md5(data).hexdigest(),
             "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "description": "test fixture"}
    register(tmp_path, monkeypatch, {"tiny": entry})
    monkeypatch.delenv("SPARSEARCH_CACHE", raising=False)
    monkeypatch.delenv("SPARSEARCH_DATA", raising=False)
    return {"data": data, "entry": entry, "cache": tmp_path / "cache"}


def leftovers(cache: Path) -> list[str]:
    """Every file in the cache except locks, as relative paths."""
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def cli(*args: Any):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


# --- download, checksum, extraction -------------------------------------------------------------------------------

def test_get_downloads_verifies_and_extracts_once(tiny: dict[str, Any], loopback: Loopback) -> None:
    cache = tiny["cache"]
    messages: list[str] = []
    folder = get_dataset("tiny", cache, progress=False, log=messages.append)
    assert folder == cache / "datasets" / "tiny"
    assert (folder / "corpus.jsonl").exists() and (folder / "qrels" / "test.tsv").exists()
    marker = json.loads((folder / MARKER).read_text())
    assert marker["sha256"] == tiny["entry"]["sha256"] and marker["md5"] == tiny["entry"]["md5"]
    assert marker["verified"] is True and marker["bytes"] == len(tiny["data"])
    assert any("verified sha256 and md5" in m for m in messages), messages
    # Only the dataset: no archive, no .part, no temporary folder.
    assert all(p.startswith("datasets/tiny") for p in leftovers(cache)), leftovers(cache)
    assert get_dataset("tiny", cache, progress=False) == folder
    assert len(loopback.requests) == 1  # cached: no second request


def test_eval_by_name_end_to_end(tiny: dict[str, Any], tmp_path: Path) -> None:
    cache = tiny["cache"]
    report = tmp_path / "report.json"
    r = cli("eval", "tiny", "--cache-dir", cache, "--no-speed", "-k", "10", "--report", report)
    assert r.exit_code == 0, r.output
    assert "downloading tiny" in r.stderr and "tiny test: NDCG@10" in r.stdout
    rep = json.loads(report.read_text())
    assert rep["dataset"] == "tiny" and rep["n_queries"] == 3 and rep["n_docs"] == len(DOCS)
    assert rep["metrics"]["ndcg_cut_10"] > 0.9  # each query names its document's words
    r = cli("datasets", "list", "--cache-dir", cache)
    assert r.exit_code == 0, r.output
    row = next(line for line in r.stdout.splitlines() if line.startswith("tiny "))
    assert "md5+sha256" in row and row.rstrip().endswith("yes")
    assert "scifact" in r.stdout and "nfcorpus" in r.stdout
    r = cli("datasets", "get", "tiny", "--cache-dir", cache)
    assert r.exit_code == 0 and r.stdout.strip() == str(cache / "datasets" / "tiny")


def test_cache_dir_from_environment(tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARSEARCH_CACHE", str(tiny["cache"]))
    r = cli("datasets", "get", "tiny", "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == str(tiny["cache"] / "datasets" / "tiny")
    assert resolve_dataset("tiny", download=False) == tiny["cache"] / "datasets" / "tiny"


def test_checksum_mismatch_is_a_clear_error_and_extracts_nothing(
        tiny: dict[str, Any], loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = dict(tiny["entry"], sha256="0" * 64)
    register(tmp_path, monkeypatch, {"tiny": wrong})
    cache = tiny["cache"]
    line = one_error_line(cli("datasets", "get", "tiny", "--cache-dir", cache))
    assert "checksum mismatch for tiny" in line and "0" * 64 in line and tiny["entry"]["sha256"] in line
    assert "Nothing was extracted" in line and "tiny.zip.bad" in line
    assert not (cache / "datasets" / "tiny").exists()
    assert leftovers(cache) == ["downloads/tiny.zip.bad"]
    # The same through eval: one line, and still no dataset folder.
    assert "checksum mismatch" in one_error_line(cli("eval", "tiny", "--cache-dir", cache))
    assert not (cache / "datasets" / "tiny").exists()
    # A wrong md5 alone is caught as well.
    register(tmp_path, monkeypatch, {"tiny": dict(tiny["entry"], md5="f" * 32)})
    with pytest.raises(DatasetError, match="md5"):
        get_dataset("tiny", cache, progress=False)


def test_interrupted_download_resumes_with_range(tiny: dict[str, Any], loopback: Loopback) -> None:
    cache = tiny["cache"]
    half = len(tiny["data"]) // 2
    loopback.drop_after["/tiny.zip"] = half
    with pytest.raises(DatasetError, match=r"interrupted at .* run the command again to resume"):
        get_dataset("tiny", cache, progress=False, retries=0)
    part = cache / "downloads" / "tiny.zip.part"
    assert part.stat().st_size == half
    assert leftovers(cache) == ["downloads/tiny.zip.part"]  # no dataset, no temporary folder
    messages: list[str] = []
    folder = get_dataset("tiny", cache, progress=False, retries=0, log=messages.append)
    assert loopback.requests[-1] == ("/tiny.zip", f"bytes={half}-", 206)
    assert any("resuming at" in m for m in messages), messages
    marker = json.loads((folder / MARKER).read_text())
    assert marker["sha256"] == tiny["entry"]["sha256"] and marker["bytes"] == len(tiny["data"])
    assert not part.exists()


def test_interruption_is_retried_within_one_call(tiny: dict[str, Any], loopback: Loopback) -> None:
    loopback.drop_after["/tiny.zip"] = 1000
    r = cli("datasets", "get", "tiny", "--cache-dir", tiny["cache"], "--retries", "1")
    assert r.exit_code == 0, r.output
    assert "interrupted at" in r.stderr and "resuming at" in r.stderr
    assert [(rng, status) for _, rng, status in loopback.requests] == [(None, 200), ("bytes=1000-", 206)]


def test_server_ignoring_range_restarts_from_zero(tiny: dict[str, Any], loopback: Loopback) -> None:
    cache = tiny["cache"]
    part = cache / "downloads" / "tiny.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes from some other file")  # would corrupt the archive if appended to
    loopback.ignore_range = True
    messages: list[str] = []
    folder = get_dataset("tiny", cache, progress=False, log=messages.append)
    assert loopback.requests == [("/tiny.zip", "bytes=32-", 200)]
    assert any("does not resume" in m for m in messages), messages
    assert json.loads((folder / MARKER).read_text())["sha256"] == tiny["entry"]["sha256"]


def test_complete_part_answered_416_is_not_fetched_again(tiny: dict[str, Any], loopback: Loopback) -> None:
    cache = tiny["cache"]
    part = cache / "downloads" / "tiny.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(tiny["data"])  # killed after the last byte, before the rename
    folder = get_dataset("tiny", cache, progress=False)
    assert [status for *_, status in loopback.requests] == [416]
    assert (folder / "corpus.jsonl").exists()


def test_stale_extraction_folder_is_removed(tiny: dict[str, Any]) -> None:
    cache = tiny["cache"]
    stale = cache / "datasets" / ".tmp-tiny-abc123"
    (stale / "x").mkdir(parents=True)  # what a kill -9 during extraction leaves
    assert resolve_dataset("tiny", cache, progress=False) == cache / "datasets" / "tiny"
    assert not stale.exists()


# --- errors -----------------------------------------------------------------------------------------------------

def test_name_found_in_the_shared_data_folder_needs_no_download(tiny: dict[str, Any], loopback: Loopback,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    with zipfile.ZipFile(io.BytesIO(tiny["data"])) as z:
        z.extractall(shared / "beir")
    monkeypatch.setenv("SPARSEARCH_DATA", str(shared))
    assert resolve_dataset("tiny", tiny["cache"]) == shared / "beir" / "tiny"
    assert loopback.requests == [] and not tiny["cache"].exists()


def test_unknown_name_lists_the_known_ones(tiny: dict[str, Any]) -> None:
    line = one_error_line(cli("eval", "scifcat", "--cache-dir", tiny["cache"]))
    assert "unknown dataset 'scifcat'" in line and "did you mean 'scifact'" in line
    assert all(n in line for n in ("nfcorpus", "scifact", "trec-covid", "tiny"))
    line = one_error_line(cli("datasets", "get", "nosuchset", "--cache-dir", tiny["cache"]))
    assert "known names:" in line and "scifact" in line
    assert "no subset 'cooking'" in one_error_line(cli("datasets", "get", "cqadupstack/cooking"))
    assert "not redistributed" in one_error_line(cli("datasets", "get", "bioasq", "--cache-dir", tiny["cache"]))
    assert not tiny["cache"].exists()


def test_offline_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    register(tmp_path, monkeypatch, {"tiny": {"url": f"http://127.0.0.1:{port}/tiny.zip", "sha256": "a" * 64}})
    cache = tmp_path / "cache"
    for args in (("datasets", "get", "tiny"), ("eval", "tiny")):
        line = one_error_line(cli(*args, "--cache-dir", cache))
        assert line.startswith("error: cannot download tiny from http://127.0.0.1:") and "connection refused" in line
        assert "offline?" in line
    assert not (cache / "datasets" / "tiny").exists() and not (cache / "downloads" / "tiny.zip.part").exists()


def test_http_error_status(tiny: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           loopback: Loopback) -> None:
    register(tmp_path, monkeypatch, {"gone": {"url": loopback.url("/gone.zip")}})
    line = one_error_line(cli("datasets", "get", "gone", "--cache-dir", tiny["cache"]))
    assert "the server answered 404" in line


def test_unverified_entry_warns_and_records_sha256(loopback: Loopback, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = tiny_beir_zip()
    loopback.files["/plain.zip"] = data
    register(tmp_path, monkeypatch, {"plain": {"url": loopback.url("/plain.zip")}})
    r = cli("datasets", "get", "plain", "--cache-dir", tmp_path / "cache")
    assert r.exit_code == 0, r.output
    assert "warning: plain has no published checksum: this download is unverified" in r.stderr
    marker = json.loads((tmp_path / "cache" / "datasets" / "plain" / MARKER).read_text())
    assert marker["verified"] is False and marker["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("member", ["../escape.txt", "/abs/escape.txt"])
def test_archive_member_outside_the_folder_is_refused(member: str, loopback: Loopback, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    data = tiny_beir_zip(extra={member: b"x"})
    loopback.files["/evil.zip"] = data
    register(tmp_path, monkeypatch, {"evil": {"url": loopback.url("/evil.zip"),
                                              "sha256": hashlib.sha256(data).hexdigest()}})
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match="refusing archive member"):
        get_dataset("evil", cache, progress=False)
    assert not (cache / "datasets" / "evil").exists() and not list(tmp_path.rglob("escape.txt"))
    assert [p for p in leftovers(cache) if p.startswith("datasets/")] == []


def test_not_a_zip_is_a_clear_error(loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loopback.files["/html.zip"] = b"<html>a captive portal</html>"
    register(tmp_path, monkeypatch, {"html": {"url": loopback.url("/html.zip")}})
    with pytest.raises(DatasetError, match="not a valid zip archive"):
        get_dataset("html", tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache" / "datasets" / "html").exists()


def test_a_folder_is_used_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "scifact"  # a folder wins over the registry name it shares
    folder.mkdir()
    assert resolve_dataset(folder) == folder
    with pytest.raises(DatasetError, match="no such dataset folder"):
        resolve_dataset(tmp_path / "missing" / "set")


def test_bad_index_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register(tmp_path, monkeypatch, {"Bad Name": {"url": "http://x"}})
    assert "names are lower-case" in one_error_line(cli("datasets", "list"))
    (tmp_path / "datasets.json").write_text("{not json")
    assert "not valid JSON" in one_error_line(cli("datasets", "list"))


# --- irds: through a stand-in ir_datasets -------------------------------------------------------------------------

Doc = namedtuple("Doc", ["doc_id", "text", "title"])
Query = namedtuple("Query", ["query_id", "text"])
Qrel = namedtuple("Qrel", ["query_id", "doc_id", "relevance", "iteration"])


def fake_ir_datasets() -> types.ModuleType:
    """The part of ir_datasets' API that the export uses (``load``, ``*_iter``, ``has_*``)."""
    class Dataset:
        def docs_iter(self) -> Iterator[Doc]:
            return iter(Doc(i, x, t) for i, t, x in DOCS)

        def queries_iter(self) -> Iterator[Query]:
            return iter(Query(i, t) for i, t in QUERIES)

        def qrels_iter(self) -> Iterator[Qrel]:
            return iter(Qrel(q, d, s, "0") for q, d, s in QRELS)

        def has_docs(self) -> bool:
            return True

        has_queries = has_qrels = has_docs

    module = types.ModuleType("ir_datasets")
    datasets = {"fake/tiny/test": Dataset()}

    def load(dataset_id: str) -> Dataset:
        return datasets[dataset_id]  # KeyError for an unknown id, as ir_datasets raises

    module.load = load  # type: ignore[attr-defined]
    module.__version__ = "0.0-fake"  # type: ignore[attr-defined]
    return module


def test_irds_id_through_ir_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ir_datasets", fake_ir_datasets())
    cache = tmp_path / "cache"
    r = cli("eval", "irds:fake/tiny/test", "--cache-dir", cache, "--no-speed", "-k", "10")
    assert r.exit_code == 0, r.output
    assert "NDCG@10" in r.stdout and "(3 queries)" in r.stdout
    folder = cache / "irds" / "fake__tiny__test"
    assert json.loads((folder / MARKER).read_text())["documents"] == len(DOCS)
    first = json.loads((folder / "corpus.jsonl").read_text().splitlines()[0])
    assert first == {"_id": "d1", "title": "Vitamin D", "text": DOCS[0][2]}
    assert "unknown" not in r.output
    line = one_error_line(cli("eval", "irds:fake/nope", "--cache-dir", cache))
    assert "ir_datasets has no dataset with this id" in line
    assert "choose the split in the id" in one_error_line(cli("eval", "irds:fake/tiny/test", "--split", "train",
                                                              "--cache-dir", cache))


def test_irds_without_the_package_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ir_datasets", None)  # import fails as if not installed
    line = one_error_line(cli("datasets", "get", "irds:beir/scifact/test", "--cache-dir", tmp_path))
    assert "pip install 'sparsearch[irds]'" in line
    with pytest.raises(MissingDependencyError):
        resolve_dataset("irds:beir/scifact/test", tmp_path)
    assert not (tmp_path / "irds").exists()


def test_real_ir_datasets_if_installed(tmp_path: Path) -> None:
    """The real package's API, on an id it knows (no download: only ``load`` and ``has_*``)."""
    ir_datasets = pytest.importorskip("ir_datasets")
    ds = ir_datasets.load("beir/scifact/test")
    assert ds.has_docs() and ds.has_queries() and ds.has_qrels()

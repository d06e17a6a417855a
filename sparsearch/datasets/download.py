"""Fetching a dataset archive into the cache: streamed, resumable, checksummed, unpacked atomically.

Cache layout (root: ``--cache-dir``, else ``$SPARSEARCH_CACHE``, else
``$XDG_CACHE_HOME/sparsearch``, else ``~/.cache/sparsearch``)::

    datasets/NAME/            the unpacked dataset (present only when complete)
    datasets/NAME/.sparsearch-dataset.json   where it came from, its checksums
    downloads/NAME.zip.part   a download in progress or interrupted (resumed next time)
    downloads/NAME.zip.bad    the last download whose checksum was wrong (kept for inspection)
    downloads/NAME.lock       held while one process fetches NAME

The steps, and what each leaves when it stops half-way:

1. The archive is streamed to ``NAME.zip.part``.  When that file exists the
   request asks for the rest (``Range: bytes=N-``) and appends only if the
   server answers ``206`` with a ``Content-Range`` starting at ``N``; a
   ``200`` means the server ignored the range and the download starts over.
   An interrupted transfer (dropped connection, short body, Ctrl-C) leaves
   just the ``.part``; the next call resumes it (a call retries on its own
   ``retries`` times first).
2. The whole ``.part`` is hashed (md5 and sha256) and compared with every
   checksum the registry has.  A mismatch is a :class:`DatasetError`; the file
   is moved aside to ``NAME.zip.bad`` (never extracted) so the next call
   starts afresh.  With no checksum known, a warning says the download is
   unverified and its sha256 is recorded in the dataset's
   ``.sparsearch-dataset.json``.
3. The archive is unpacked into a temporary folder beside ``datasets/NAME``
   (members with absolute paths, ``..`` or links are refused), then renamed
   into place in one step, and the archive is deleted.  A crash here leaves a
   ``datasets/.tmp-NAME-*`` folder that the next call removes, never a
   half-filled ``datasets/NAME``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from sparsearch.cache import CACHE_ENV, cache_root
from sparsearch.datasets.registry import DatasetError, DatasetInfo, lookup, split_name

MARKER = ".sparsearch-dataset.json"
CHUNK = 1 << 20
USER_AGENT = "sparsearch (dataset download; +https://github.com/beir-cellar/beir)"

Log = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def dataset_path(name: str, cache_dir: str | Path | None = None) -> Path:
    """Where ``name`` (``NAME`` or ``NAME/SUBSET``) lives in the cache, whether or not it is there."""
    base, sub = split_name(name)
    path = cache_root(cache_dir) / "datasets" / base
    return path / sub if sub else path


def cached_info(path: Path) -> dict | None:  # type: ignore[type-arg]
    """The ``.sparsearch-dataset.json`` of a cached dataset folder, or ``None`` if it is not there."""
    try:
        return json.loads((path / MARKER).read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


# --- locking ---------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _locked(path: Path, log: Log) -> Iterator[None]:
    """An exclusive lock on ``path`` (POSIX ``flock``; no lock where that is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another process fetching the same dataset ({path})")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- HTTP ------------------------------------------------------------------------------------------------------

class _Interrupted(Exception):
    """The body stopped before its end; what arrived is in the ``.part``."""

    def __init__(self, have: int, total: int | None, why: str) -> None:
        super().__init__(why)
        self.have, self.total, self.why = have, total, why


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", err)
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "host name not found"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(reason, ssl.SSLError):
        return f"TLS error ({getattr(reason, 'reason', None) or reason})"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)  # type: ignore[no-any-return]


def _fetch_once(url: str, part: Path, *, timeout: float, progress: bool, desc: str, log: Log) -> None:
    """One HTTP request appending to (or starting) ``part``; raises :class:`_Interrupted` on a short body."""
    offset = part.stat().st_size if part.exists() else 0
    what = f"{desc} from {url}" if desc else url
    try:
        resp = _open(url, offset, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: complete already, or longer than the file
            match = re.fullmatch(r"bytes\s+\*/(\d+)", e.headers.get("Content-Range", "") or "")
            e.close()
            if match and int(match.group(1)) == offset:
                return
            log(f"the partial download ({_size(offset)}) does not fit the file on the server; starting over")
            part.unlink()
            return _fetch_once(url, part, timeout=timeout, progress=progress, desc=desc, log=log)
        e.close()
        raise DatasetError(f"cannot download {what}: the server answered {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise DatasetError(f"cannot download {what}: {_reason(e)} (offline? pass a dataset folder instead, or "
                           "--cache-dir / $SPARSEARCH_CACHE pointing at a cache that holds it)") from None
    with resp:
        length = resp.headers.get("Content-Length")
        remaining = int(length) if length and length.isdigit() else None
        mode = "wb"
        if offset:
            if resp.status == 206:
                match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", "") or "")
                if not match or int(match.group(1)) != offset:
                    raise DatasetError(f"cannot resume {url}: the server sent range "
                                       f"{resp.headers.get('Content-Range')!r} for bytes={offset}-; delete {part} "
                                       "to start over")
                mode = "ab"
                log(f"resuming at {_size(offset)}")
            else:  # 200: the server ignored the range and sends everything
                log(f"the server does not resume downloads (HTTP {resp.status}); starting over")
                offset = 0
        total = offset + remaining if remaining is not None else None
        from tqdm import tqdm

        have = offset
        with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                                         desc=desc, disable=None if progress else True, file=sys.stderr,
                                         leave=False) as bar:
            try:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    have += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as e:
                raise _Interrupted(have, total, _reason(e)) from None
        if total is not None and have < total:
            raise _Interrupted(have, total, "the connection closed early")


def download(url: str, part: Path, *, retries: int = 2, timeout: float = 60.0, progress: bool = True,
             desc: str = "", log: Log = _quiet) -> None:
    """Fetch ``url`` into ``part`` (resuming what is there), retrying an interrupted transfer ``retries`` times."""
    part.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout=timeout, progress=progress, desc=desc, log=log)
            return
        except _Interrupted as e:
            where = f"{_size(e.have)} of {_size(e.total)}"
            if attempt < retries:
                log(f"download interrupted at {where} ({e.why}); resuming")
                time.sleep(min(0.5 * 2 ** attempt, 5.0))
                continue
            raise DatasetError(f"download of {desc + ' from ' if desc else ''}{url} interrupted at {where} ({e.why}); run the command again to "
                               f"resume from the partial file {part}") from None


# --- checking and unpacking ------------------------------------------------------------------------------------

def file_digests(path: Path) -> tuple[str, str, int]:
    """``(md5, sha256, size)`` of a file, in one pass."""
    md5, sha256, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return md5.hexdigest(), sha256.hexdigest(), size


def verify(info: DatasetInfo, part: Path, log: Log) -> dict[str, object]:
    """Compare ``part`` with every checksum ``info`` has; on a mismatch move it to ``.bad`` and raise."""
    md5, sha256, size = file_digests(part)
    wrong = [f"{algo} {got} (expected {want})" for algo, got, want in
             (("size", size, info.size), ("sha256", sha256, info.sha256), ("md5", md5, info.md5))
             if want is not None and got != want]
    if wrong:
        bad = part.with_name(part.name.removesuffix(".part") + ".bad")
        os.replace(part, bad)
        raise DatasetError(f"checksum mismatch for {info.name} from {info.url}: {'; '.join(wrong)}. Nothing was "
                           f"extracted; the download was moved to {bad} and the next attempt starts afresh")
    if info.verified:
        log(f"verified {' and '.join(a for a, w in (('sha256', info.sha256), ('md5', info.md5)) if w)}")
    else:
        log(f"warning: {info.name} has no published checksum: this download is unverified "
            f"(sha256 {sha256}, recorded in its {MARKER})")
    return {"md5": md5, "sha256": sha256, "bytes": size, "verified": info.verified}


def _safe_members(archive: zipfile.ZipFile, source: Path) -> list[zipfile.ZipInfo]:
    members = []
    for m in archive.infolist():
        p = PurePosixPath(m.filename.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", m.filename):
            raise DatasetError(f"{source}: refusing archive member {m.filename!r} (outside the target folder)")
        if stat.S_ISLNK(m.external_attr >> 16):
            raise DatasetError(f"{source}: refusing archive member {m.filename!r} (a symbolic link)")
        if p.parts and p.parts[0] == "__MACOSX":
            continue
        members.append(m)
    return members


def _dataset_root(folder: Path) -> Path:
    """The folder holding the data: the archive's single top-level folder, or the extraction folder itself."""
    entries = [p for p in folder.iterdir() if p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return folder


def extract(archive_path: Path, target: Path, marker: dict[str, object]) -> None:
    """Unpack ``archive_path`` into a temporary folder beside ``target``, then rename it to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        try:
            with zipfile.ZipFile(archive_path) as archive:
                members = _safe_members(archive, archive_path)
                archive.extractall(tmp / "x", members=members)
        except zipfile.BadZipFile as e:
            raise DatasetError(f"{archive_path}: not a valid zip archive ({e})") from None
        root = _dataset_root(tmp / "x") if (tmp / "x").exists() else tmp / "x"
        if not root.exists() or not any(root.iterdir()):
            raise DatasetError(f"{archive_path}: the archive is empty")
        (root / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        old = None
        if target.exists():  # --force: swap, then remove the old copy
            old = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-old-", dir=target.parent))
            os.replace(target, old / "d")
        os.replace(root, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale(folder: Path, name: str) -> None:
    """Temporary folders a killed extraction of ``name`` left (only ever called under the lock)."""
    if folder.is_dir():
        for p in folder.glob(f".tmp-{name}-*"):
            shutil.rmtree(p, ignore_errors=True)


# --- the whole step --------------------------------------------------------------------------------------------

def get_dataset(name: str, cache_dir: str | Path | None = None, *, force: bool = False, progress: bool = True,
                retries: int = 2, timeout: float = 60.0, log: Log = _quiet) -> Path:
    """The cached folder of dataset ``name`` (``NAME`` or ``NAME/SUBSET``), downloaded first if missing.

    ``force`` downloads again even when cached.  Every failure is a
    :class:`DatasetError` with a one-line message.
    """
    info = lookup(name)
    base, sub = split_name(name)
    root = cache_root(cache_dir)
    target = root / "datasets" / base
    if target.is_dir() and not force:
        return _subset(target, name, sub)
    if info.url is None:
        raise DatasetError(f"{base} is not redistributed by BEIR, so it cannot be downloaded: build it as "
                           f"{info.homepage or 'its authors describe'} explains, then pass its folder")
    downloads = root / "downloads"
    with _locked(downloads / f"{base}.lock", log):
        if target.is_dir() and not force:  # another process finished it while we waited
            return _subset(target, name, sub)
        _remove_stale(target.parent, base)
        part = downloads / f"{base}.zip.part"
        log(f"downloading {base} from {info.url}" + (f" ({_size(info.size)})" if info.size else ""))
        download(info.url, part, retries=retries, timeout=timeout, progress=progress, desc=base, log=log)
        sums = verify(info, part, log)
        archive = part.with_name(f"{base}.zip")
        os.replace(part, archive)
        marker = {"name": base, "url": info.url, **sums, "downloaded": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                      time.gmtime())}
        try:
            extract(archive, target, marker)
        finally:
            archive.unlink(missing_ok=True)
        log(f"{base}: ready in {target}")
    return _subset(target, name, sub)


def _subset(target: Path, name: str, sub: str | None) -> Path:
    if sub is None:
        return target
    path = target / sub
    if not path.is_dir():
        raise DatasetError(f"{name}: the cached {target.name} has no folder {sub!r} ({target})")
    return path

"""Fixtures of the service tests (helpers to import are in ``service_helpers.py``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest


@pytest.fixture
def shm_path(tmp_path: Path) -> Iterator[Path]:
    """A folder on tmpfs where there is one (fsyncs cost nothing there), else ``tmp_path``."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="sparsearch-test-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)

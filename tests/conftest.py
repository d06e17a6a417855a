"""Shared fixtures: where the real data lives, and small slices of it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))

from slices import write_slice  # noqa: E402
from synthetic import write_data_root  # noqa: E402

# ``synthetic`` forces the generated stand-ins even where real data is present (CI's second step).
TEST_DATA_ENV = "SPARSEARCH_TEST_DATA"


def find_data_root() -> Path | None:
    """The real data folder, or ``None`` when the suite must run on synthetic stand-ins.

    ``$SPARSEARCH_DATA``, when set, must hold the data: CI sets it, and a
    wrong path must fail there rather than quietly test the stand-ins.
    Unset, a ``shared/data`` folder beside the checkout is used if present
    (this project's workplace), else the suite runs on synthetic data.
    """
    if os.environ.get(TEST_DATA_ENV) == "synthetic":
        return None
    explicit = os.environ.get("SPARSEARCH_DATA")
    if explicit:
        if not (Path(explicit) / "beir" / "scifact" / "corpus.jsonl").exists():
            raise RuntimeError(f"SPARSEARCH_DATA={explicit} holds no beir/scifact/corpus.jsonl; unset it to run "
                               f"the suite on synthetic stand-ins")
        return Path(explicit)
    beside = REPO.parent / "shared" / "data"
    return beside if (beside / "beir" / "scifact" / "corpus.jsonl").exists() else None


REAL_DATA = find_data_root()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_data: asserts facts of the real data sets; skipped on synthetic stand-ins")


def pytest_report_header(config: pytest.Config) -> str:
    return f"test data: {REAL_DATA or 'synthetic stand-ins (tests/fixtures/synthetic.py)'}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if REAL_DATA is not None:
        return
    skip = pytest.mark.skip(reason="needs the real data sets (set SPARSEARCH_DATA)")
    for item in items:
        if "real_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_is_real() -> bool:
    """Whether ``data_root`` holds the real sets (their sizes and facts may then be asserted)."""
    return REAL_DATA is not None


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real data where present, else generated stand-ins laid out the same way (same names)."""
    if REAL_DATA is not None:
        return REAL_DATA
    return write_data_root(tmp_path_factory.mktemp("synthetic-data"))


@pytest.fixture(scope="session")
def scifact_slice(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_slice(data_root / "beir" / "scifact", tmp_path_factory.mktemp("scifact") / "scifact", 1500)


@pytest.fixture(scope="session")
def scifact_queries(data_root: Path) -> list[str]:
    with open(data_root / "beir" / "scifact" / "queries.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]

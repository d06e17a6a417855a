"""The chaos benchmark's core loops at tiny scale (``benchmarks/chaos.py``; full run: docs/faults.md).

A few injected faults in each kind of phase, a couple of kill -9 trials and
a small recovery measurement: the harness runs, and finds no lost or ghost
write and no failed reopen.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import chaos  # noqa: E402


def test_injected_faults_in_every_kind_of_phase(tmp_path: Path) -> None:
    rows = chaos.run_campaigns(tmp_path / "a", 2, seed=1, errnames=("ENOSPC",),
                               phases=("wal_write", "flush_segment", "merge", "manifest_rename"))
    rows += chaos.run_campaigns(tmp_path / "b", 2, seed=2, errnames=("EIO",),
                                phases=("wal_fsync", "flush_deletes", "manifest_tmp", "manifest_dirsync"))
    assert len(rows) == 8
    for row in rows:
        where = f"{row['phase']} {row['errno']}"
        assert row["injected"] >= 2, where
        assert row["lost"] == 0 and row["ghost"] == 0 and row["reopen_failures"] == 0, (where, row["checks"])
        assert row["wrong_error"] == 0 and row["not_surfaced"] == 0, (where, row["examples"])
        assert row["log_not_cut_back"] == 0 and row["leftover_files_after_failure"] == 0, where
        assert row["retry_failed"] == 0, (where, row["examples"])
        assert row["fresh_build_mismatches"] == 0, where


def test_kill_9_trials(tmp_path: Path) -> None:
    result = chaos.run_kills(tmp_path, 1, seed=3)
    assert result["trials"] == 1
    assert result["lost"] == 0 and result["ghost"] == 0 and result["reopen_failures"] == 0, result["checks"]
    assert result["fresh_build_equal"]


def test_recovery_measurement(tmp_path: Path) -> None:
    result = chaos.run_recovery(tmp_path, 300, seed=0, repeats=1)
    assert result["median"]["documents"] == 300 and result["median"]["hits"] > 0

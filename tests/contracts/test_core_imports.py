"""The core (types, scoring, protocols, errors) imports neither Numba, torch nor the index.

An encoder, a schema or a client that only names a scoring rule or a hit type
must not pay for (or require) the kernels; the package itself imports its
names lazily.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "sparsearch"


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_core_modules_import_no_numba_torch_or_index() -> None:
    mods = loaded_after("import sparsearch, sparsearch.types, sparsearch.scoring, sparsearch.protocols, "
                        "sparsearch.errors")
    assert "numba" not in mods and "torch" not in mods
    assert not [m for m in mods if m.startswith("sparsearch.index")]


def test_encoding_a_few_documents_with_bm25_starts_no_numba() -> None:
    """Small batches take the NumPy paths; Numba is imported only when a kernel is worth compiling."""
    mods = loaded_after("from sparsearch import BM25Encoder, Document; "
                        "BM25Encoder().encode_documents([Document('a', '', 'some text')])")
    assert "numba" not in mods and "torch" not in mods


def test_no_module_is_longer_than_600_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert long == {}

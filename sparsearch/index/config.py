"""Build-time settings of an index and the scoring rule its encoder asks for.

Both are saved in the manifest: a quantised index or a BM25 ``k1`` is a
property of the data on disk, not something a caller may silently change
between build and search (Seismic's split of build and query settings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sparsearch.scoring import LengthNorm, Scoring  # noqa: F401  (re-exported)

Quantization = Literal["none", "uint8"]


@dataclass(frozen=True)
class IndexConfig:
    """Build-time settings.

    ``quantization="uint8"`` stores one byte per posting weight with a per-term
    scale; integral weights up to 255 (BM25 term frequencies) stay exact.
    ``stored_fields`` are kept per document for display and retrieval by id.
    """

    quantization: Quantization = "none"
    stored_fields: tuple[str, ...] = ("title",)
    chunk_size: int = 1024
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.quantization not in ("none", "uint8"):
            raise ValueError(f"unknown quantization {self.quantization!r} (expected 'none' or 'uint8')")
        for name in self.stored_fields:
            if not name.isidentifier():
                raise ValueError(f"stored field names must be identifiers, got {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"quantization": self.quantization, "stored_fields": list(self.stored_fields)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "IndexConfig":
        return cls(quantization=d.get("quantization", "none"), stored_fields=tuple(d.get("stored_fields", ("title",))))

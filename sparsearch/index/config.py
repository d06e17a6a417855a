"""Build-time settings of an index and the scoring rule its encoder asks for.

Both are saved in the manifest: a quantised index or a BM25 ``k1`` is a
property of the data on disk, not something a caller may silently change
between build and search (Seismic's split of build and query settings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sparsearch.index import kernels

Quantization = Literal["none", "uint8"]
LengthNorm = Literal["lucene", "exact"]


@dataclass(frozen=True)
class Scoring:
    """How stored weights become scores.

    ``transform="linear"``: score = Σ q·w (learned sparse).
    ``transform="saturate"``: score = Σ q·w/(w + k1·(1 − b + b·len/avgdl)),
    BM25's tf saturation; ``length_norm="lucene"`` reads ``len`` through
    Lucene's one-byte norm so that scores equal Lucene's.
    """

    transform: Literal["linear", "saturate"] = "linear"
    k1: float = 0.9
    b: float = 0.4
    length_norm: LengthNorm = "lucene"

    def __post_init__(self) -> None:
        if self.transform not in ("linear", "saturate"):
            raise ValueError(f"unknown transform {self.transform!r}")
        if self.length_norm not in ("lucene", "exact"):
            raise ValueError(f"unknown length_norm {self.length_norm!r}")
        if self.k1 < 0 or not (0.0 <= self.b <= 1.0):
            raise ValueError(f"need k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}")

    @property
    def transform_code(self) -> int:
        return kernels.TRANSFORM_LINEAR if self.transform == "linear" else kernels.TRANSFORM_SATURATE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Scoring":
        return cls(**d)


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

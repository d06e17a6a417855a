"""The scoring rule an encoder asks of the index: core, importing no Numba.

Encoders name how their weights become scores; the index applies it.  This
lives in the core (not in ``index/``) so that an encoder, a protocol or a
service schema can name a scoring rule without importing the kernels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

LengthNorm = Literal["lucene", "exact"]

# The kernels' codes for the two transforms (``sparsearch.index.kernels`` reads them from here).
TRANSFORM_LINEAR = 0
TRANSFORM_SATURATE = 1


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
        return TRANSFORM_LINEAR if self.transform == "linear" else TRANSFORM_SATURATE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Scoring":
        return cls(**d)

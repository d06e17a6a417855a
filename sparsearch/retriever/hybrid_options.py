"""Search options of a multi-part collection (mode, PRF, fusion) and its on-disk spec, ``hybrid.json``.

A hybrid collection is a folder of ordinary indexes, one per part, and a
small spec naming them in fusion order with the search defaults; every
search may override those defaults.  The defaults are the hybrid that
docs/dense_hybrid.md chose on training queries only: BM25 + dense, min-max
fusion, α = 0.5, no feedback.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from sparsearch.errors import IndexFormatError, InputError
from sparsearch.index.storage import write_json_atomic

SPEC_NAME = "hybrid.json"
SPEC_KIND = "sparsearch-hybrid"
SPEC_VERSION = 1
MODES = ("sparse", "dense", "hybrid")
PRFS = ("none", "rm3", "rocchio", "both")
FUSIONS = ("minmax", "zscore", "rrf")
SEARCH_MODES = ("exact", "bmp", "approx")
#: The approximate mode's knobs (:class:`~sparsearch.index.approx.ApproxSettings`), given per call.
APPROX_KNOBS = ("query_terms", "list_fraction", "candidates")


@dataclass(frozen=True)
class SearchOptions:
    """How one search runs.

    * ``mode``: which parts answer — ``sparse`` (BM25 or learned sparse),
      ``dense``, or ``hybrid`` (all parts, fused).
    * ``prf``: pseudo-relevance feedback (Li et al. 2022, via
      :class:`~sparsearch.retriever.hybrid.HybridRetriever`) — ``rm3``
      expands BM25 parts' queries, ``rocchio`` moves dense parts' query
      vectors, ``both``; feedback documents are the top ``fb_docs`` of the
      (fused) first ranking.
    * ``fusion``: ``minmax``/``zscore`` score interpolation or ``rrf``;
      ``alpha`` weighs the first part (the sparse one) against the second
      (``1 - alpha``); ``None`` (or more than two parts) averages
      (interpolation) or sums (RRF).
    * ``depth``: candidates each part gives the fusion.
    * ``search_mode``: how sparse parts find their top-k (docs/query_speed_learned.md):
      ``exact`` (the fastest exact method), ``bmp`` (exact, block-max pruning) or
      ``approx`` (approximate, tuned by ``query_terms``, ``list_fraction`` and
      ``candidates``; see :class:`~sparsearch.index.approx.ApproxSettings`, whose
      defaults fill the knobs left out).  Dense parts are always exact.
    """

    mode: str = "hybrid"
    prf: str = "none"
    fusion: str = "minmax"
    alpha: float | None = 0.5
    depth: int = 1000
    fb_docs: int = 3  # HybridSettings' default, chosen on training queries
    search_mode: str = "exact"
    query_terms: int | None = None
    list_fraction: float | None = None
    candidates: int | None = None

    def __post_init__(self) -> None:
        for name, allowed in (("mode", MODES), ("prf", PRFS), ("fusion", FUSIONS), ("search_mode", SEARCH_MODES)):
            if getattr(self, name) not in allowed:
                raise InputError(f"unknown {name} {getattr(self, name)!r} (expected {', '.join(allowed)})")
        if self.alpha is not None and not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha)
                                           and 0.0 <= self.alpha <= 1.0):
            raise InputError(f"alpha must lie in [0, 1], got {self.alpha!r}")
        for name in ("depth", "fb_docs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        given = [name for name in APPROX_KNOBS if getattr(self, name) is not None]
        if given and self.search_mode != "approx":
            raise InputError(f"{', '.join(given)} tune search_mode 'approx' (this search's mode is "
                             f"{self.search_mode!r})")
        self.approx_settings()  # a knob out of range: one line now, not at the first search

    def approx_settings(self) -> Any:
        """The :class:`~sparsearch.index.approx.ApproxSettings` of ``search_mode="approx"`` (None otherwise)."""
        if self.search_mode != "approx":
            return None
        from sparsearch.index.approx import ApproxSettings

        given = {name: getattr(self, name) for name in APPROX_KNOBS if getattr(self, name) is not None}
        try:
            return ApproxSettings(**given)
        except (TypeError, ValueError) as e:
            raise InputError(f"search_mode 'approx': {e}") from None

    def sparse_search(self) -> dict[str, Any]:
        """Keywords of a sparse part's ``search_batch`` for this search mode (empty when exact)."""
        if self.search_mode == "exact":
            return {}
        return {"mode": self.search_mode, "approx": self.approx_settings()}

    def override(self, **given: Any) -> "SearchOptions":
        """These options with every given (not ``None``) value replaced; ``alpha`` stays unless given."""
        changes = {k: v for k, v in given.items() if v is not None}
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise InputError(f"unknown search option(s) {', '.join(unknown)}")
        if changes.get("search_mode", "approx") != "approx":
            # Leaving approx drops the stored approx knobs this call does not give (and so refuses those it does).
            changes.update({name: None for name in APPROX_KNOBS if name not in changes})
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SearchOptions":
        return cls().override(**dict(d))


@dataclass(frozen=True)
class HybridSpec:
    """``hybrid.json``: the parts' folder names in fusion order, and the search defaults."""

    parts: tuple[str, ...]
    defaults: SearchOptions = SearchOptions()

    def write(self, folder: Path) -> None:
        write_json_atomic(folder / SPEC_NAME, {"kind": SPEC_KIND, "version": SPEC_VERSION,
                                               "parts": list(self.parts), "defaults": self.defaults.to_dict()})

    @classmethod
    def read(cls, folder: Path) -> "HybridSpec":
        path = Path(folder) / SPEC_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("kind") != SPEC_KIND:
                raise ValueError(f"not a {SPEC_KIND} spec")
            if data.get("version") != SPEC_VERSION:
                raise ValueError(f"version {data.get('version')!r}; this sparsearch reads {SPEC_VERSION}")
            parts = data.get("parts")
            if not isinstance(parts, list) or not parts or not all(isinstance(p, str) and p for p in parts):
                raise ValueError("parts must be a list of folder names")
            if any("/" in p or p.startswith(".") for p in parts):
                raise ValueError("a part is a folder inside the collection")
            return cls(tuple(parts), SearchOptions.from_dict(data.get("defaults") or {}))
        except (OSError, ValueError, InputError) as e:
            raise IndexFormatError(f"{path}: cannot read the hybrid collection's spec ({e})") from None


def is_hybrid(folder: str | Path) -> bool:
    """Whether ``folder`` is a multi-part collection (it holds ``hybrid.json``)."""
    return (Path(folder) / SPEC_NAME).is_file()

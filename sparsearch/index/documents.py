"""Documents of a snapshot by internal id: the part every reader (sparse or dense) shares.

A snapshot numbers its documents segment after segment (``bases`` holds where
each segment starts); these methods turn those internal ids back into a
segment and local id, external ids and stored fields.  Readers inherit them
so that both formats resolve ids and decode fields the same way.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from sparsearch.index.segment_types import decode_fields


class SegmentDocuments:
    """Needs ``self.segments`` and ``self.bases`` (int64, one more entry than segments) and ``self._id_table``."""

    segments: list[Any]
    bases: np.ndarray
    _id_table: list[str] | None

    def locate(self, internal_id: int) -> tuple[Any, int]:
        i = int(np.searchsorted(self.bases, internal_id, side="right")) - 1
        return self.segments[i], int(internal_id - self.bases[i])

    def resolve_ids(self, internal_ids: np.ndarray) -> list[str]:
        """External ids: straight from the segments for a few, via a table decoded once for many."""
        if self._id_table is None and len(internal_ids) <= 64:
            return self.external_ids(internal_ids)
        if self._id_table is None:
            self._id_table = [doc_id for seg in self.segments for doc_id in seg.doc_ids.tolist()]
        return list(map(self._id_table.__getitem__, np.asarray(internal_ids).tolist()))

    def external_ids(self, internal_ids: np.ndarray) -> list[str]:
        out = []
        for d in np.asarray(internal_ids).tolist():
            seg, local = self.locate(d)
            out.append(seg.external_id(local))
        return out

    def stored_fields(self, internal_id: int, names: Sequence[str] | None = None) -> dict[str, Any]:
        """Stored fields of a document; ``names`` limits which are decoded."""
        seg, local = self.locate(internal_id)
        return decode_fields(seg.fields, local, names)

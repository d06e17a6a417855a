"""Writing one generation of an index directory: new files, then one atomic manifest swap.

Kept apart from the writer so that the on-disk protocol (which files a
generation has, in which order they are synced, what is swept after a
failure) reads in one place, with no buffering or threading around it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from sparsearch.index.config import IndexConfig
from sparsearch.index.directory import collect_garbage, commit, generation_names, manifest_in_force
from sparsearch.index.formats import SPARSE, SegmentFormat
from sparsearch.index.manifest import Manifest, SegmentInfo
from sparsearch.index.storage import disk_errors, fsync_files, save_array, write_bytes
from sparsearch.scoring import Scoring

log = logging.getLogger(__name__)

FORMAT_INFO_VERSION = "0.1.0"


class TermSpace(Protocol):
    """What the index records of the encoder that made its vectors, without knowing what it is.

    The index stores term ids; the encoder that gives them meaning (a
    vocabulary, a model) is opaque to it: a manifest entry, some files to
    keep beside the segments, and how many term ids exist.
    """

    @property
    def n_terms(self) -> int: ...

    def manifest_entry(self) -> dict[str, Any]: ...

    def state_files(self) -> dict[str, bytes]: ...


@dataclass(frozen=True)
class Part:
    """One segment of a generation: ``info`` when it is already on disk (only a changed mask is rewritten)."""

    segment: Any
    info: SegmentInfo | None = None
    mask_changed: bool = False


def empty_manifest() -> Manifest:
    return Manifest(0, {}, {}, {}, [])


def commit_generation(directory: Path, generation: int, in_force: Manifest | None, parts: Sequence[Part],
                      terms: TermSpace, scoring: Scoring, config: IndexConfig, fmt: SegmentFormat = SPARSE) -> Any:
    """:func:`write_generation`, leaving the directory clean when the disk fails midway.

    A failed write (full disk, I/O error) leaves files of the new generation
    behind; they are swept here, relative to whatever manifest is really in
    force on disk, so the next attempt starts clean instead of tripping over
    them.  The error reaching the caller names the cause.
    """
    try:
        with disk_errors(f"committing {directory}"):
            # Leftovers of a crashed or failed write are unreferenced: sweep them first.
            collect_garbage(directory, in_force or empty_manifest())
            return write_generation(directory, generation, parts, terms, scoring, config, fmt)
    except BaseException:
        try:
            collect_garbage(directory, manifest_in_force(directory) or empty_manifest())
        except Exception:  # the sweep is best effort: the next commit sweeps again
            log.warning("could not sweep %s after a failed commit", directory, exc_info=True)
        raise


def write_generation(directory: Path, generation: int, parts: Sequence[Part], terms: TermSpace,
                     scoring: Scoring, config: IndexConfig, fmt: SegmentFormat = SPARSE) -> Any:
    """Write one generation and commit it; returns the snapshot it describes.

    A part with an ``info`` is already on disk and only a changed deletion
    mask is written anew; one without is written whole.
    """
    name = generation_names(generation)
    files: dict[str, int] = {}
    infos: list[SegmentInfo] = []
    n_new = 0
    for i, part in enumerate(parts):
        seg, mask_changed = part.segment, part.mask_changed
        if part.info is None:
            info = fmt.write(seg, directory, name("seg", n_new))
            n_new += 1
            mask_changed = seg.deleted is not None and bool(np.any(seg.deleted))
        else:
            info = dataclasses.replace(part.info)
        if mask_changed and seg.deleted is not None:
            info.deletes = f"del-{generation:06d}-{i:03d}.npy"
            save_array(directory / info.deletes, seg.deleted)
        if info.deletes:
            files[info.deletes] = (directory / info.deletes).stat().st_size
        infos.append(info)
    fsync_files([directory / f for f in files])
    encoder_files: dict[str, str] = {}
    for kind, data in terms.state_files().items():
        file_name = name(kind)
        files[file_name] = write_bytes(directory / file_name, data)
        encoder_files[kind] = file_name
    snapshot = fmt.snapshot([p.segment for p in parts], scoring, config)
    manifest = Manifest(
        generation=generation,
        encoder={**terms.manifest_entry(), "files": encoder_files},
        scoring=scoring.to_dict(),
        config=fmt.manifest_config(config),
        segments=infos,
        files=files,
        info={"created_unix": time.time(), "sparsearch_version": FORMAT_INFO_VERSION, "n_docs": snapshot.n_docs},
    )
    commit(directory, manifest)
    snapshot.manifest = manifest
    return snapshot

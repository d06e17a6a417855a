"""What index integrity costs: checksums, structural checks and opening, on one index directory.

Prints JSON with, for warm page cache (each step run ``--repeat`` times, best kept):

* ``manifest_s``: reading and checking the manifest;
* ``crc32_s`` / ``crc32_gb_per_s``: CRC-32 of every file the manifest names;
* ``structure_s`` / ``structure_gb_per_s``: the structural checks of ``open_segment``
  (dtypes, lengths, offsets, doc ids < n_docs, finite weights) on the opened arrays;
* ``open_structure_only_s``: ``InvertedIndex.open`` with ``verify_checksums="lazy"``;
* ``open_auto_s`` and ``open_full_s``: ``Index.open`` as users get it, and with every checksum;
* ``check_s``: ``sparsearch check`` (everything, ids and stored fields decoded);
* ``id_table_s``: decoding every external id (the table ``resolve_ids`` builds for big result sets);
* ``fds_per_open``: file descriptors an opened index keeps.

Usage::

    python benchmarks/integrity_cost.py INDEX_DIR [--repeat 3]

An index of 10^6 synthetic documents: ``python benchmarks/scale_corpus.py synthetic --n 1000000
--out /tmp/syn1m`` then ``sparsearch index /tmp/syn1m/corpus.jsonl --out /tmp/idx1m``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from sparsearch import Index
from sparsearch.index.checksum import crc32_of_file
from sparsearch.index.inverted import InvertedIndex
from sparsearch.index.manifest import Manifest
from sparsearch.index.verify import check_index, structure_problems


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def all_files(directory: Path, manifest: Manifest) -> list[Path]:
    files = [directory / n for n in manifest.files]
    for info in manifest.segments:
        files += [directory / info.name / n for n in info.files]
    return files


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    directory, repeat = args.index, args.repeat
    manifest = Manifest.read(directory)
    files = all_files(directory, manifest)
    total = sum(f.stat().st_size for f in files)
    postings_bytes = 0
    out: dict[str, Any] = {"index": str(directory), "format_version": manifest.version,
                           "n_docs": sum(s.n_docs for s in manifest.segments),
                           "n_postings": sum(s.n_postings for s in manifest.segments), "bytes": total}
    Index.open(directory)  # compile the kernels and warm the page cache
    out["manifest_s"], _ = best(lambda: Manifest.read(directory), repeat)
    out["crc32_s"], _ = best(lambda: [crc32_of_file(f) for f in files], repeat)
    out["crc32_gb_per_s"] = total / out["crc32_s"] / 1e9
    inv = InvertedIndex.open(directory, manifest, verify_checksums="lazy")
    for seg in inv.segments:
        postings_bytes += seg.postings_docs.nbytes + seg.postings_weights.nbytes + seg.postings_offsets.nbytes
    out["structure_s"], problems = best(
        lambda: [structure_problems(s, i) for s, i in zip(inv.segments, manifest.segments)], repeat)
    assert not any(problems), problems
    out["structure_gb_per_s"] = postings_bytes / out["structure_s"] / 1e9
    out["open_structure_only_s"], _ = best(lambda: InvertedIndex.open(directory, manifest, verify_checksums="lazy"),
                                           repeat)
    out["open_auto_s"], _ = best(lambda: Index.open(directory), repeat)
    out["open_full_inverted_s"], _ = best(lambda: InvertedIndex.open(directory, manifest, verify_checksums="full"),
                                          repeat)
    out["check_s"], report = best(lambda: check_index(directory), 1)
    out["check_ok"] = report.ok
    out["id_table_s"], _ = best(lambda: [s.doc_ids.tolist() for s in inv.segments], repeat)
    gc.collect()
    before = open_fds()
    kept = [Index.open(directory) for _ in range(5)]
    out["fds_per_open"] = (open_fds() - before) / len(kept)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

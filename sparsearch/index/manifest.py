"""The manifest: the single commit point of an index directory.

An index directory holds immutable files (segments, vocabulary) and one
``manifest.json`` that names the ones in force.  Writing a new manifest with an
atomic rename is the commit: until then, the old manifest (and everything it
names) stays valid, so a crash at any point leaves the last good index.

The manifest carries a format version (a newer one is refused with a clear
message), the size and (from format 2) the CRC-32 of every file it names (a
truncated or bit-flipped file is caught instead of producing garbage), and a
checksum of its own content.

Format versions:

* 1: sizes only; external ids stored fixed-width (``doc_ids.npy``).
* 2: adds ``crc32`` (file name -> CRC-32 of the whole file) to every segment
  (its ``.npy`` files and its deletion mask) and to the manifest (the other
  files it names); new segments store ids variable-length
  (``doc_ids.offsets.npy`` + ``doc_ids.data.npy``).  Version 1 indexes still
  open (their structure is checked, they have no checksums to check); the
  first commit to one writes version 2 and sums the files it carries over.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsearch.errors import IndexFormatError, IndexNotFoundError
from sparsearch.index.checksum import crc32_of_file, read_error
from sparsearch.index.storage import write_json_atomic

FORMAT_NAME = "sparsearch-index"
FORMAT_VERSION = 2
#: Versions this sparsearch opens (it always writes :data:`FORMAT_VERSION`).
READABLE_VERSIONS = (1, 2)
MANIFEST_NAME = "manifest.json"


@dataclass
class SegmentInfo:
    name: str
    n_docs: int
    n_postings: int
    n_terms: int
    files: dict[str, int]
    deletes: str | None = None
    #: CRC-32 by file name: the segment's files and its deletion mask (empty in format 1).
    #: Kept here rather than in the manifest's own table so that a mask carried over to the
    #: next generation (``dataclasses.replace``) keeps the checksum taken when it was written.
    crc32: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_docs": self.n_docs,
            "n_postings": self.n_postings,
            "n_terms": self.n_terms,
            "files": self.files,
            "deletes": self.deletes,
            "crc32": self.crc32,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SegmentInfo":
        return cls(
            name=str(d["name"]),
            n_docs=int(d["n_docs"]),
            n_postings=int(d["n_postings"]),
            n_terms=int(d["n_terms"]),
            files={str(k): int(v) for k, v in d["files"].items()},
            deletes=d.get("deletes"),
            crc32={str(k): int(v) for k, v in d.get("crc32", {}).items()},
        )

    def checksummed_files(self) -> list[str]:
        """Names that carry a checksum: every file, and the deletion mask (relative to the index directory)."""
        return sorted(self.files) + ([self.deletes] if self.deletes else [])


@dataclass
class Manifest:
    generation: int
    encoder: dict[str, Any]
    scoring: dict[str, Any]
    config: dict[str, Any]
    segments: list[SegmentInfo]
    files: dict[str, int] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    #: CRC-32 of the files in :attr:`files` that no segment accounts for (encoder state).
    crc32: dict[str, int] = field(default_factory=dict)
    #: The format version read from disk (a manifest made in memory is written as the current one).
    version: int = FORMAT_VERSION

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "generation": self.generation,
            "encoder": self.encoder,
            "scoring": self.scoring,
            "config": self.config,
            "segments": [s.to_dict() for s in self.segments],
            "files": self.files,
            "crc32": self.crc32,
            "info": self.info,
        }

    def referenced_names(self) -> set[str]:
        names = set(self.files)
        names.update(s.name for s in self.segments)
        return names

    def fill_checksums(self, directory: Path) -> None:
        """Give every named file a CRC-32: kept where known, else read back from disk now.

        Writers compute checksums as they write segments; files whose writer
        does not (deletion masks, encoder state) are summed here, just before
        the commit that names them and right after they were written (so
        from the page cache).  Checksums of files the manifest no longer
        names are dropped.
        """
        for info in self.segments:
            known = info.crc32
            crc = {}
            for name in info.checksummed_files():
                where = directory / (name if name == info.deletes else f"{info.name}/{name}")
                crc[name] = known[name] if name in known else crc32_of_file(where)
            info.crc32 = crc  # a new dict: infos copied from the previous manifest share the old one
        masks = {info.deletes for info in self.segments if info.deletes}
        self.crc32 = {name: self.crc32[name] if name in self.crc32 else crc32_of_file(directory / name)
                      for name in sorted(self.files) if name not in masks}

    def write(self, directory: Path) -> None:
        self.fill_checksums(directory)
        self.version = FORMAT_VERSION
        body = self.body()
        body["checksum"] = _checksum(body)
        write_json_atomic(directory / MANIFEST_NAME, body)

    @classmethod
    def read(cls, directory: Path) -> "Manifest":
        path = directory / MANIFEST_NAME
        if not directory.exists():
            raise IndexNotFoundError(f"{directory}: no such index directory")
        if not path.exists():
            raise IndexNotFoundError(f"{directory}: not a sparsearch index (no {MANIFEST_NAME})")
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise read_error(e, path, "reading the manifest") from None
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise IndexFormatError(f"{path}: corrupt manifest ({e})") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT_NAME:
            raise IndexFormatError(f"{path}: not a sparsearch manifest")
        version = body.get("format_version")
        if not isinstance(version, int):
            raise IndexFormatError(f"{path}: corrupt manifest (no format_version)")
        if version > FORMAT_VERSION:
            raise IndexFormatError(
                f"{path}: index format version {version} is newer than this sparsearch supports "
                f"({FORMAT_VERSION}); upgrade sparsearch"
            )
        if version not in READABLE_VERSIONS:
            raise IndexFormatError(f"{path}: index format version {version} is not one this sparsearch reads "
                                   f"({', '.join(map(str, READABLE_VERSIONS))})")
        stored = body.pop("checksum", None)
        if stored != _checksum(body):
            raise IndexFormatError(f"{path}: corrupt manifest (checksum mismatch)")
        try:
            manifest = cls(
                generation=int(body["generation"]),
                encoder=dict(body["encoder"]),
                scoring=dict(body["scoring"]),
                config=dict(body["config"]),
                segments=[SegmentInfo.from_dict(s) for s in body["segments"]],
                files={str(k): int(v) for k, v in body.get("files", {}).items()},
                info=dict(body.get("info", {})),
                crc32={str(k): int(v) for k, v in body.get("crc32", {}).items()},
                version=version,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise IndexFormatError(f"{path}: corrupt manifest ({type(e).__name__}: {e})") from None
        if version >= 2:
            unsummed = manifest.files_without_checksum()
            if unsummed:
                raise IndexFormatError(f"{path}: corrupt manifest (no checksum for {unsummed[0]})")
        return manifest

    def files_without_checksum(self) -> list[str]:
        """Named files that lack a CRC-32 (all of them in format 1)."""
        out = []
        masks = {info.deletes for info in self.segments if info.deletes}
        for info in self.segments:
            out += [f"{info.name}/{n}" if n != info.deletes else n
                    for n in info.checksummed_files() if n not in info.crc32]
        out += [n for n in sorted(self.files) if n not in masks and n not in self.crc32]
        return out


def _checksum(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()

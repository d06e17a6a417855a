"""The manifest: the single commit point of an index directory.

An index directory holds immutable files (segments, vocabulary) and one
``manifest.json`` that names the ones in force.  Writing a new manifest with an
atomic rename is the commit: until then, the old manifest (and everything it
names) stays valid, so a crash at any point leaves the last good index.

The manifest carries a format version (a newer one is refused with a clear
message), the size of every file it names (a truncated file is caught on open
instead of producing garbage), and a checksum of its own content.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsearch.errors import IndexFormatError, IndexNotFoundError
from sparsearch.index.storage import write_json_atomic

FORMAT_NAME = "sparsearch-index"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


@dataclass
class SegmentInfo:
    name: str
    n_docs: int
    n_postings: int
    n_terms: int
    files: dict[str, int]
    deletes: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_docs": self.n_docs,
            "n_postings": self.n_postings,
            "n_terms": self.n_terms,
            "files": self.files,
            "deletes": self.deletes,
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
        )


@dataclass
class Manifest:
    generation: int
    encoder: dict[str, Any]
    scoring: dict[str, Any]
    config: dict[str, Any]
    segments: list[SegmentInfo]
    files: dict[str, int] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

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
            "info": self.info,
        }

    def referenced_names(self) -> set[str]:
        names = set(self.files)
        names.update(s.name for s in self.segments)
        return names

    def write(self, directory: Path) -> None:
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
            body = json.loads(path.read_text(encoding="utf-8"))
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
        stored = body.pop("checksum", None)
        if stored != _checksum(body):
            raise IndexFormatError(f"{path}: corrupt manifest (checksum mismatch)")
        try:
            return cls(
                generation=int(body["generation"]),
                encoder=dict(body["encoder"]),
                scoring=dict(body["scoring"]),
                config=dict(body["config"]),
                segments=[SegmentInfo.from_dict(s) for s in body["segments"]],
                files={str(k): int(v) for k, v in body.get("files", {}).items()},
                info=dict(body.get("info", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise IndexFormatError(f"{path}: corrupt manifest ({type(e).__name__}: {e})") from None


def _checksum(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()

"""Service settings: one dataclass, read from options and the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sparsearch.live import LiveSettings


@dataclass(frozen=True)
class ServiceSettings:
    """Limits are part of the contract: each is named in the error a client gets for exceeding it."""

    data_dir: Path
    api_key: str | None = None
    require_key_for_reads: bool = False
    max_body_bytes: int = 16 * 2**20
    max_batch_documents: int = 1000
    max_query_chars: int = 4096
    max_k: int = 1000
    live: LiveSettings = field(default_factory=LiveSettings)

    @classmethod
    def from_env(cls, data_dir: Path, **overrides: object) -> "ServiceSettings":
        """``SPARSEARCH_API_KEY``, or ``SPARSEARCH_API_KEY_FILE`` naming a file holding it."""
        key = os.environ.get("SPARSEARCH_API_KEY")
        key_file = os.environ.get("SPARSEARCH_API_KEY_FILE")
        if not key and key_file:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        return cls(data_dir=Path(data_dir), api_key=key or None, **overrides)  # type: ignore[arg-type]

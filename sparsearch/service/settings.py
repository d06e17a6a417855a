"""Service settings: one dataclass, read from options and the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sparsearch.errors import SparsearchError
from sparsearch.index.writer import LiveSettings


class ConfigurationError(SparsearchError, ValueError):
    """Settings that would run an unsafe or self-contradictory server (refused at start-up)."""


@dataclass(frozen=True)
class ServiceSettings:
    """Limits are part of the contract: each is named in the error a client gets for exceeding it.

    ``open_writes`` must be set explicitly to run without an API key: an
    empty ``SPARSEARCH_API_KEY`` (a typo, an unset secret) must not silently
    leave every write open to anyone who can connect.
    """

    data_dir: Path
    api_key: str | None = None
    require_key_for_reads: bool = False
    open_writes: bool = False
    max_body_bytes: int = 16 * 2**20
    max_batch_documents: int = 1000
    max_query_chars: int = 4096
    max_k: int = 1000
    # A request whose body stops arriving (a Content-Length longer than what is sent) gets 408 after
    # this many seconds without a byte, and its connection is closed, instead of holding it forever.
    body_timeout_seconds: float = 30.0
    # Collections are opened on first use; idle ones beyond this count, or while the process holds
    # more than ``fd_budget`` of its file-descriptor limit, are closed (least recently used first).
    max_open_collections: int = 64
    fd_budget: float = 0.5
    # Threads running endpoints (the rest of the process needs about ten more): bounds the service's
    # threads whatever the number of connections; 32 keeps 2 cores and the disk busy.
    worker_threads: int = 32
    # A collection that failed to open (corrupt file, I/O error) is tried again after this long.
    retry_unavailable_seconds: float = 30.0
    # Where learned-sparse models are found, by name (each sub-folder a model); None: the models shipped
    # with sparsearch. A request names a model, never a path.
    models_dir: Path | None = None
    live: LiveSettings = field(default_factory=LiveSettings)

    def check(self) -> None:
        """Refuse settings that would silently run an open or contradictory server."""
        if self.api_key is None and not self.open_writes:
            raise ConfigurationError("no API key: set SPARSEARCH_API_KEY (or SPARSEARCH_API_KEY_FILE), "
                                     "or pass --open-writes to accept writes from anyone who can connect")
        if self.api_key is not None and self.open_writes:
            raise ConfigurationError("--open-writes contradicts the API key that is set "
                                     "(SPARSEARCH_API_KEY or SPARSEARCH_API_KEY_FILE): use one or the other")
        if self.api_key is None and self.require_key_for_reads:
            raise ConfigurationError("--require-key-for-reads needs an API key (SPARSEARCH_API_KEY)")
        if self.worker_threads < 1:
            raise ConfigurationError(f"worker_threads={self.worker_threads} must be at least 1")
        if self.max_open_collections < 1:
            raise ConfigurationError(f"max_open_collections={self.max_open_collections} must be at least 1")
        if self.models_dir is not None and not Path(self.models_dir).is_dir():
            raise ConfigurationError(f"--models-dir {self.models_dir}: no such directory")

    @classmethod
    def from_env(cls, data_dir: Path, **overrides: object) -> "ServiceSettings":
        """``SPARSEARCH_API_KEY``, or ``SPARSEARCH_API_KEY_FILE`` naming a file holding it.

        A key that is empty or only whitespace counts as no key.
        """
        key = (os.environ.get("SPARSEARCH_API_KEY") or "").strip()
        key_file = os.environ.get("SPARSEARCH_API_KEY_FILE")
        if not key and key_file:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        return cls(data_dir=Path(data_dir), api_key=key or None, **overrides)  # type: ignore[arg-type]

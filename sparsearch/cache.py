"""Where sparsearch keeps what it fetches (datasets, models): one cache root for both."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SPARSEARCH_CACHE"


def cache_root(explicit: str | Path | None = None) -> Path:
    """``explicit``, else ``$SPARSEARCH_CACHE``, else ``$XDG_CACHE_HOME/sparsearch``, else ``~/.cache/sparsearch``.

    Read from the environment at each call (not at import), so a test or a
    long-lived process sees a changed variable.
    """
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "sparsearch"

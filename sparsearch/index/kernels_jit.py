"""Deferred Numba compilation shared by every index-kernel module (``kernels_*``).

Importing a kernel module must not import Numba (~0.4 s, plus loading its
on-disk cache): a process that only ever takes the NumPy paths of small
inputs (:mod:`sparsearch.index.small`) never needs it.  So the kernel
modules decorate with :func:`njit` from here, which only records each
kernel as a :class:`_Deferred`; the first use of any kernel (a call, or an
attribute such as ``py_func``) runs :func:`materialize`, which imports Numba
and turns every recorded kernel of every module in :data:`KERNEL_MODULES`
into its dispatcher at once.

All at once, and across modules, because a kernel's callees (and ``prange``)
are looked up in its own module's globals when it compiles: a kernel of
:mod:`~sparsearch.index.kernels_prune` calls ``_sift_down`` of
:mod:`~sparsearch.index.kernels_topk` through the name it imported, so that
name must already be a dispatcher, in that module, before anything compiles.

Numba's on-disk cache (``cache=True``) is invalidated only when the file of
the cached function changes, not when a callee in another file does: after
editing a kernel that another ``kernels_*`` file calls, clear that file's
cache (``__pycache__/*.nbi``, ``*.nbc``) or the caller keeps the old code.
"""

from __future__ import annotations

import importlib
import threading
from functools import update_wrapper
from typing import Any, Callable

#: Every module whose globals hold deferred kernels (or ``prange``), the public facade last.
KERNEL_MODULES = (
    "sparsearch.index.kernels_build",
    "sparsearch.index.kernels_topk",
    "sparsearch.index.kernels_prune",
    "sparsearch.index.kernels_blockmax",
    "sparsearch.index.kernels_scan",
    "sparsearch.index.kernels_forward",
    "sparsearch.index.kernels_approx",
    "sparsearch.index.kernels_bmp",
    "sparsearch.index.kernels",
)

_materialized = False
_materialize_lock = threading.RLock()


class _Deferred:
    """A kernel recorded by :func:`njit`; the first use turns every one of them into a Numba dispatcher."""

    def __init__(self, func: Callable[..., Any], options: dict[str, Any]) -> None:
        self._func = func
        self._options = options
        self._dispatcher: Any = None
        update_wrapper(self, func)

    def _get(self) -> Any:
        if self._dispatcher is None:
            materialize()
        return self._dispatcher

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._get()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_func", "_options", "_dispatcher"):
            raise AttributeError(name)
        return getattr(self._get(), name)


def njit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(**options)``, deferred: nothing is imported or compiled until a kernel is used."""
    return lambda func: _Deferred(func, options)


def materialize() -> None:
    """Import Numba and replace every deferred kernel of :data:`KERNEL_MODULES` by its dispatcher (once, thread-safe).

    A kernel imported into several modules (its own, a caller's, the facade)
    is one :class:`_Deferred` and gets one dispatcher, bound under every
    name.  Each ``_Deferred`` learns its dispatcher only after every module's
    globals are rebound, so a concurrent caller that skips the lock never
    compiles against a half-rebound namespace.
    """
    global _materialized
    with _materialize_lock:
        if _materialized:
            return
        import numba

        modules = [importlib.import_module(name) for name in KERNEL_MODULES]
        dispatchers: dict[int, tuple[_Deferred, Any]] = {}
        for module in modules:
            namespace = vars(module)
            if "prange" in namespace:
                namespace["prange"] = numba.prange
            for name, value in list(namespace.items()):
                if isinstance(value, _Deferred):
                    if id(value) not in dispatchers:
                        dispatchers[id(value)] = (value, numba.njit(**value._options)(value._func))
                    namespace[name] = dispatchers[id(value)][1]
        for deferred, dispatcher in dispatchers.values():
            deferred._dispatcher = dispatcher
        _materialized = True


def numba_loaded() -> bool:
    """Whether any kernel has been used in this process (and Numba imported)."""
    return _materialized


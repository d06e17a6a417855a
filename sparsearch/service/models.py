"""The models a server may load, by name, and one copy of each in memory.

A request names a model (``"model": "inference-free-general"``; left out,
an ``inference-free`` collection gets that one, the default), never a
path: the name must match :data:`MODEL_NAME` in full (no ``/``, ``\\``,
leading ``.`` or ``..``) and be a model of the server's catalogue, which is
either

* ``sparsearch serve --models-dir DIR``: every sub-folder of ``DIR`` holding a
  model (a ``config.json`` or a sentence-transformers ``modules.json``), named
  by the folder; or
* by default, the models shipped with sparsearch that are installed here
  (:data:`~sparsearch.retriever.resolve.SHIPPED_MODELS`, found where
  :func:`~sparsearch.retriever.resolve.find_shipped_model` looks; a
  deprecated name such as ``inference-free-minilm`` still finds its model, so
  collections created under it reopen), and the dense models of installed
  model packages (:data:`~sparsearch.retriever.resolve.PACKAGED_MODELS`:
  ``all-minilm-l6-v2``).

Dense bi-encoders (a hybrid collection's ``dense_model``) come from the same
catalogue (:meth:`ModelCatalog.dense_info`), versioned the same way.

A model's **version** is a SHA-256 over the files that define it (weights,
configs, tokenizer, ``idf.json``; not READMEs), so a copy of the same model in
another folder has the same version, and replacing its files changes it.

:func:`shared_model` is the process-wide cache: one
:class:`~sparsearch.retriever.splade.SpladeModel` per (resolved folder,
version, device, exact screening), whatever the document settings
(``doc_threshold``, ``max_length``, ...) of the collections using it, since
those are arguments of each ``encode`` call.  Entries are held weakly: a model
stays loaded while some open collection holds it (and the :data:`KEEP_RECENT`
most recently used stay loaded regardless, so a collection just created, or
closed when idle and reopened, does not load its model again), and is freed
after that.  Loading happens under a per-model lock, so two collections opening
on one model load it once, and loading one model does not hold up another.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparsearch.errors import SparsearchError
from sparsearch.retriever.resolve import DEFAULT_INFERENCE_FREE_MODEL

#: What a model name may look like (checked in full before any path is built from it).
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Files that are documentation, not part of what a model computes.
_NOT_MODEL = re.compile(r"(?i).*\.(md|rst)$|^\.")
_HASH_CHUNK = 4 * 2**20


class UnknownModel(SparsearchError, ValueError):
    """A model name that is not in the server's catalogue (the service answers 422 naming ``model``)."""


class ModelUnusable(SparsearchError, ValueError):
    """A model that cannot serve a collection as asked (wrong kind, settings beyond it): 422 naming ``field``."""

    def __init__(self, message: str, field: tuple[str, ...] = ("model",)) -> None:
        super().__init__(message)
        self.field = field


class ModelChanged(SparsearchError, RuntimeError):
    """A collection's model is no longer the one its documents were encoded with (the collection is unavailable)."""


def check_model_name(name: str) -> str:
    """``name`` if it can only be a model's name: no path separators, no leading dot, no ``..``."""
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"{name!r} is not a model name: give the name of one of the server's models "
                         f"(1-128 of A-Z, a-z, 0-9, '.', '_', '-'; no '/', no '..'), never a path")
    return name


@dataclass(frozen=True)
class ModelInfo:
    """A model of the catalogue: where it is, what it is, and its version."""

    name: str
    path: Path
    version: str
    kind: str  # "splade" (an MLM), "inference-free" (an MLM with query weights) or "dense" (a bi-encoder)
    max_positions: int | None  # the longest input the MLM takes (max_position_embeddings), if known

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "kind": self.kind}


# ---------------------------------------------------------------- versions


_versions: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}
_versions_lock = threading.Lock()


def _model_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not any(_NOT_MODEL.fullmatch(part) for part in p.relative_to(folder).parts))


def model_version(folder: Path) -> str:
    """``sha256:<16 hex>`` over the model's files (relative paths and contents); cached by size and mtime."""
    folder = Path(folder)
    files = _model_files(folder)
    stamp = tuple((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    key = (str(folder.resolve()), stamp)
    with _versions_lock:
        if key in _versions:
            return _versions[key]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(folder).as_posix()).encode("utf-8") + b"\0")
        digest.update(path.stat().st_size.to_bytes(8, "little"))
        with path.open("rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                digest.update(chunk)
    version = "sha256:" + digest.hexdigest()[:16]
    with _versions_lock:
        _versions[key] = version
    return version


# ---------------------------------------------------------------- the process-wide model cache


#: Models kept loaded while no open collection uses them (the most recently used).
KEEP_RECENT = 2

_models: "weakref.WeakValueDictionary[tuple[Any, ...], Any]" = weakref.WeakValueDictionary()
_recent: "OrderedDict[tuple[Any, ...], Any]" = OrderedDict()
_loading: dict[tuple[Any, ...], threading.Lock] = {}
_models_lock = threading.Lock()


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def shared_model(folder: Path, version: str, device: str = "auto", exact_screening: bool = True) -> Any:
    """The one loaded :class:`SpladeModel` of ``folder`` for these weight-affecting settings (loaded if needed)."""
    key = (str(Path(folder).resolve()), version, _device(device), bool(exact_screening))
    with _models_lock:
        model = _models.get(key)
        if model is not None:
            _keep(key, model)
            return model
        loading = _loading.setdefault(key, threading.Lock())
    with loading:  # one load per model; other models load meanwhile
        with _models_lock:
            model = _models.get(key)
        if model is None:
            from sparsearch.retriever.splade import SpladeModel

            model = SpladeModel(key[0], key[2], key[3])
            with _models_lock:
                _models[key] = model
        with _models_lock:
            _loading.pop(key, None)
            _keep(key, model)
        return model


def _keep(key: tuple[Any, ...], model: Any) -> None:
    """Hold ``model`` strongly as one of the most recently used (``_models_lock`` held)."""
    _recent[key] = model
    _recent.move_to_end(key)
    while len(_recent) > KEEP_RECENT:
        _recent.popitem(last=False)


def loaded_models() -> int:
    """How many models this process holds now (tests, metrics)."""
    with _models_lock:
        return len(_models)


# ---------------------------------------------------------------- the catalogue


class ModelCatalog:
    """The models one server may load, by name: ``models_dir``'s sub-folders, or the shipped models."""

    def __init__(self, models_dir: Path | None = None) -> None:
        self.models_dir = None if models_dir is None else Path(models_dir)
        self._info: dict[str, ModelInfo] = {}
        self._lock = threading.Lock()

    def describe_source(self) -> str:
        return str(self.models_dir) if self.models_dir is not None else "the models shipped with sparsearch"

    def names(self) -> list[str]:
        """The models available now."""
        if self.models_dir is None:
            from sparsearch.retriever import resolve

            found = resolve.find_shipped_model, resolve.find_packaged_model
            return ([n for n in resolve.SHIPPED_MODELS if found[0](n) is not None]
                    + [n for n in resolve.PACKAGED_MODELS if MODEL_NAME.fullmatch(n) and found[1](n) is not None])
        try:
            children = sorted(self.models_dir.iterdir())
        except OSError:
            return []
        return [p.name for p in children if MODEL_NAME.fullmatch(p.name) and ".." not in p.name and _is_model(p)]

    def find(self, name: str) -> Path:
        """The folder of the model named ``name``; :class:`UnknownModel` if there is none."""
        try:
            check_model_name(name)
        except ValueError as e:
            raise UnknownModel(str(e)) from None
        folder: Path | None
        if self.models_dir is None:
            from sparsearch.retriever.resolve import find_packaged_model, find_shipped_model, shipped_name

            # (the name stays as given: a collection created under a deprecated alias keeps it in its spec)
            folder = find_shipped_model(name) if shipped_name(name) is not None else find_packaged_model(name)
        else:
            candidate = self.models_dir / name
            folder = candidate if _is_model(candidate) else None
        if folder is None:
            known = ", ".join(self.names()) or "none"
            default = (" (the default model of encoder 'inference-free' when a request gives none: name one of "
                       "the server's models, or install it)" if name == DEFAULT_INFERENCE_FREE_MODEL else "")
            raise UnknownModel(f"unknown model {name!r}{default}: the server's models ({self.describe_source()}) "
                               f"are: {known}")
        return folder

    def info(self, name: str) -> ModelInfo:
        """The model's folder, kind and version (hashed once per file change)."""
        from sparsearch.retriever.resolve import ModelFormatError
        from sparsearch.retriever.st_format import describe_model

        folder = self.find(name)
        version = model_version(folder)
        with self._lock:
            known = self._info.get(name)
            if known is not None and known.path == folder and known.version == version:
                return known
        try:
            layout = describe_model(folder)
            config = json.loads((layout.document_dir / "config.json").read_text(encoding="utf-8"))
        except (ModelFormatError, OSError, ValueError) as e:
            raise ModelUnusable(f"model {name!r} cannot be loaded: {e}") from None
        positions = config.get("max_position_embeddings") if isinstance(config, dict) else None
        info = ModelInfo(name, folder, version, layout.kind, positions if isinstance(positions, int) else None)
        with self._lock:
            self._info[name] = info
        return info

    def dense_info(self, name: str) -> ModelInfo:
        """A dense bi-encoder of the catalogue; refused (naming ``dense_model``) if unknown or not dense."""
        from sparsearch.retriever.dense import describe_dense_model
        from sparsearch.retriever.resolve import ModelFormatError

        try:
            folder = self.find(name)
            layout = describe_dense_model(folder)
        except UnknownModel as e:
            raise ModelUnusable(str(e), ("dense_model",)) from None
        except (ModelFormatError, OSError, ValueError) as e:
            raise ModelUnusable(f"model {name!r} is not a dense model sparsearch can load: {e}", ("dense_model",)) \
                from None
        return ModelInfo(name, folder, model_version(folder), "dense", layout.max_positions)

    def check(self, encoder: str, name: str, params: dict[str, Any]) -> ModelInfo:
        """The model for a new collection, refusing settings it cannot serve (:class:`ModelUnusable`)."""
        info = self.info(name)
        if encoder == "inference-free" and info.kind != "inference-free":
            raise ModelUnusable(f"model {name!r} has no query weights (idf.json): it can serve encoder 'splade', "
                                f"not 'inference-free'")
        if info.max_positions is not None:
            for key in ("max_length", "query_max_length"):
                if key in params and params[key] > info.max_positions:
                    raise ModelUnusable(f"{key}={params[key]} exceeds the {info.max_positions} positions "
                                        f"model {name!r} takes", ("params", key))
        return info

    def source(self, name: str, version: str):  # type: ignore[no-untyped-def]
        """A model source for :func:`sparsearch.retriever.splade.models_from`: the shared copy of ``name``,
        as long as it is still the ``version`` the collection was built with."""

        def load(config: Any) -> Any:
            info = self.info(name)
            if info.version != version:
                raise ModelChanged(f"model {name!r} is now version {info.version}; the collection's documents "
                                   f"were encoded with {version}")
            return shared_model(info.path, info.version, config.device, config.exact_screening)

        return load


def _is_model(folder: Path) -> bool:
    return folder.is_dir() and ((folder / "config.json").is_file() or (folder / "modules.json").is_file())


__all__ = ["MODEL_NAME", "ModelCatalog", "ModelChanged", "ModelInfo", "ModelUnusable", "UnknownModel",
           "check_model_name", "loaded_models", "model_version", "shared_model"]

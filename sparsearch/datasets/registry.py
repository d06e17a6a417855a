"""The datasets ``sparsearch`` can fetch by name: BEIR's published archives and their checksums.

Each public BEIR set is one zip at
``https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/NAME.zip``;
the md5 of each is the one BEIR publishes in the "Available Datasets" table of
its README (github.com/beir-cellar/beir).  Where the sha256 and size of an
archive are known independently they are checked too: nfcorpus (the archive
behind ``$SPARSEARCH_DATA/beir/nfcorpus``, whose md5 matched BEIR's) and
scifact (2,816,079 bytes, sha256 ``536e1444...``, recorded with BEIR's md5 by
several independent projects).

More entries, or other URLs for these (a mirror), come from a JSON file named
by ``$SPARSEARCH_DATASET_INDEX``::

    {"tiny": {"url": "http://127.0.0.1:8000/tiny.zip", "sha256": "...", "md5": "...",
              "description": "...", "splits": ["test"]}}

An entry there replaces a built-in one of the same name.  An entry with no
checksum downloads with a warning that it is unverified; the sha256 of what
was fetched is recorded in the dataset folder's ``.sparsearch-dataset.json``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsearch.errors import SparsearchError

INDEX_ENV = "SPARSEARCH_DATASET_INDEX"
BEIR_BASE_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class DatasetError(SparsearchError):
    """A dataset that cannot be named, fetched, verified or unpacked; the message is one line."""


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset the registry knows.  ``url`` is ``None`` for sets BEIR does not redistribute."""

    name: str
    url: str | None
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None  # bytes of the archive, when known
    description: str = ""
    splits: tuple[str, ...] = ("test",)
    docs: str = ""  # corpus size as BEIR states it ("5K", "8.84M")
    queries: int | None = None  # queries of the evaluation split
    subsets: tuple[str, ...] = ()  # sub-folders evaluated one at a time (cqadupstack)
    homepage: str = ""
    builtin: bool = field(default=True, compare=False)

    @property
    def verified(self) -> bool:
        """Whether a download of this set can be checked against a published checksum."""
        return bool(self.md5 or self.sha256)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "md5": self.md5, "sha256": self.sha256, "size": self.size,
                "description": self.description, "splits": list(self.splits), "docs": self.docs,
                "queries": self.queries, "subsets": list(self.subsets), "homepage": self.homepage}


def _beir(name: str, md5: str, description: str, splits: tuple[str, ...], docs: str, queries: int,
          homepage: str, **extra: Any) -> DatasetInfo:
    return DatasetInfo(name=name, url=f"{BEIR_BASE_URL}/{name}.zip", md5=md5, description=description,
                       splits=splits, docs=docs, queries=queries, homepage=homepage, **extra)


_CQADUPSTACK_FORUMS = ("android", "english", "gaming", "gis", "mathematica", "physics", "programmers", "stats",
                       "tex", "unix", "webmasters", "wordpress")

# md5: BEIR's README, "Available Datasets" (one row per set; queries are those of the test split,
# dev for msmarco, as BEIR evaluates it).
BEIR_DATASETS: tuple[DatasetInfo, ...] = (
    _beir("msmarco", "444067daf65d982533ea17ebd59501e4", "MS MARCO passage (BEIR evaluates dev)",
          ("train", "dev", "test"), "8.84M", 6980, "https://microsoft.github.io/msmarco/"),
    _beir("trec-covid", "ce62140cb23feb9becf6270d0d1fe6d1", "TREC-COVID (CORD-19)", ("test",), "171K", 50,
          "https://ir.nist.gov/covidSubmit/index.html"),
    _beir("nfcorpus", "a89dba18a62ef92f7d323ec890a0d38d", "NFCorpus: nutrition and medical questions",
          ("train", "dev", "test"), "3.6K", 323, "https://www.cl.uni-heidelberg.de/statnlpgroup/nfcorpus/",
          sha256="efe5be03f8c5b86a5870102d0599d227c8c6e2484328e68c6522560385671b0b"),
    _beir("nq", "d4d3d2e48787a744b6f6e691ff534307", "Natural Questions", ("test",), "2.68M", 3452,
          "https://ai.google.com/research/NaturalQuestions"),
    _beir("hotpotqa", "f412724f78b0d91183a0e86805e16114", "HotpotQA multi-hop questions", ("train", "dev", "test"),
          "5.23M", 7405, "https://hotpotqa.github.io"),
    _beir("fiqa", "17918ed23cd04fb15047f73e6c3bd9d9", "FiQA-2018 financial questions", ("train", "dev", "test"),
          "57K", 648, "https://sites.google.com/view/fiqa/"),
    _beir("arguana", "8ad3e3c2a5867cdced806d6503f29b99", "ArguAna counter-arguments", ("test",), "8.67K", 1406,
          "http://argumentation.bplaced.net/arguana/data"),
    _beir("webis-touche2020", "46f650ba5a527fc69e0a6521c5a23563", "Touche-2020 argument retrieval", ("test",),
          "382K", 49, "https://webis.de/events/touche-20/shared-task-1.html"),
    _beir("cqadupstack", "4e41456d7df8ee7760a7f866133bda78", "CQADupStack: 12 StackExchange forums, each "
          "evaluated alone (cqadupstack/android, ...)", ("test",), "457K", 13145,
          "http://nlp.cis.unimelb.edu.au/resources/cqadupstack/", subsets=_CQADUPSTACK_FORUMS),
    _beir("quora", "18fb154900ba42a600f84b839c173167", "Quora duplicate questions", ("dev", "test"), "523K", 10000,
          "https://www.quora.com/q/quoradata/First-Quora-Dataset-Release-Question-Pairs"),
    _beir("dbpedia-entity", "c2a39eb420a3164af735795df012ac2c", "DBpedia-Entity v2", ("dev", "test"), "4.63M", 400,
          "https://github.com/iai-group/DBpedia-Entity/"),
    _beir("scidocs", "38121350fc3a4d2f48850f6aff52e4a9", "SCIDOCS citation prediction", ("test",), "25K", 1000,
          "https://allenai.org/data/scidocs"),
    _beir("fever", "5a818580227bfb4b35bb6fa46d9b6c03", "FEVER fact verification", ("train", "dev", "test"),
          "5.42M", 6666, "http://fever.ai"),
    _beir("climate-fever", "8b66f0a9126c521bae2bde127b4dc99d", "Climate-FEVER", ("test",), "5.42M", 1535,
          "http://climatefever.ai"),
    _beir("scifact", "5f7d1de60b170fc8027bb7898e2efca1", "SciFact scientific claims", ("train", "test"), "5K", 300,
          "https://github.com/allenai/scifact",
          sha256="536e14446a0ba56ed1398ab1055f39fe852686ecad24a6306c80c490fa8e0165", size=2_816_079),
    # Part of BEIR but not redistributed by it: listed so that the name gives a useful answer.
    DatasetInfo("bioasq", None, description="BioASQ (not redistributed by BEIR; build it yourself)",
                splits=("train", "test"), docs="14.91M", queries=500,
                homepage="https://github.com/beir-cellar/beir/blob/main/examples/dataset#2-bioasq"),
    DatasetInfo("signal1m", None, description="Signal-1M (not redistributed by BEIR; build it yourself)",
                docs="2.86M", queries=97,
                homepage="https://github.com/beir-cellar/beir/blob/main/examples/dataset#4-signal-1m"),
    DatasetInfo("trec-news", None, description="TREC-NEWS (not redistributed by BEIR; build it yourself)",
                docs="595K", queries=57,
                homepage="https://github.com/beir-cellar/beir/blob/main/examples/dataset#1-trec-news"),
    DatasetInfo("robust04", None, description="Robust04 (not redistributed by BEIR; build it yourself)",
                docs="528K", queries=249,
                homepage="https://github.com/beir-cellar/beir/blob/main/examples/dataset#3-robust04"),
)

_HEX = {"md5": 32, "sha256": 64}


def _entry_from_json(name: str, raw: Any, source: Path) -> DatasetInfo:
    where = f"{source}: dataset {name!r}"
    if not isinstance(raw, dict):
        raise DatasetError(f"{where}: expected an object with at least \"url\"")
    if not _NAME.match(name):
        raise DatasetError(f"{where}: names are lower-case letters, digits, '.', '_' and '-'")
    url = raw.get("url")
    if url is not None and (not isinstance(url, str) or not url):
        raise DatasetError(f"{where}: \"url\" must be a non-empty string")
    sums: dict[str, str | None] = {}
    for algo, length in _HEX.items():
        value = raw.get(algo)
        if value is not None:
            if not isinstance(value, str) or not re.fullmatch(f"[0-9a-fA-F]{{{length}}}", value):
                raise DatasetError(f"{where}: \"{algo}\" must be {length} hexadecimal digits")
            value = value.lower()
        sums[algo] = value
    size = raw.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise DatasetError(f"{where}: \"size\" must be a byte count")
    splits = raw.get("splits", ["test"])
    subsets = raw.get("subsets", [])
    for key, value in (("splits", splits), ("subsets", subsets)):
        if not isinstance(value, list) or not all(isinstance(s, str) and _NAME.match(s) for s in value):
            raise DatasetError(f"{where}: \"{key}\" must be a list of names")
    return DatasetInfo(name=name, url=url, md5=sums["md5"], sha256=sums["sha256"], size=size,
                       description=str(raw.get("description", "")), splits=tuple(splits),
                       docs=str(raw.get("docs", "")), queries=raw.get("queries"), subsets=tuple(subsets),
                       homepage=str(raw.get("homepage", "")), builtin=False)


def _overrides() -> dict[str, DatasetInfo]:
    path = os.environ.get(INDEX_ENV)
    if not path:
        return {}
    source = Path(path).expanduser()
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except OSError as e:
        raise DatasetError(f"{INDEX_ENV}={path}: cannot read it ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise DatasetError(f"{INDEX_ENV}={path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if isinstance(data, dict) and isinstance(data.get("datasets"), dict):
        data = data["datasets"]
    if not isinstance(data, dict):
        raise DatasetError(f"{INDEX_ENV}={path}: expected an object mapping names to entries")
    return {name: _entry_from_json(name, raw, source) for name, raw in data.items()}


def registry() -> dict[str, DatasetInfo]:
    """Every known dataset by name: the built-in BEIR sets, then ``$SPARSEARCH_DATASET_INDEX`` over them."""
    known = {d.name: d for d in BEIR_DATASETS}
    known.update(_overrides())
    return dict(sorted(known.items()))


def split_name(name: str) -> tuple[str, str | None]:
    """``"cqadupstack/android"`` -> ``("cqadupstack", "android")``; ``"scifact"`` -> ``("scifact", None)``."""
    base, sep, sub = name.partition("/")
    return base, (sub if sep else None)


def names_hint(known: dict[str, DatasetInfo] | None = None) -> str:
    known = registry() if known is None else known
    return ", ".join(n for n, d in known.items() if d.url)


def lookup(name: str) -> DatasetInfo:
    """The registry entry of ``name`` (``NAME`` or ``NAME/SUBSET``), or a :class:`DatasetError` listing the known ones."""
    known = registry()
    base, sub = split_name(name)
    info = known.get(base)
    if info is None:
        close = difflib.get_close_matches(base, list(known), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DatasetError(f"unknown dataset {name!r}: {hint}known names: {names_hint(known)} "
                           "(or a dataset folder, or irds:ID; see `sparsearch datasets list`)")
    if sub is not None and sub not in info.subsets:
        if info.subsets:
            raise DatasetError(f"{base} has no subset {sub!r}; its subsets: {', '.join(info.subsets)}")
        raise DatasetError(f"{base} has no subsets: name it alone ({base!r})")
    return info


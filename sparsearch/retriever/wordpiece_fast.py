"""BERT uncased WordPiece in pure Python with per-word caches: the query side of inference-free search.

An inference-free query costs tokenization plus the inverted index, so the
tokenizer is on the latency path.  Hugging Face ``tokenizers`` is fast per
character but has a fixed cost per call: it builds offsets, alignments and
an ``Encoding`` object for one string, 30-45 µs on a 20-word SciFact query (load-dependent),
more than twice our Lucene analyzer (~19 µs).  Queries are short and their
words repeat, so this module re-implements the one pipeline the shipped
models use -- ``BertNormalizer(clean_text, handle_chinese_chars, lowercase,
strip_accents=None/True)`` + ``BertPreTokenizer`` + greedy longest-match
WordPiece -- and caches results, giving exactly the same ids for a fraction
of the cost.

Two paths:

* ASCII text (the common case): one regular expression splits lower-cased
  text into words and punctuation; each word's pieces are cached.
* Other text: each character is mapped on its own (``str.translate`` with a
  table filled on first sight of a character): control, format and
  private-use characters and U+FFFD go, whitespace becomes a space, the rest
  is NFD'd without ``Mn`` marks and lower-cased on its own (as Rust does: no
  final-sigma rule), CJK ideographs get spaces around them, and so does
  punctuation (``P*`` or ASCII punctuation; symbols ``S*`` such as emoji stay
  inside words).  Splitting the result on whitespace gives BertPreTokenizer's
  words, whose pieces share the same cache.

``tokenizers`` uses Unicode tables older than Python's, so some characters
are classified differently on the two sides.  Those were found by running
every code point through both (with Python's Unicode 14.0.0 database) and are
declined: a text holding one, an unassigned code point or a lone surrogate
gets ``None`` and the caller falls back to ``tokenizers``.  On another Python
(another Unicode database) all non-ASCII text is declined until the table is
checked again (the tests say how).  Texts containing an added token such as
``[CLS]`` are declined too.  The output is tested equal to ``tokenizers`` on
every code point, on random Unicode text, and on every query and many
documents of the BEIR sets here.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

# ASCII punctuation is split off one character at a time (BertPreTokenizer); whitespace separates.
_ASCII_WORDS = re.compile(r"[A-Za-z0-9]+|[!-/:-@\[-`{-~]")
# ASCII control characters other than \t \n \r are dropped by clean_text; any other byte is plain ASCII.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CACHE_LIMIT = 200_000

# ---------------------------------------------------------------- non-ASCII text

# The Unicode database the table below was checked against (Python 3.11).
VERIFIED_UNIDATA_VERSION = "14.0.0"
# Code points (with unassigned ones between them) that ``tokenizers`` 0.23 treats otherwise than Python's
# Unicode 14.0.0 data says: marks, format characters and punctuation added to Unicode after the tables
# ``tokenizers`` was built with (kept as letters there), two characters whose category changed, and the
# spacing marks with a nonzero combining class (with those, NFD's canonical reordering is visible and
# depends on the table's version).  Check again with ``test_every_code_point_in_context`` when either side changes.
_UNVERIFIED_RANGES: tuple[tuple[int, int], ...] = (
    (0x61D, 0x61D), (0x7FD, 0x7FD), (0x890, 0x89F), (0x8CA, 0x8E2), (0x9FD, 0x9FE), (0xA76, 0xA76),
    (0xAFA, 0xAFF), (0xB55, 0xB55), (0xC04, 0xC04), (0xC3C, 0xC3C), (0xC77, 0xC77), (0xC84, 0xC84),
    (0xD00, 0xD00), (0xD3B, 0xD3C), (0xD81, 0xD81), (0xEBA, 0xEBA), (0x166D, 0x166D), (0x1715, 0x1715),
    (0x1734, 0x1734), (0x180F, 0x180F), (0x1885, 0x1886), (0x1ABF, 0x1ACE), (0x1B44, 0x1B44), (0x1B7D, 0x1B7E),
    (0x1BAA, 0x1BAA), (0x1BF2, 0x1BF3), (0x1DF6, 0x1DFB), (0x2E43, 0x2E4F), (0x2E52, 0x2E5D), (0x302E, 0x302F),
    (0xA82C, 0xA82C), (0xA8C5, 0xA8C5), (0xA8FF, 0xA8FF), (0xA953, 0xA953), (0xA9BD, 0xA9BD), (0xA9C0, 0xA9C0),
    (0x10D24, 0x10D27), (0x10EAB, 0x10EAD), (0x10F46, 0x10F50), (0x10F55, 0x10F59), (0x10F82, 0x10F89),
    (0x11070, 0x11070), (0x11073, 0x11074), (0x110C2, 0x110CD), (0x111C0, 0x111C0), (0x111C9, 0x111C9),
    (0x111CF, 0x111CF), (0x11235, 0x11235), (0x1123E, 0x1123E), (0x1133B, 0x1133B), (0x1134D, 0x1134D),
    (0x11438, 0x1143F), (0x11442, 0x11444), (0x11446, 0x11446), (0x1144B, 0x1144F), (0x1145A, 0x1145E),
    (0x11660, 0x1166C), (0x116B6, 0x116B6), (0x116B9, 0x116B9), (0x1182F, 0x11837), (0x11839, 0x1183B),
    (0x11938, 0x1193E), (0x11943, 0x11946), (0x119D4, 0x119DB), (0x119E0, 0x119E0), (0x119E2, 0x119E2),
    (0x11A01, 0x11A0A), (0x11A33, 0x11A38), (0x11A3B, 0x11A47), (0x11A51, 0x11A56), (0x11A59, 0x11A5B),
    (0x11A8A, 0x11A96), (0x11A98, 0x11A9C), (0x11A9E, 0x11AA2), (0x11C30, 0x11C3D), (0x11C3F, 0x11C3F),
    (0x11C41, 0x11C45), (0x11C70, 0x11C71), (0x11C92, 0x11CA7), (0x11CAA, 0x11CB0), (0x11CB2, 0x11CB3),
    (0x11CB5, 0x11CB6), (0x11D31, 0x11D45), (0x11D47, 0x11D47), (0x11D90, 0x11D91), (0x11D95, 0x11D95),
    (0x11D97, 0x11D97), (0x11EF3, 0x11EF4), (0x11EF7, 0x11EF8), (0x11FFF, 0x11FFF), (0x12FF1, 0x12FF2),
    (0x13430, 0x13438), (0x16E97, 0x16E9A), (0x16F4F, 0x16F4F), (0x16FE2, 0x16FE2), (0x16FE4, 0x16FF1),
    (0x1CF00, 0x1CF46), (0x1D15E, 0x1D166), (0x1D16D, 0x1D172), (0x1D1BB, 0x1D1C0), (0x1E000, 0x1E02A),
    (0x1E130, 0x1E136), (0x1E2AE, 0x1E2AE), (0x1E2EC, 0x1E2EF), (0x1E944, 0x1E94A), (0x1E95E, 0x1E95F),
)
_UNVERIFIED = frozenset(c for lo, hi in _UNVERIFIED_RANGES for c in range(lo, hi + 1))
# BERT's "Chinese character" blocks: each such character becomes a word of its own.
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
_DECLINED = "\x00"  # what a declined character becomes: never in a normalised text otherwise (NUL is dropped)


def _is_cjk(code: int) -> bool:
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def _is_punctuation(char: str) -> bool:
    """BertPreTokenizer's punctuation: ASCII punctuation (symbols such as ``$`` included) or Unicode ``P*``."""
    code = ord(char)
    if code < 128:
        return 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126
    return unicodedata.category(char)[0] == "P"


def _normalize_char(code: int) -> str:
    """One character through the normaliser, with spaces around each punctuation character (so that
    splitting the concatenation on whitespace pre-tokenizes it), or ``_DECLINED``."""
    char = chr(code)
    if char in "\t\n\r":
        return " "
    category = unicodedata.category(char)
    if category in ("Cn", "Cs") or code in _UNVERIFIED:
        return _DECLINED
    if category[0] == "C" or code == 0xFFFD:
        return ""  # clean_text: control, format and private-use characters go, other whitespace is a space
    if char.isspace():
        return " "
    # NFD without nonspacing marks, then lower case per character (Rust has no final-sigma rule).  Per
    # character is enough: the marks that canonical reordering could move are dropped or declined.
    decomposed = "".join(c for c in unicodedata.normalize("NFD", char) if unicodedata.category(c) != "Mn")
    out = "".join(f" {c} " if _is_punctuation(c) else c for c in decomposed.replace("\u03a3", "\u03c3").lower())
    return f" {out} " if _is_cjk(code) else out  # compatibility ideographs decompose to unified ones


class _CharTable(dict):  # type: ignore[type-arg]
    """``str.translate`` table filled on first sight of each character (shared: a pure function of it)."""

    def __missing__(self, code: int) -> str:
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        self[code] = out = _normalize_char(code)
        return out


_CHARS = _CharTable()


class FastWordPiece:
    """Exact ids of a BERT uncased WordPiece tokenizer (no special tokens), or ``None`` where it declines."""

    def __init__(self, vocab: dict[str, int], unk_token: str = "[UNK]", prefix: str = "##",
                 max_chars_per_word: int = 100, added_tokens: tuple[str, ...] = (), non_ascii: bool = True) -> None:
        self.vocab = vocab
        # Added tokens ("[CLS]", "[MASK]", ...) are matched in the raw text before normalisation;
        # a text that contains one goes to ``tokenizers`` (lower-cased: a superset of the exact matching).
        self.added_tokens = tuple(t.lower() for t in added_tokens)
        self._added_raw = tuple(added_tokens)
        self.unk_id = vocab[unk_token]
        self.prefix = prefix
        self.max_chars = max_chars_per_word
        # Non-ASCII text only with the Unicode database the decline table was checked against.
        self.non_ascii = non_ascii and unicodedata.unidata_version == VERIFIED_UNIDATA_VERSION
        self._cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> "FastWordPiece | None":
        """The fast path for a ``tokenizers.Tokenizer`` configured as BERT uncased, else ``None``."""
        spec = json.loads(tokenizer.to_str())
        normalizer, pre, model = spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}, spec.get("model") or {}
        if (normalizer.get("type") != "BertNormalizer" or not normalizer.get("lowercase")
                or not normalizer.get("clean_text") or normalizer.get("strip_accents") not in (None, True)
                or pre.get("type") != "BertPreTokenizer" or model.get("type") != "WordPiece"
                or model.get("unk_token") not in model.get("vocab", {})):
            return None
        added = spec.get("added_tokens") or []
        if any(t.get("normalized") for t in added):
            return None  # matched in the normalised text (after control removal, accent stripping): not reproduced
        return cls(model["vocab"], model["unk_token"], model.get("continuing_subword_prefix", "##"),
                   int(model.get("max_input_chars_per_word", 100)), tuple(t["content"] for t in added),
                   non_ascii=bool(normalizer.get("handle_chinese_chars", True)))

    def _pieces(self, word: str) -> tuple[int, ...]:
        if len(word) > self.max_chars:
            return (self.unk_id,)
        out = []
        start, n, vocab = 0, len(word), self.vocab
        while start < n:
            end = n
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                found = vocab.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return (self.unk_id,)  # WordPiece: an unmatchable word is one [UNK]
            out.append(found)
            start = end
        return tuple(out)

    def ids(self, text: str) -> list[int] | None:
        """Token ids of ``text``, or ``None`` when it holds an added token such as ``[CLS]`` or a
        character this module does not reproduce (use ``tokenizers`` then)."""
        if not text.isascii():
            return self._non_ascii_ids(text)
        lowered = text.lower()
        for token in self.added_tokens:
            if token in lowered:
                return None
        if _CONTROL.search(lowered):
            lowered = _CONTROL.sub("", lowered)
        return self._word_ids(_ASCII_WORDS.findall(lowered))

    def _non_ascii_ids(self, text: str) -> list[int] | None:
        if not self.non_ascii:
            return None
        for token in self._added_raw:  # exact: from_tokenizer takes only tokens matched in the raw text
            if token in text:
                return None
        normalized = text.translate(_CHARS)
        if _DECLINED in normalized:
            return None
        return self._word_ids(normalized.split())

    def _word_ids(self, words: list[str]) -> list[int]:
        """The pieces of already-split words, each word's looked up in (or added to) the cache."""
        cache = self._cache
        out: list[int] = []
        for word in words:
            pieces = cache.get(word)
            if pieces is None:
                pieces = self._pieces(word)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[word] = pieces
            out.extend(pieces)
        return out

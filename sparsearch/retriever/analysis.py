"""Text analyzers: Lucene's English analyzer re-implemented, and WordPiece.

``LuceneEnglishAnalyzer`` mirrors the chain Anserini/Pyserini index BEIR with
(Lucene's ``EnglishAnalyzer``): StandardTokenizer -> EnglishPossessiveFilter ->
LowerCaseFilter -> StopFilter (Lucene's 33 English stop words) ->
PorterStemFilter.  Matching it token for token is what lets our BM25 reproduce
Pyserini's numbers instead of being merely close; docs/analyzer.md lists
every known difference.

The tokenizer is a regular expression for the word-boundary rules of Unicode
UAX #29 that matter for text in Latin script: a token is a run of letters,
digits and connector punctuation (``_``); letters stay joined across ``.``,
``'``, ``’``, ``:`` and ``·`` when a letter follows ("u.s", "don't"); digits
stay joined across ``.``, ``,``, ``;`` and apostrophes when a digit follows
("3.14", "1,000"); each Han or Hiragana character is a token of its own.
Tokens longer than 255 characters are cut into 255-character pieces, as
Lucene's ``maxTokenLength`` does.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence

from sparsearch.errors import MissingDependencyError
from sparsearch.retriever import porter

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (33 words).
LUCENE_ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)

_IDEOGRAPHIC = "\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Emoji and pictographic symbols (Unicode's Extended_Pictographic, below U+1F000 listed
# range by range): Lucene's StandardTokenizer emits each as a token of its own ("©", "™").
_PICTOGRAPHIC = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328\u2388\u23cf"
    "\u23e9-\u23f3\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u2605"
    "\u2607-\u2612\u2614-\u2685\u2690-\u2705\u2708-\u2712\u2714\u2716\u271d\u2721\u2728"
    "\u2733\u2734\u2744\u2747\u274c\u274e\u2753-\u2755\u2757\u2763-\u2767\u2795-\u2797"
    "\u27a1\u27b0\u27bf\u2934\u2935\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u3030\u303d"
    "\u3297\u3299\U0001f000-\U0001faff"
)
# Digits that are not decimal digits (superscripts, subscripts, fractions, circled numbers):
# Python counts them as word characters, UAX #29 (and Lucene) as breaks.
_OTHER_NUMBERS = "\u00b2\u00b3\u00b9\u00bc-\u00be\u2070\u2074-\u2079\u2080-\u2089\u2150-\u218f\u2460-\u24ff\u2776-\u2793"
# Combining marks and format characters (soft hyphen, bidi marks) never break a word
# and stay in the token, as UAX #29's rule WB4 says.
_ATTACHED = "\u0300-\u036f\u00ad\u200e\u200f\u2060-\u2064"
_ALNUM = rf"[^\W_{_IDEOGRAPHIC}{_OTHER_NUMBERS}]"
_CHAR = rf"[^\W{_IDEOGRAPHIC}{_OTHER_NUMBERS}]"
_RUN = rf"{_CHAR}*(?:[{_ATTACHED}]+{_CHAR}*)*"  # word characters, with attached marks/format chars
_LETTER = r"[^\W\d_]"
_MID_LETTER = "[.'\u2019:\u00b7\u2018\u2024\ufe52\uff07\uff0e]"
_MID_NUM = "[.,;'\u2019\u2018\u2024\ufe52\uff07\uff0e\u037e\u0589\u060c\u060d\u066c\u07f8\u2044\ufe10\ufe14\ufe50\ufe54\uff0c\uff1b]"
# A word starts at a letter or digit (leading underscores join it, as ExtendNumLet does;
# underscores alone are no token), then runs on through word characters and joiners.
TOKEN_PATTERN = re.compile(
    rf"[{_IDEOGRAPHIC}{_PICTOGRAPHIC}]"
    rf"|_*{_ALNUM}{_RUN}(?:(?:(?<={_LETTER}){_MID_LETTER}(?={_LETTER})|(?<=\d){_MID_NUM}(?=\d)){_CHAR}{_RUN})*"
)
# The same rules restricted to ASCII, three times faster; used for ASCII-only text,
# where the two patterns find the same tokens (emoji, ideographs and format
# characters are all non-ASCII).
ASCII_TOKEN_PATTERN = re.compile(
    r"_*[a-z0-9]\w*(?:(?:(?<=[a-z])[.':](?=[a-z])|(?<=[0-9])[.,;'](?=[0-9]))\w+)*", re.ASCII
)
MAX_TOKEN_LENGTH = 255
# Where Snowball's Porter and Lucene's part ways (see LuceneEnglishAnalyzer).
_NEEDS_REFERENCE_STEMMER = re.compile("bl|log|cc|hh|jj|kk|qq|vv|ww|xx|yy")
_POSSESSIVE_APOSTROPHES = ("'", "\u2019", "\uff07")


class Analyzer(Protocol):
    """Turns text into the terms an index stores; queries and documents use the same one."""

    name: str

    def analyze(self, text: str) -> list[str]: ...


class LuceneEnglishAnalyzer:
    """Lucene's English analysis chain (see module docstring), with per-token caching.

    Stemming is :func:`sparsearch.retriever.porter.stem`, the Porter variant of
    Lucene's ``PorterStemFilter``.  Snowball's "porter" (PyStemmer, in C, 20x
    faster) gives the same stem except for words of at most two letters, words
    that reach the "-bli"/"-logi" rules, and doubled consonants outside
    Snowball's list; those go to the reference code, the rest to PyStemmer.
    """

    name = "lucene-english"

    def __init__(self) -> None:
        try:
            import Stemmer

            stemmer = Stemmer.Stemmer("porter")
            self._fast_stem = stemmer.stemWord
            self._fast_stem_many = stemmer.stemWords
        except ImportError:  # pragma: no cover - PyStemmer is a dependency; the fallback is only slower
            self._fast_stem = porter.stem
            self._fast_stem_many = lambda words: [porter.stem(w) for w in words]
        self._cache: dict[str, str | None] = {}

    def stem(self, token: str) -> str:
        if len(token) <= 2 or _NEEDS_REFERENCE_STEMMER.search(token):
            return porter.stem(token)
        return self._fast_stem(token)

    def normalize_many(self, tokens: list[str]) -> list[str | None]:
        """:meth:`normalize` for many new tokens at once, stemming the common case in one C call."""
        stripped = [t[:-2] if len(t) >= 2 and t[-1] == "s" and t[-2] in _POSSESSIVE_APOSTROPHES else t for t in tokens]
        needs_reference = _NEEDS_REFERENCE_STEMMER.search
        stop = LUCENE_ENGLISH_STOP_WORDS
        out: list[str | None] = [None if (not t or t in stop) else porter.stem(t) if len(t) <= 2 or needs_reference(t)
                                 else t for t in stripped]
        fast = [i for i, t in enumerate(stripped) if len(t) > 2 and t not in stop and not needs_reference(t)]
        for i, stemmed in zip(fast, self._fast_stem_many([stripped[i] for i in fast])):
            out[i] = stemmed
        return out

    @staticmethod
    def raw_tokens(text: str) -> list[str]:
        """StandardTokenizer + LowerCaseFilter: lower-cased tokens before possessive/stop/stem."""
        text = text.lower()
        pattern = ASCII_TOKEN_PATTERN if text.isascii() else TOKEN_PATTERN
        tokens = pattern.findall(text)
        if tokens and max(map(len, tokens)) > MAX_TOKEN_LENGTH:
            tokens = [t[i : i + MAX_TOKEN_LENGTH] for t in tokens for i in range(0, len(t), MAX_TOKEN_LENGTH)]
        return tokens

    def normalize(self, token: str) -> str | None:
        """Possessive, stop word and stemming steps for one lower-cased token; ``None`` if dropped."""
        term = self._cache.get(token, "")
        if term != "":
            return term
        t = token
        if len(t) >= 2 and t[-1] == "s" and t[-2] in _POSSESSIVE_APOSTROPHES:
            t = t[:-2]
        result = None if (not t or t in LUCENE_ENGLISH_STOP_WORDS) else self.stem(t)
        self._cache[token] = result
        return result

    def analyze(self, text: str) -> list[str]:
        out = []
        for tok in self.raw_tokens(text):
            term = self.normalize(tok)
            if term is not None:
                out.append(term)
        return out


class WordPieceAnalyzer:
    """BERT WordPiece tokens (lower-cased, accents stripped) through the ``tokenizers`` package.

    The vocabulary is the tokenizer's and fixed, so term ids equal WordPiece
    ids and vectors from learned sparse models (whose output dimension is the
    WordPiece vocabulary) index without translation.
    """

    name = "wordpiece"

    def __init__(self, tokenizer_path: str | Path) -> None:
        self.path = str(tokenizer_path)
        self._tokenizer = _load_wordpiece(self.path)

    @property
    def vocab(self) -> list[str]:
        v = self._tokenizer.get_vocab()
        terms = [""] * len(v)
        for term, i in v.items():
            terms[i] = term
        return terms

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def analyze(self, text: str) -> list[str]:
        return self._tokenizer.encode(text, add_special_tokens=False).tokens


@lru_cache(maxsize=8)
def _load_wordpiece(path: str):  # type: ignore[no-untyped-def]
    try:
        from tokenizers import Tokenizer
        from tokenizers.implementations import BertWordPieceTokenizer
    except ImportError:
        raise MissingDependencyError("WordPiece analysis needs tokenizers: pip install tokenizers") from None
    p = Path(path)
    if p.is_dir():
        if (p / "tokenizer.json").exists():
            p = p / "tokenizer.json"
        elif (p / "vocab.txt").exists():
            p = p / "vocab.txt"
        else:
            raise FileNotFoundError(f"{path}: no tokenizer.json or vocab.txt in this folder")
    if not p.exists():
        raise FileNotFoundError(f"{p}: tokenizer file not found")
    if p.suffix == ".json":
        tok = Tokenizer.from_file(str(p))
        tok.no_truncation()
        tok.no_padding()
        return tok
    return BertWordPieceTokenizer(str(p), lowercase=True)

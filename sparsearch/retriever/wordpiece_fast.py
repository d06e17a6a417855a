"""BERT WordPiece for short ASCII texts, with a per-word cache: the query side of inference-free search.

An inference-free query costs tokenization plus the inverted index, so the
tokenizer is on the latency path.  Hugging Face ``tokenizers`` spends ~45 µs
on a 20-word SciFact query (normalizer, pre-tokenizer, offsets, alignment
bookkeeping for one string); our Lucene analyzer needs ~19 µs for the same
query.  This module reproduces ``BertNormalizer(lowercase, clean_text,
handle_chinese_chars, strip_accents=None)`` + ``BertPreTokenizer`` +
greedy longest-match WordPiece exactly for ASCII text, caching each word's
pieces, and declines (returns ``None``) anything else so the caller falls
back to ``tokenizers``.  Its output is tested equal to ``tokenizers`` on every
query and a slice of the documents of the BEIR sets here.
"""

from __future__ import annotations

import json
import re
from typing import Any

# ASCII punctuation is split off one character at a time (BertPreTokenizer); whitespace separates.
_ASCII_WORDS = re.compile(r"[A-Za-z0-9]+|[!-/:-@\[-`{-~]")
# ASCII control characters other than \t \n \r are dropped by clean_text; any other byte is plain ASCII.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CACHE_LIMIT = 200_000


class FastWordPiece:
    """Exact ids of a BERT uncased WordPiece tokenizer for ASCII text (no special tokens)."""

    def __init__(self, vocab: dict[str, int], unk_token: str = "[UNK]", prefix: str = "##",
                 max_chars_per_word: int = 100, added_tokens: tuple[str, ...] = ()) -> None:
        self.vocab = vocab
        # Added tokens ("[CLS]", "[MASK]", ...) are matched in the raw text before normalisation;
        # a text that contains one goes to ``tokenizers`` (lower-cased: a superset of both matchings).
        self.added_tokens = tuple(t.lower() for t in added_tokens)
        self.unk_id = vocab[unk_token]
        self.prefix = prefix
        self.max_chars = max_chars_per_word
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
        added = tuple(t["content"] for t in spec.get("added_tokens") or [])
        return cls(model["vocab"], model["unk_token"], model.get("continuing_subword_prefix", "##"),
                   int(model.get("max_input_chars_per_word", 100)), added)

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
        """Token ids of ``text``, or ``None`` when it is not ASCII or holds an added token such as
        ``[CLS]`` (use ``tokenizers`` then)."""
        if not text.isascii():
            return None
        lowered = text.lower()
        for token in self.added_tokens:
            if token in lowered:
                return None
        if _CONTROL.search(lowered):
            lowered = _CONTROL.sub("", lowered)
        cache = self._cache
        out: list[int] = []
        for word in _ASCII_WORDS.findall(lowered):
            pieces = cache.get(word)
            if pieces is None:
                pieces = self._pieces(word)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[word] = pieces
            out.extend(pieces)
        return out

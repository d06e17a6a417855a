"""Term <-> id mapping saved with an index.

Ids are dense and assigned in first-seen order, so a vocabulary only ever
grows and the ids of an existing index never move when documents are added.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from sparsearch.errors import IndexFormatError


class Vocabulary:
    def __init__(self, terms: Iterable[str] = ()) -> None:
        self.terms: list[str] = []
        self.ids: dict[str, int] = {}
        for t in terms:
            self.add(t)

    def __len__(self) -> int:
        return len(self.terms)

    def __contains__(self, term: str) -> bool:
        return term in self.ids

    def add(self, term: str) -> int:
        """Id of ``term``, assigning the next free id if it is new."""
        i = self.ids.get(term)
        if i is None:
            i = len(self.terms)
            self.ids[term] = i
            self.terms.append(term)
        return i

    def get(self, term: str, default: int = -1) -> int:
        return self.ids.get(term, default)

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.terms, ensure_ascii=False).encode("utf-8")

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        try:
            terms = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexFormatError(f"{path}: vocabulary file missing (index is corrupt)") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise IndexFormatError(f"{path}: corrupt vocabulary ({e})") from None
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise IndexFormatError(f"{path}: corrupt vocabulary (expected a list of strings)")
        vocab = cls()
        vocab.terms = terms
        vocab.ids = {t: i for i, t in enumerate(terms)}
        if len(vocab.ids) != len(terms):
            raise IndexFormatError(f"{path}: corrupt vocabulary (duplicate terms)")
        return vocab

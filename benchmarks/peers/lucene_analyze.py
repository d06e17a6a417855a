"""Print the tokens of Pyserini's default Lucene English analyzer, one JSON list per line.

Why: our own Python analyzer aims to reproduce Lucene's (Anserini's DefaultEnglishAnalyzer:
standard tokenizer, lower-casing, Lucene's English stopwords, Porter stemming), the one
Pyserini uses both to index ``contents`` and to parse BM25 queries.  This tool gives the
ground truth to diff against, from real Lucene.

Usage:
    python benchmarks/peers/lucene_analyze.py [FILE] < lines.txt > tokens.jsonl

Each input line (UTF-8; the trailing newline is not part of the text) yields one output
line: a JSON array of token strings, ``[]`` for a line that yields none.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator

if __package__:  # imported as benchmarks.peers.lucene_analyze
    from . import _java
else:  # run as a script: this folder is on sys.path
    import _java


def analyze_lines(lines: Iterable[str]) -> Iterator[list[str]]:
    """Yield the default English analyzer's tokens for each line, in order."""
    _java.start_jvm()
    from pyserini.analysis import Analyzer, get_lucene_analyzer

    analyzer = Analyzer(get_lucene_analyzer())  # en, Porter stemming, stopwords on
    for line in lines:
        yield list(analyzer.analyze(line.rstrip("\r\n")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", help="input file (default: standard input)")
    args = parser.parse_args()
    source = open(args.file, encoding="utf-8") if args.file else sys.stdin
    with source:
        for tokens in analyze_lines(source):
            sys.stdout.write(json.dumps(tokens, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sys.stdin.reconfigure(encoding="utf-8")
    sys.stdout.reconfigure(encoding="utf-8")
    main()

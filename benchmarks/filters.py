"""Indexed metadata filters at 10^5 documents: filtered search against unfiltered, same run.

    python benchmarks/filters.py [--n 100000] [--queries 300] [--reps 5] [--out docs/results/filters.json]

The corpus is the scaling benchmark's synthetic one (``benchmarks/scale_corpus.py
synthetic --n N``, generated here when missing, ~10 s) with real SciFact and
NFCorpus queries.  Every document gets seeded metadata of known selectivity:

* ``shard``: a keyword, one of 100 values drawn at random (one value: 1 %);
* ``year``: an integer drawn uniformly from 1900-1999 (one year: 1 %);
* ``lang``: ``en`` for a random half;
* ``oa``: a boolean, true for a random 10 %;
* ``batch``: the document's position // (N / 100): the order of ingestion, so
  one batch (1 %) is a contiguous run of documents, as a date range is in a
  collection filled over time.

The index is built, saved and reopened (memory-mapped, as the CLI and the
service open it).  Two timings, both one thread, k = 10, every filter and the
unfiltered search interleaved in each of ``--reps`` passes over the queries,
the best pass kept:

* index: ``InvertedIndex.search`` of the encoded queries against
  ``filtering.search`` with the filter: what the filter changes;
* end to end: ``Index.search(text, k, filter=...)`` against
  ``Index.search(text, k)``, query encoding and id lookup included.

Times are thread CPU time (``time.thread_time``: the machine these ran on is
shared, and wall time there counts other jobs' slices too); wall times are in
the JSON.  Results are checked against post-filtering: each query's full
unfiltered ranking, filtered in Python by the documents' metadata, first k
(ids and scores equal).  For reference, the previous implementation
(over-fetch k*10, then 4x more until k hits survive a post-filter of stored
metadata: ``LiveIndex.search`` before indexed filters) is timed on the
flat-form filters it could express, and each path of the filtered search is
forced in turn (``strategy=``) to show where each wins: the candidate path
with each posting list met the cheapest way (``candidates``), or always by
scanning, galloping or the term bitsets (``candidates:scan``, ``:gallop``,
``:bitset``), the dense path, the deletion masks.  Those forced paths are
checked against post-filtering too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from filter_reference import matches  # noqa: E402  (the filter language in plain Python)
from sparsearch import BM25Encoder, Document, Index, read_corpus  # noqa: E402
from sparsearch.filters import parse_filter  # noqa: E402
from sparsearch.index import filter_kernels, filter_postings, filtering  # noqa: E402
from sparsearch.index.config import IndexConfig  # noqa: E402

FILTERS: dict[str, Any] = {
    "shard = s07": {"field": "shard", "eq": "s07"},
    "year in [1950, 1951)": {"field": "year", "gte": 1950, "lt": 1951},
    "lang = en and year in [1950, 1952)": {"and": [{"field": "lang", "eq": "en"},
                                                   {"field": "year", "gte": 1950, "lt": 1952}]},
    "batch = 42 (contiguous)": {"field": "batch", "eq": 42},
    "shard in 3 values": {"field": "shard", "in": ["s01", "s02", "s03"]},
    "shard in 5 values": {"field": "shard", "in": ["s01", "s02", "s03", "s04", "s05"]},
    "oa = true": {"field": "oa", "eq": True},
    "shard in 20 values": {"field": "shard", "in": [f"s{i:02d}" for i in range(20)]},
    "lang = en": {"field": "lang", "eq": "en"},
    "not shard = s07": {"not": {"field": "shard", "eq": "s07"}},
    "shard = none (matches nothing)": {"field": "shard", "eq": "none"},
    "flat {shard: s07}": {"shard": "s07"},
    "flat {shard: none} (matches nothing)": {"shard": "none"},
}
OLD_FORM = ("flat {shard: s07}", "flat {shard: none} (matches nothing)")
STRATEGY_SWEEP = ("shard = s07", "shard in 3 values", "shard in 5 values", "oa = true", "shard in 20 values",
                  "lang = en")
SWEEP_PATHS = ("candidates", "candidates:scan", "candidates:gallop", "candidates:bitset", "dense", "mask")


def metadata(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    shard, year = rng.integers(0, 100, n).tolist(), rng.integers(1900, 2000, n).tolist()
    en, oa = (rng.random(n) < 0.5).tolist(), (rng.random(n) < 0.1).tolist()
    per_batch = max(1, n // 100)
    return [{"shard": f"s{s:02d}", "year": y, "lang": "en" if e else "xx", "oa": o, "batch": i // per_batch}
            for i, (s, y, e, o) in enumerate(zip(shard, year, en, oa))]


def old_overfetch(index: Index, query: str, k: int, flat: dict[str, Any]) -> list[tuple[str, float]]:
    """``LiveIndex.search`` before indexed filters: over-fetch, post-filter stored metadata, widen until k."""
    snap = index.inverted
    queries = index.encoder.encode_queries([query], snap.stats)
    n = snap.n_docs
    k = min(k, max(n, 1))
    fetch = min(max(k * 10, 100), max(n, 1))
    while True:
        top = snap.search(queries, fetch, threads=1)
        internal, scores = top.row(0)
        hits = []
        for d, s in zip(internal.tolist(), scores.tolist()):
            stored = snap.stored_fields(d, ["metadata"])
            if not all((stored.get("metadata") or {}).get(key) == v for key, v in flat.items()):
                continue
            hits.append((snap.external_ids(np.array([d]))[0], s))
            if len(hits) == k:
                return hits
        if fetch >= n or len(internal) < fetch:
            return hits
        fetch = min(fetch * 4, n)


def best_passes(conditions: dict[str, Callable[[Any], Any]], items: list[Any], reps: int) -> dict[str, dict]:
    """Per condition, the best of ``reps`` passes over ``items`` (conditions interleaved within each pass)."""
    cpu: dict[str, float] = {}
    wall: dict[str, float] = {}
    for _ in range(reps):
        for name, fn in conditions.items():
            w0, c0 = time.perf_counter(), time.thread_time()
            for item in items:
                fn(item)
            c, w = time.thread_time() - c0, time.perf_counter() - w0
            cpu[name] = min(cpu.get(name, 1e9), c)
            wall[name] = min(wall.get(name, 1e9), w)
    return {name: {"cpu_us": round(cpu[name] / len(items) * 1e6, 1), "wall_us": round(wall[name] / len(items) * 1e6, 1)}
            for name in conditions}


def corpus_dir(n: int) -> Path:
    out = Path(os.path.expanduser(f"~/.cache/sparsearch/scale/synthetic-{n}"))
    if not (out / "corpus.jsonl").exists():
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "scale_corpus.py"), "synthetic", "--n", str(n),
                        "--model", str(REPO / "benchmarks" / "data" / "scale_model.npz"), "--out", str(out)],
                       check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--check", type=int, default=100, help="queries checked against post-filtering")
    ap.add_argument("--old-queries", type=int, default=30, help="queries timed with the old over-fetch search")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    k = args.k

    src = corpus_dir(args.n)
    metas = metadata(args.n)
    docs = [Document(d.doc_id, d.title, d.text, m) for d, m in zip(read_corpus(src / "corpus.jsonl"), metas)]
    texts = [json.loads(line)["text"] for line in (src / "queries.jsonl").read_text().splitlines()][: args.queries]
    meta_of = {d.doc_id: d.metadata for d in docs}
    tmp = tempfile.TemporaryDirectory(prefix="filters-bench-")
    t = time.perf_counter()
    Index.build(docs, path=Path(tmp.name) / "idx", encoder=BM25Encoder(),
                config=IndexConfig(quantization="uint8", stored_fields=("title", "metadata")))
    build_s = time.perf_counter() - t
    del docs
    index = Index.open(Path(tmp.name) / "idx")
    inv = index.inverted
    t = time.perf_counter()
    for seg in inv.segments:
        filtering.segment_columns(seg)
    columns_ms = (time.perf_counter() - t) * 1000
    for seg in inv.segments:  # JIT (cached on disk) for these arrays' types, not timed: no term, no bitset
        filter_kernels.term_bits(seg.postings_offsets, seg.postings_docs, seg.n_docs, np.zeros(0, np.int64))
    t = time.perf_counter()
    term_bits = [filter_postings.term_bits(seg) for seg in inv.segments if seg.n_docs >= filtering.MIN_CANDIDATE_DOCS]
    term_bits_ms = (time.perf_counter() - t) * 1000
    term_bits_info = {"terms": sum(tb.n_terms for tb in term_bits), "bytes": sum(tb.nbytes for tb in term_bits),
                      "postings": int(sum(np.diff(seg.postings_offsets)[tb.slot >= 0].sum()
                                          for seg, tb in zip(inv.segments, term_bits))),
                      "doc_id_bytes": int(sum(seg.postings_docs.nbytes for seg in inv.segments)),
                      "build_ms": round(term_bits_ms, 1)}
    print(f"{args.n} documents, {inv.n_postings} postings, {len(inv.segments)} segment(s); build {build_s:.1f} s; "
          f"metadata column index {columns_ms:.0f} ms, term bitsets {term_bits_ms:.0f} ms "
          f"({term_bits_info['terms']} terms, {term_bits_info['bytes'] / 1e6:.1f} MB; once per segment)", flush=True)

    parsed = {name: parse_filter(f) for name, f in FILTERS.items()}
    encoded = [index.encode_queries([q]) for q in texts]
    selectivity = {name: sum(matches(m, f) for m in meta_of.values()) / len(meta_of) for name, f in FILTERS.items()}

    # Correctness first: every filter, end to end, against post-filtering the full ranking.
    full = [list(zip(h.ids, h.scores.tolist())) for h in index.search_batch(texts[: args.check], index.n_docs)]
    for name, flt in FILTERS.items():
        for q, ranking in zip(texts, full):
            want = [(i, s) for i, s in ranking if matches(meta_of[i], flt)][:k]
            hits = index.search(q, k, filter=flt)
            assert list(zip(hits.ids, hits.scores.tolist())) == want, (name, q)
    checked = 0
    for name in STRATEGY_SWEEP:  # every forced path too, at the index level
        flt = FILTERS[name]
        for strategy in SWEEP_PATHS:
            for e, ranking in zip(encoded, full):
                want = [(i, s) for i, s in ranking if matches(meta_of[i], flt)][:k]
                ids, scores = filtering.search(inv, e, k, parsed[name], threads=1, strategy=strategy).row(0)
                assert list(zip(inv.resolve_ids(ids), scores.tolist())) == want, (name, strategy)
                checked += 1
    print(f"results equal post-filtering: {len(FILTERS)} filters x {len(full)} queries; each path forced: "
          f"{checked} searches", flush=True)

    # Filter evaluation, uncached (what the first search with a new filter pays before scoring).
    evaluation_us = {}
    for name, p in parsed.items():
        t0 = time.thread_time()
        for _ in range(200):
            filtering._make_plan(inv, p, "auto", "this index")
        evaluation_us[name] = round((time.thread_time() - t0) / 200 * 1e6, 1)

    index_level: dict[str, Callable[[Any], Any]] = {"unfiltered": lambda e: inv.search(e, k, threads=1)}
    for name, p in parsed.items():
        index_level[name] = (lambda p: lambda e: filtering.search(inv, e, k, p, threads=1))(p)
    for name in STRATEGY_SWEEP:
        for strategy in SWEEP_PATHS:
            index_level[f"{name} [{strategy}]"] = (
                lambda p, s: lambda e: filtering.search(inv, e, k, p, threads=1, strategy=s))(parsed[name], strategy)
    end_to_end: dict[str, Callable[[Any], Any]] = {"unfiltered": lambda q: index.search(q, k).ids}
    for name, flt in FILTERS.items():
        end_to_end[name] = (lambda f: lambda q: index.search(q, k, filter=f).ids)(flt)
    for fn in list(index_level.values()):
        fn(encoded[0])  # JIT (cached on disk) and plans
    idx_t = best_passes(index_level, encoded, args.reps)
    e2e_t = best_passes(end_to_end, texts, args.reps)

    old_q = texts[: args.old_queries]
    old_conditions: dict[str, Callable[[Any], Any]] = {"unfiltered": lambda q: index.search(q, k).ids}
    for name in OLD_FORM:
        old_conditions[name] = (lambda f: lambda q: old_overfetch(index, q, k, f))(FILTERS[name])
    old_t = best_passes(old_conditions, old_q, 1)
    for name in OLD_FORM:
        for q in old_q:
            new = index.search(q, k, filter=FILTERS[name])
            assert old_overfetch(index, q, k, FILTERS[name]) == list(zip(new.ids, new.scores.tolist()))

    def ratio(times: dict, name: str, key: str = "cpu_us") -> float:
        return round(times["unfiltered"][key] / times[name][key], 2)

    rows = {}
    for name, flt in FILTERS.items():
        p = filtering.plan(inv, parsed[name])
        rows[name] = {
            "filter": flt, "selectivity": round(selectivity[name], 4),
            "path": "none (no match)" if p.count == 0 else "+".join(
                ["candidates"] * bool(p.candidates) + ["dense"] * bool(p.dense) + ["mask"] * bool(p.view)),
            "index": {**idx_t[name], "speedup_cpu": ratio(idx_t, name), "speedup_wall": ratio(idx_t, name, "wall_us")},
            "end_to_end": {**e2e_t[name], "speedup_cpu": ratio(e2e_t, name),
                           "speedup_wall": ratio(e2e_t, name, "wall_us")},
            "evaluation_uncached_us": evaluation_us[name],
        }
        if name in OLD_FORM:
            rows[name]["old_overfetch_end_to_end"] = {**old_t[name], "speedup_cpu": ratio(old_t, name)}
    sweep = {name: {s: {**idx_t[f"{name} [{s}]"], "speedup_cpu": ratio(idx_t, f"{name} [{s}]")}
                    for s in SWEEP_PATHS} for name in STRATEGY_SWEEP}

    print(f"\nunfiltered: index {idx_t['unfiltered']['cpu_us']} us, end to end {e2e_t['unfiltered']['cpu_us']} us "
          f"per query (CPU; {len(texts)} queries, k={k}, 1 thread, best of {args.reps} passes)")
    print(f"{'filter':38} {'match':>7} {'path':>11} {'index us':>9} {'speed-up':>9} {'e2e us':>8} {'speed-up':>9}"
          f" {'eval us':>8}")
    for name, r in rows.items():
        print(f"{name:38} {r['selectivity']:7.2%} {r['path']:>11} {r['index']['cpu_us']:9.1f} "
              f"{r['index']['speedup_cpu']:8.2f}x {r['end_to_end']['cpu_us']:8.1f} "
              f"{r['end_to_end']['speedup_cpu']:8.2f}x {r['evaluation_uncached_us']:8.1f}")
    print("\nold over-fetch search, end to end (first %d queries):" % len(old_q))
    for name in OLD_FORM:
        o = rows[name]["old_overfetch_end_to_end"]
        print(f"  {name:38} {o['cpu_us']:10.1f} us  {o['speedup_cpu']:.3f}x unfiltered ({old_t['unfiltered']['cpu_us']} us)")
    print("\nindex search per path (speed-up over unfiltered):")
    for name, by in sweep.items():
        print(f"  {name:22} {selectivity[name]:6.1%}  " + "  ".join(
            f"{s.replace('candidates:', 'c:')} {v['cpu_us']:6.1f} us {v['speedup_cpu']:5.2f}x" for s, v in by.items()))
    report = {
        "command": "python benchmarks/filters.py " + " ".join(sys.argv[1:]),
        "n_docs": args.n, "n_postings": int(inv.n_postings), "segments": len(inv.segments), "queries": len(texts),
        "k": k, "threads": 1, "reps": args.reps, "build_seconds": round(build_s, 1),
        "column_index_ms": round(columns_ms, 1), "term_bitsets": term_bits_info,
        "unfiltered": {"index": idx_t["unfiltered"], "end_to_end": e2e_t["unfiltered"]},
        "filters": rows, "paths": sweep, "checked_against_post_filter": len(full),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average": os.getloadavg()},
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    tmp.cleanup()


if __name__ == "__main__":
    main()

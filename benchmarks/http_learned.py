"""Learned-sparse collections through HTTP: quality, search latency vs BM25, upsert throughput, memory.

    python benchmarks/http_learned.py [--data $SPARSEARCH_DATA] [--model inference-free-biomed]
                                      [--doc-threshold 0.1] [--duration 30] [--rounds 2] [--concurrency 8]
                                      [--check-eval] [--out docs/results/http_learned.json]

Starts ``sparsearch serve`` (default models directory: the shipped models) on
127.0.0.1 with a fresh data directory and, all through the API:

1. loads SciFact into a BM25 collection (``bm25``, batches of 1,000: one segment);
2. creates an inference-free collection (``learned``, ``--model``,
   ``--doc-threshold``) and upserts its first batch, which loads the model;
   then a second collection on the same model (``learned2``) with the same
   batch.  The server's RSS is read after each step: a second copy of the
   model would add what ``second_copy_bytes`` measures (a separate process
   loading the model twice and encoding with each copy);
3. upserts the rest of SciFact into ``learned`` (``--batch`` documents per
   request; encoding on the server's CPU): documents per second.  Each batch
   also goes, right after, to a second BM25 collection (``bm25_same``), which
   so sees the same writes at the same times and ends with the same segments
   (time-based flushes during slow encoding make several; search cost grows
   with their number whatever the encoder);
4. NDCG@10 of the test queries through HTTP (k = 1000, evaluated in rank
   order, as ``sparsearch eval`` does); ``--check-eval`` also runs
   ``sparsearch eval``'s code in this process on the same settings, same run;
5. search latency, ``learned`` against ``bm25_same`` and ``bm25`` with the
   loadtest's method (a bounded asyncio httpx client, ``--concurrency``
   requests in flight, ``--duration`` seconds a phase), the phases rotated
   over ``--rounds``;
6. searches of ``bm25`` (one at a time) while ``learned2`` takes a large
   learned upsert: encoding does not hold up other collections.

Client and server share the machine's cores.  Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

KEY = "http-learned-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int, models_dir: Path | None) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "sparsearch"
    extra = ["--models-dir", str(models_dir)] if models_dir is not None else []
    proc = subprocess.Popen([str(exe), "serve", "--data-dir", str(data_dir), "--port", str(port), *extra],
                            env={**os.environ, "SPARSEARCH_API_KEY": KEY})
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def read_docs(corpus: Path) -> list[dict[str, Any]]:
    with open(corpus, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [{"_id": d["_id"], "title": d.get("title", ""), "text": d.get("text", "")} for d in rows]


def upsert(client: httpx.Client, name: str, docs: list[dict[str, Any]], batch: int) -> float:
    t = time.perf_counter()
    for i in range(0, len(docs), batch):
        client.post(f"/collections/{name}/documents", json={"documents": docs[i:i + batch]}, headers=AUTH,
                    timeout=1800).raise_for_status()
    return time.perf_counter() - t


def http_quality(client: httpx.Client, name: str, dataset: Any, k: int = 1000) -> dict[str, float]:
    """NDCG@10 etc. of the test queries through HTTP, evaluated in rank order (``ranking_run``'s convention)."""
    from sparsearch.eval.metrics import evaluate

    run = {}
    for qid, text in dataset.queries.items():
        hits = client.post(f"/collections/{name}/search", json={"query": text, "k": k, "fields": []}).json()["hits"]
        run[qid] = {h["_id"]: float(len(hits) - i) for i, h in enumerate(hits)}
    return evaluate(dataset.qrels, run)


async def search_phase(base: str, name: str, queries: list[str], duration: float, concurrency: int,
                       seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                try:
                    r = await client.post(f"/collections/{name}/search", json={"query": rng.choice(queries), "k": 10})
                except httpx.HTTPError:
                    errors += 1
                    continue
                if r.status_code != 200:
                    errors += 1
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {"latencies": latencies, "seconds": elapsed, "errors": errors}


def summary(latencies: list[float], seconds: float | None = None) -> dict[str, float]:
    ms = np.array(latencies) * 1e3
    out = {"count": len(latencies), "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
           "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}
    if seconds:
        out["qps"] = len(latencies) / seconds
    return out


def second_copy_bytes(model: str, text: str) -> dict[str, int]:
    """RSS a second loaded copy of the model adds: a separate process loads it and encodes ``text``, twice
    (freed memory returned to the system before each reading, so this is what a copy keeps)."""
    code = f"""
import ctypes, gc, json, os, sys
sys.path.insert(0, {str(HERE)!r})
from http_learned import rss_bytes
import torch
from sparsearch.retriever.resolve import resolve_model
from sparsearch.retriever.splade import SpladeModel
def rss():
    gc.collect(); ctypes.CDLL("libc.so.6").malloc_trim(0); return rss_bytes(os.getpid())
folder = resolve_model({model!r}).path
texts = [{text!r}]
first = SpladeModel(folder, "cpu"); first.encode(texts, 256, 32, None, 0.1)
one = rss()
second = SpladeModel(folder, "cpu"); second.encode(texts, 256, 32, None, 0.1)
two = rss()
params = sum(p.numel() * p.element_size() for p in first.model.parameters())
print(json.dumps({{"rss_one_copy": one, "rss_two_copies": two, "second_copy": two - one, "parameters": params}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPARSEARCH_DATA")
                                                           or HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--model", default="inference-free-biomed")
    parser.add_argument("--models-dir", type=Path, default=None, help="serve --models-dir (default: shipped)")
    parser.add_argument("--doc-threshold", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=500, help="documents per learned upsert request")
    parser.add_argument("--first-batch", type=int, default=1, help="documents of the upsert that loads the model "
                        "(small, so that freed activations cannot hide a second copy in the RSS)")
    parser.add_argument("--busy-docs", type=int, default=200, help="learned upsert during the busy-search phase")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--check-eval", action="store_true", help="also run sparsearch eval's code here")
    parser.add_argument("--limit", type=int, default=None, help="only the first N documents (a smoke run)")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "http_learned.json")
    args = parser.parse_args()

    from sparsearch.eval.datasets import load_beir

    scifact = args.data / "beir" / "scifact"
    dataset = load_beir(scifact)
    docs = read_docs(scifact / "corpus.jsonl")[:args.limit]
    queries = list(dataset.queries.values())
    spec = {"encoder": "inference-free", "model": args.model, "params": {"doc_threshold": args.doc_threshold}}
    result: dict[str, Any] = {"documents": len(docs), "model": args.model, "doc_threshold": args.doc_threshold,
                              "cpus": os.cpu_count(), "batch": args.batch, "concurrency": args.concurrency}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="sparsearch-http-learned-") as tmp:
        server = start_server(Path(tmp), port, args.models_dir)
        try:
            with httpx.Client(base_url=base, timeout=60) as c:
                rss = {"started": rss_bytes(server.pid)}
                c.put("/collections/bm25", json={"encoder": "bm25"}, headers=AUTH).raise_for_status()
                result["bm25_load_seconds"] = upsert(c, "bm25", docs, 1000)
                rss["bm25_loaded"] = rss_bytes(server.pid)

                first = docs[:args.first_batch]
                c.put("/collections/bm25_same", json={"encoder": "bm25"}, headers=AUTH).raise_for_status()
                upsert(c, "bm25_same", first, args.first_batch)
                c.put("/collections/learned", json=spec, headers=AUTH).raise_for_status()
                t = time.perf_counter()
                upsert(c, "learned", first, args.first_batch)
                result["first_learned_batch_seconds"] = time.perf_counter() - t  # includes loading the model
                rss["one_learned_collection"] = rss_bytes(server.pid)
                c.put("/collections/learned2", json=spec, headers=AUTH).raise_for_status()
                upsert(c, "learned2", first, args.first_batch)
                rss["two_learned_collections"] = rss_bytes(server.pid)
                print("rss", rss, flush=True)

                rest = docs[args.first_batch:]
                seconds = 0.0
                for i in range(0, len(rest), args.batch):
                    seconds += upsert(c, "learned", rest[i:i + args.batch], args.batch)
                    upsert(c, "bm25_same", rest[i:i + args.batch], args.batch)
                    print(f"learned: {args.first_batch + i + len(rest[i:i + args.batch])} documents, "
                          f"{(i + len(rest[i:i + args.batch])) / seconds:.2f} docs/s", flush=True)
                result["learned_upsert"] = {"documents": len(rest), "seconds": seconds,
                                            "docs_per_second": len(rest) / seconds}
                print("upsert", result["learned_upsert"], flush=True)
                time.sleep(35)  # the last time-based flushes and their merges
                result["collections"] = {n: c.get(f"/collections/{n}").json() for n in ("bm25", "bm25_same", "learned")}
                rss["learned_filled"] = rss_bytes(server.pid)
                result["quality_http"] = {"learned": http_quality(c, "learned", dataset),
                                          "bm25": http_quality(c, "bm25", dataset)}
                print("quality", result["quality_http"], flush=True)

            names = ["bm25_same", "learned", "bm25"]
            rounds: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
            for r in range(args.rounds):
                for name in names[r % 3:] + names[:r % 3]:
                    rounds[name].append(asyncio.run(search_phase(base, name, queries, args.duration,
                                                                 args.concurrency, seed=r)))
            latency = {}
            for name, phases in rounds.items():
                latency[name] = summary([x for p in phases for x in p["latencies"]], sum(p["seconds"] for p in phases))
                latency[name]["errors"] = sum(p["errors"] for p in phases)
            for base_name in ("bm25_same", "bm25"):
                for p in ("p50", "p99"):
                    latency[f"ratio_{p}_vs_{base_name}"] = (latency["learned"][f"{p}_ms"]
                                                            / latency[base_name][f"{p}_ms"])
            result["search_latency"] = latency
            print("latency", json.dumps(latency), flush=True)

            # Searches of another collection while a large learned upsert encodes.
            busy: list[float] = []
            done = threading.Event()

            def writer() -> None:
                with httpx.Client(base_url=base, timeout=1800) as w:
                    t0 = time.perf_counter()
                    upsert(w, "learned2", docs[args.first_batch:args.first_batch + args.busy_docs], args.busy_docs)
                    result["busy_upsert_seconds"] = time.perf_counter() - t0
                done.set()

            thread = threading.Thread(target=writer)
            rng = random.Random(7)
            with httpx.Client(base_url=base, timeout=60) as c:
                thread.start()
                while not done.is_set():
                    t = time.perf_counter()
                    c.post("/collections/bm25/search", json={"query": rng.choice(queries), "k": 10}).raise_for_status()
                    busy.append(time.perf_counter() - t)
                thread.join()
                quiet = []
                for _ in range(len(busy)):
                    t = time.perf_counter()
                    c.post("/collections/bm25/search", json={"query": rng.choice(queries), "k": 10}).raise_for_status()
                    quiet.append(time.perf_counter() - t)
            result["bm25_search_during_learned_upsert"] = {"during": summary(busy), "after": summary(quiet),
                                                          "upsert_documents": args.busy_docs}
            print("busy", result["bm25_search_during_learned_upsert"], flush=True)
            rss["end"] = rss_bytes(server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=300)
    result["rss_bytes"] = rss
    result["second_collection_adds_bytes"] = rss["two_learned_collections"] - rss["one_learned_collection"]
    result["first_collection_adds_bytes"] = rss["one_learned_collection"] - rss["bm25_loaded"]
    result["model_copy"] = second_copy_bytes(args.model, (docs[0]["title"] + " " + docs[0]["text"]).strip())
    if args.check_eval:
        from sparsearch.cli import _encoder
        from sparsearch.eval.beir import EvalSettings, evaluate_beir

        enc = _encoder("inference-free", model=Path(args.model), doc_threshold=args.doc_threshold)
        report = evaluate_beir(scifact, encoder=enc, settings=EvalSettings(measure_speed=False))
        result["quality_eval"] = report["metrics"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

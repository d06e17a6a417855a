"""Load test of `sparsearch serve` on 127.0.0.1: search-only, then 90 % searches + 10 % writes.

    python benchmarks/loadtest.py [--corpus ~/.cache/sparsearch/scale/real-100000] [--duration 300]
                                  [--concurrency 8] [--out docs/results/loadtest.json]

Starts the server in a subprocess on a fresh data directory, loads the
corpus through the API (batches of 1,000 documents), checks quality on
SciFact through HTTP, then runs a bounded asyncio client (``--concurrency``
requests in flight, each phase ``--duration`` seconds) and reports QPS,
p50/p95/p99 latency and errors per phase.  Every acknowledged write is read
back at the end: ``lost_writes`` must be 0.  Traffic goes to 127.0.0.1 only.
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
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

KEY = "loadtest-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "sparsearch"
    proc = subprocess.Popen([str(exe), "serve", "--data-dir", str(data_dir), "--port", str(port)],
                            env={**os.environ, "SPARSEARCH_API_KEY": KEY})
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def load(client: httpx.Client, name: str, corpus: Path, batch: int = 1000) -> float:
    client.put(f"/collections/{name}", json={"encoder": "bm25"}, headers=AUTH).raise_for_status()
    docs = [{"_id": d["_id"], "title": d.get("title", ""), "text": d["text"]} for d in read_jsonl(corpus / "corpus.jsonl")]
    t = time.perf_counter()
    for i in range(0, len(docs), batch):
        client.post(f"/collections/{name}/documents", json={"documents": docs[i : i + batch]},
                    headers=AUTH, timeout=300).raise_for_status()
    return time.perf_counter() - t


def scifact_quality(client: httpx.Client, data: Path) -> dict[str, float]:
    """NDCG@10 of BM25 through the HTTP API, to compare with `sparsearch eval` (0.6789)."""
    from sparsearch.eval.datasets import load_beir
    from sparsearch.eval.metrics import evaluate

    dataset = load_beir(data / "beir" / "scifact")
    load(client, "scifact", dataset.root)
    run = {}
    for qid, text in dataset.queries.items():
        hits = client.post("/collections/scifact/search", json={"query": text, "k": 100}).json()["hits"]
        run[qid] = {h["_id"]: float(len(hits) - i) for i, h in enumerate(hits)}
    return evaluate(dataset.qrels, run)


async def phase(base: str, queries: list[str], duration: float, concurrency: int, write_fraction: float,
                seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    latencies: dict[str, list[float]] = {"search": [], "write": []}
    errors = 0
    acked: list[str] = []
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker(w: int) -> None:
            nonlocal errors
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                write = rng.random() < write_fraction
                t = time.perf_counter()
                try:
                    if write:
                        doc_id = f"w{seed}-{w}-{n}"
                        r = await client.post("/collections/bench/documents", headers=AUTH, json={
                            "documents": [{"_id": doc_id, "title": "load test", "text": rng.choice(queries)}]})
                        if r.status_code == 200:
                            acked.append(doc_id)
                    else:
                        r = await client.post("/collections/bench/search", json={"query": rng.choice(queries), "k": 10})
                    if r.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies["write" if write else "search"].append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - start

    def summary(values: list[float]) -> dict[str, float]:
        if not values:
            return {"count": 0}
        ms = np.array(values) * 1e3
        return {"count": len(values), "qps": len(values) / elapsed, "p50_ms": float(np.percentile(ms, 50)),
                "p95_ms": float(np.percentile(ms, 95)), "p99_ms": float(np.percentile(ms, 99))}

    return {"seconds": elapsed, "errors": errors, "search": summary(latencies["search"]),
            "write": summary(latencies["write"]), "acked_writes": acked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path.home() / ".cache/sparsearch/scale/real-100000")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPARSEARCH_DATA")
                                                           or HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "loadtest.json")
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="sparsearch-load-") as tmp:
        server = start_server(Path(tmp), port)
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                load_seconds = load(client, "bench", args.corpus)
                quality = scifact_quality(client, args.data)
                n_docs = client.get("/collections/bench").json()["documents"]
            queries = [q["text"] for q in read_jsonl(args.corpus / "queries.jsonl")]
            search_only = asyncio.run(phase(base, queries, args.duration, args.concurrency, 0.0, seed=1))
            mixed = asyncio.run(phase(base, queries, args.duration, args.concurrency, 0.1, seed=2))
            with httpx.Client(base_url=base, timeout=60) as client:
                lost = [d for d in mixed["acked_writes"]
                        if client.get(f"/collections/bench/documents/{d}").status_code != 200]
                segments = client.get("/collections/bench").json()["segments"]
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
    for p in (search_only, mixed):
        p["acked_writes"] = len(p["acked_writes"])
    result = {
        "corpus": str(args.corpus), "documents": n_docs, "segments_after": segments, "load_seconds": load_seconds,
        "scifact_via_http": quality, "concurrency": args.concurrency, "duration_s": args.duration,
        "search_only": search_only, "mixed": mixed, "lost_writes": len(lost), "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

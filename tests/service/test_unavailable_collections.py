"""Issue 14 item 4: one bad collection does not stop the server.

Before the fix, any error while opening one collection (a corrupt
``collection.json``, index manifest or log record) failed start-up and took
every collection of the data directory down.  Now that collection is reported
unavailable with its reason: its endpoints answer 503 naming it, ``GET
/collections`` and ``/healthz`` say which and why, and the others serve.
"""

from __future__ import annotations

from pathlib import Path

from service_helpers import AUTH, app_client
from sparsearch.index.wal import encode_record

NAMES = ["good", "badspec", "badmanifest", "badlog"]


def doc(i: int) -> dict[str, object]:
    return {"_id": f"d{i}", "title": f"title {i}", "text": f"common words number {i}", "metadata": {}}


def log_records(corrupt_middle: bool) -> bytes:
    records = [encode_record({"op": "upsert", "docs": [doc(i)]}) for i in (10, 11, 12)]
    if corrupt_middle:
        records[1] = records[1].replace(b"common", b"cOmmon")  # same length, checksum no longer matches
    return b"".join(records)


def build(data_dir: Path) -> Path:
    with app_client(data_dir) as c:
        for name in NAMES:
            assert c.put(f"/collections/{name}", json={}, headers=AUTH).status_code == 201
            c.post(f"/collections/{name}/documents", json={"documents": [doc(0), doc(1)]}, headers=AUTH)
    root = data_dir / "collections"
    (root / "badspec" / "collection.json").write_text('{"encoder": "bm25", "params": ')
    (root / "badmanifest" / "index" / "manifest.json").write_bytes(b"\x00garbage\xff")
    (root / "badlog" / "wal.jsonl").write_bytes(log_records(corrupt_middle=True))
    return root


def test_bad_collections_are_unavailable_and_the_others_serve(tmp_path: Path) -> None:
    build(tmp_path)
    with app_client(tmp_path) as c:
        # Found at start-up (spec and manifest are read then): /healthz says which and why.
        health = c.get("/healthz").json()
        assert health["status"] == "degraded" and health["collections"] == 4
        reasons = {u["name"]: u["reason"] for u in health["unavailable"]}
        assert set(reasons) == {"badspec", "badmanifest"}
        assert "collection.json" in reasons["badspec"] and "manifest" in reasons["badmanifest"]

        # The healthy collection serves: reads, searches and writes.
        assert c.get("/collections/good").json()["documents"] == 2
        assert c.post("/collections/good/search", json={"query": "common"}).status_code == 200
        assert c.post("/collections/good/documents", json={"documents": [doc(5)]}, headers=AUTH).status_code == 200

        # Every endpoint of a bad one answers 503 naming the cause.
        for name, cause in [("badspec", "collection.json"), ("badmanifest", "manifest"), ("badlog", "wal.jsonl")]:
            for method, path, body in [("GET", "", None), ("POST", "/search", {"query": "common"}),
                                       ("GET", "/documents/d0", None),
                                       ("POST", "/documents", {"documents": [doc(7)]})]:
                r = c.request(method, f"/collections/{name}{path}", json=body, headers=AUTH)
                assert r.status_code == 503, (name, method, path, r.text)
                assert name in r.json()["detail"] and cause in r.json()["detail"], r.json()

        listing = c.get("/collections").json()
        assert [x["name"] for x in listing["collections"]] == ["good"]
        assert {u["name"] for u in listing["unavailable"]} == {"badspec", "badmanifest", "badlog"}
        health = c.get("/healthz").json()
        assert health["status"] == "degraded"
        assert "corrupt write-ahead log record" in {u["name"]: u["reason"] for u in health["unavailable"]}["badlog"]
        assert "sparsearch_collections_unavailable 3" in c.get("/metrics").text

        # An unavailable collection can still be deleted (the way to discard it), and its name reused.
        assert c.delete("/collections/badspec", headers=AUTH).json() == {"deleted": True}
        assert c.put("/collections/badspec", json={}, headers=AUTH).status_code == 201


def test_a_repaired_collection_comes_back_without_a_restart(tmp_path: Path) -> None:
    root = build(tmp_path)
    with app_client(tmp_path, retry_unavailable_seconds=0.0) as c:
        assert c.get("/collections/badlog").status_code == 503
        (root / "badlog" / "wal.jsonl").write_bytes(log_records(corrupt_middle=False))
        assert c.get("/collections/badlog").json()["documents"] == 5  # 2 flushed + 3 replayed
        assert c.get("/collections/badlog/documents/d11").json()["text"] == "common words number 11"
        assert {u["name"] for u in c.get("/healthz").json()["unavailable"]} == {"badspec", "badmanifest"}

"""Issue 14 item 11: invalid values never reach storage.

Python's JSON parser accepts ``NaN`` and ``Infinity``, and ``\\ud800``
escapes give strings UTF-8 cannot hold.  Before the fix, NaN in metadata was
stored and then every search returning that document answered 500; an
unpaired surrogate or ``k1: NaN`` answered 500.  Now each is refused by the
request schema with 422 naming the field, and nothing is stored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service_helpers import AUTH, app_client

JSON = {**AUTH, "Content-Type": "application/json"}
GOOD = '{"_id": "ok", "title": "t", "text": "words"}'

# (raw document JSON, where the 422 must point, a word the message must hold)
BAD_DOCUMENTS = [
    ('{"_id": "a", "metadata": {"score": NaN}}', "metadata", "score"),
    ('{"_id": "a", "metadata": {"score": Infinity}}', "metadata", "NaN and Infinity"),
    ('{"_id": "a", "metadata": {"deep": {"list": [1, 2, -Infinity]}}}', "metadata", "['deep']['list'][2]"),
    ('{"_id": "a", "metadata": {"x": [{"y": NaN}]}}', "metadata", "['x'][0]['y']"),
    ('{"_id": "bad\\ud800id"}', "_id", "unicode"),
    ('{"_id": "a", "title": "\\udfff"}', "title", "unicode"),
    ('{"_id": "a", "text": "ok \\ud83d alone"}', "text", "unicode"),
    ('{"_id": "a", "metadata": {"k\\udc00ey": 1}}', "metadata", "unicode"),
    ('{"_id": "a", "metadata": {"key": ["fine", "bad\\udc00"]}}', "metadata", "['key'][1]"),
]


@pytest.mark.parametrize("document,field,word", BAD_DOCUMENTS, ids=[b[0] for b in BAD_DOCUMENTS])
def test_bad_documents_are_refused_and_nothing_is_stored(tmp_path: Path, document: str, field: str,
                                                          word: str) -> None:
    with app_client(tmp_path) as c:
        c.put("/collections/docs", json={}, headers=AUTH)
        wal = tmp_path / "collections" / "docs" / "wal.jsonl"
        before = wal.read_bytes()
        r = c.post("/collections/docs/documents", content=f'{{"documents": [{GOOD}, {document}]}}', headers=JSON)
        assert r.status_code == 422, r.text
        error = r.json()["detail"][0]
        assert error["loc"][:3] == ["body", "documents", 1] and field in error["loc"], error
        assert word.lower() in error["msg"].lower(), error
        assert wal.read_bytes() == before  # nothing logged: the good document of the batch neither
        assert c.get("/collections/docs").json()["documents"] == 0
        assert c.post("/collections/docs/search", json={"query": "words", "fields": ["metadata"]}).json() == \
            {"hits": []}


@pytest.mark.parametrize("params", ['{"k1": NaN}', '{"k1": Infinity}', '{"b": -Infinity}', '{"b": NaN}'])
def test_bad_parameters_are_refused(tmp_path: Path, params: str) -> None:
    with app_client(tmp_path) as c:
        r = c.put("/collections/docs", content=f'{{"encoder": "bm25", "params": {params}}}', headers=JSON)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"][:2] == ["body", "params"]
        assert list((tmp_path / "collections").iterdir()) == []


@pytest.mark.parametrize("body,field", [
    ('{"query": "a \\ud800 b"}', "query"),
    ('{"query": "a", "filter": {"lang": NaN}}', "filter"),
    ('{"query": "a", "filter": {"l\\udc00": "en"}}', "filter"),
    ('{"query": "a", "filter": {"lang": ["en", "\\udc00"]}}', "filter"),
    ('{"query": "a", "k": Infinity}', "k"),
    ('{"query": "a", "k": NaN}', "k"),
])
def test_bad_searches_are_refused(tmp_path: Path, body: str, field: str) -> None:
    with app_client(tmp_path) as c:
        c.put("/collections/docs", json={}, headers=AUTH)
        r = c.post("/collections/docs/search", content=body, headers=JSON)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"][:2] == ["body", field]


def test_valid_unicode_and_numbers_still_pass(tmp_path: Path) -> None:
    doc = {"_id": "😀 é", "title": "𝄞", "text": "naïve café",
           "metadata": {"x": 1e308, "y": -0.0, "z": [None, True]}}
    with app_client(tmp_path) as c:
        c.put("/collections/docs", json={}, headers=AUTH)
        assert c.post("/collections/docs/documents", json={"documents": [doc]}, headers=AUTH).status_code == 200
        hits = c.post("/collections/docs/search", json={"query": "café", "fields": ["metadata"],
                                                        "filter": {"z": [None, True]}}).json()["hits"]
        assert hits[0]["_id"] == "😀 é" and hits[0]["metadata"] == doc["metadata"]

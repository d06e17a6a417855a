"""Issue 14 item 8: every response is counted by status, names are matched in full, labels escaped.

Before the fix, unhandled 500s never reached ``/metrics`` (the middleware
missed exceptions), and ``PUT /collections/evil%0A`` was accepted (the name
pattern ended in ``$``, which also matches before a trailing newline),
creating a folder with a newline in its name and breaking the text format.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest

from service_helpers import AUTH, app_client
from sparsearch.retriever.retriever import Retriever
from sparsearch.service.metrics import Metrics, escape_label
from sparsearch.service.store import CollectionNameError, check_name

# One sample line of the Prometheus text format: name, optional {labels}, value.
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
SAMPLE = re.compile(rf'[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{{{LABEL}(?:,{LABEL})*\}})? [-+0-9.eE]+|[-+]?Inf|NaN')


def assert_valid_exposition(text: str) -> None:
    assert text.endswith("\n")
    for line in text.splitlines():
        assert line.startswith("# ") or SAMPLE.fullmatch(line), f"malformed metrics line: {line!r}"


def count(text: str, route: str, status: int, method: str) -> int:
    pattern = rf'sparsearch_requests_total\{{method="{method}",route="{re.escape(route)}",status="{status}"\}} (\d+)'
    match = re.search(pattern, text)
    return int(match.group(1)) if match else 0


def test_unhandled_errors_and_refusals_are_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with app_client(tmp_path, max_body_bytes=1000, raise_server_exceptions=False) as c:
        c.put("/collections/docs", json={}, headers=AUTH)

        def broken(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("a bug")

        monkeypatch.setattr(Retriever, "search", broken)
        assert c.post("/collections/docs/search", json={"query": "x"}).status_code == 500
        assert c.post("/collections/docs/search", json={"query": "x"}).status_code == 500
        monkeypatch.undo()
        big = b'{"documents": [{"_id": "x", "text": "' + b"y" * 2000 + b'"}]}'
        assert c.post("/collections/docs/documents", content=big, headers=AUTH).status_code == 413
        chunked = iter([big[:600], big[600:]])  # no Content-Length: refused while reading
        assert c.post("/collections/docs/documents", content=chunked, headers=AUTH).status_code == 413
        assert c.get("/nowhere").status_code == 404
        assert c.request("BREW", "/collections").status_code == 405
        text = c.get("/metrics").text
    assert count(text, "/collections/{name}/search", 500, "POST") == 2
    assert count(text, "unmatched", 413, "POST") == 2
    assert count(text, "unmatched", 404, "GET") == 1
    assert count(text, "/collections", 405, "other") == 1  # unknown methods share one label value
    assert count(text, "/collections/{name}", 201, "PUT") == 1
    assert_valid_exposition(text)


@pytest.mark.parametrize("name", ["evil\n", "ok\r", "a\x00", "docs\n\n", "dócs", "x\u2028"])
def test_names_are_matched_in_full(tmp_path: Path, name: str) -> None:
    with pytest.raises(CollectionNameError):
        check_name(name)
    with app_client(tmp_path) as c:
        r = c.put(f"/collections/{quote(name, safe='')}", json={}, headers=AUTH)
        assert r.status_code == 422, r.text
        assert list((tmp_path / "collections").iterdir()) == []
        assert_valid_exposition(c.get("/metrics").text)


def test_label_values_are_escaped() -> None:
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    metrics = Metrics()
    metrics.observe("GET", 'route "with" \\ odd\nchars', 200, 0.01)
    text = metrics.render({'col"\\\n': (3, 1)})
    assert_valid_exposition(text)
    assert 'sparsearch_documents{collection="col\\"\\\\\\n"} 3' in text
    assert 'route="route \\"with\\" \\\\ odd\\nchars"' in text

"""Issue 14 item 3: start-up never deletes what the server did not create.

Before the fix, start-up removed every folder under ``collections/`` that
lacked ``collection.json`` or whose name failed the pattern, taking for a
crashed creation whatever a user had put there.  Now a collection is built in
``.creating-<name>-<random>`` and renamed into place, so only such leftovers
(and ``.dropping-`` ones) are the server's to remove.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from service_helpers import AUTH, app_client
from sparsearch.retriever.retriever import Retriever

FOREIGN = ["My Stuff", "notes", "UPPER", ".hidden", "x" * 70, ".creating-notes", ".creating-a-123"]


def plant(root: Path) -> None:
    """Folders and files a user (or another program) left under collections/."""
    root.mkdir(parents=True, exist_ok=True)
    for name in FOREIGN:
        (root / name).mkdir()
        (root / name / "precious.txt").write_text(name)
    (root / "UPPER" / "collection.json").write_text('{"encoder": "bm25", "params": {}}')  # valid spec, bad name
    (root / "readme.txt").write_text("a file, not a folder")


def test_unknown_folders_are_logged_and_left_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "collections"
    plant(root)
    leftover = root / ".creating-docs-0123456789abcdef"  # a creation that crashed: the server's own
    (leftover / "index").mkdir(parents=True)
    dropping = root / ".dropping-old-fedcba9876543210"
    dropping.mkdir()
    with caplog.at_level(logging.WARNING, logger="sparsearch.service.store"):
        with app_client(tmp_path) as c:
            assert c.get("/healthz").json()["collections"] == 0
            assert c.get("/collections").json()["collections"] == []
            # The name of a foreign folder is refused, and the folder is not touched.
            r = c.put("/collections/notes", json={}, headers=AUTH)
            assert r.status_code == 409 and "not a collection" in r.json()["detail"]
            assert c.put("/collections/fresh", json={}, headers=AUTH).status_code == 201
    for name in FOREIGN:
        assert (root / name / "precious.txt").read_text() == name
    assert (root / "readme.txt").exists()
    assert not leftover.exists() and not dropping.exists()
    logged = caplog.text
    assert "My Stuff" in logged and "left alone" in logged and ".creating-docs-0123456789abcdef" in logged
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == sorted(
        [n for n in FOREIGN if not n.startswith(".")] + ["fresh", "readme.txt"])


def test_a_failed_creation_leaves_nothing_and_no_half_collection(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real_create = Retriever.create_live.__func__  # type: ignore[attr-defined]

    def failing(cls, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        live = real_create(cls, path, *args, **kwargs)
        live.close()
        raise OSError(5, "Input/output error", str(path))

    with app_client(tmp_path, raise_server_exceptions=False) as c:
        monkeypatch.setattr(Retriever, "create_live", classmethod(failing))
        r = c.put("/collections/docs", json={}, headers=AUTH)
        assert r.status_code == 503 and "Input/output error" in r.json()["detail"]
        monkeypatch.undo()
        assert list((tmp_path / "collections").iterdir()) == []  # the temporary folder was removed
        assert c.get("/collections/docs").status_code == 404
        assert c.put("/collections/docs", json={}, headers=AUTH).status_code == 201
    with app_client(tmp_path) as c:
        assert [x["name"] for x in c.get("/collections").json()["collections"]] == ["docs"]


def test_drop_removes_only_the_collection(tmp_path: Path) -> None:
    root = tmp_path / "collections"
    plant(root)
    with app_client(tmp_path) as c:
        c.put("/collections/docs", json={}, headers=AUTH)
        c.post("/collections/docs/documents", json={"documents": [{"_id": "a", "text": "x"}]}, headers=AUTH)
        assert c.delete("/collections/docs", headers=AUTH).json() == {"deleted": True}
        assert c.delete("/collections/notes", headers=AUTH).status_code == 404  # not a collection: untouched
    assert not (root / "docs").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".dropping-")]
    for name in FOREIGN:
        assert (root / name / "precious.txt").exists()

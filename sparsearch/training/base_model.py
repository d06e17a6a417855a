"""A training student's starting weights, from any folder a user is likely to hold.

The natural base of a small learned sparse encoder is a sentence-transformers
bi-encoder such as all-MiniLM-L6-v2 (the shipped models start there).  Its
folder describes a *dense* model (``modules.json``: Transformer, Pooling,
Normalize), which the sparse model loader rightly refuses; but its
Transformer module is a plain BERT encoder that :func:`~sparsearch.retriever.mlm.load_masked_lm`
gives a tied MLM head.  :func:`trainable_base` exposes just that module as a
plain Hugging Face folder (symlinks, no copy of the weights).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from sparsearch.retriever.st_format import is_sentence_transformers

_HF_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json",
             "special_tokens_map.json", "vocab.txt")


def trainable_base(folder: str | Path) -> Path:
    """``folder`` itself, or for a dense sentence-transformers folder a plain view of its Transformer module."""
    root = Path(folder)
    if not is_sentence_transformers(root):
        return root
    modules = json.loads((root / "modules.json").read_text(encoding="utf-8"))
    names = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if not names or names[0] != "Transformer" or any(n in ("SpladePooling", "Router") for n in names):
        return root  # a sparse sentence-transformers model: the loaders read it as it is
    module = root / str(modules[0].get("path", ""))
    view = Path(tempfile.mkdtemp(prefix="sparsearch-base-"))
    for name in _HF_FILES:
        source = module / name if (module / name).exists() else root / name
        if source.exists():
            (view / name).symlink_to(source.resolve())
    return view

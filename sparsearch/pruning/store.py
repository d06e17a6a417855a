"""Pruned models on disk: a Hugging Face MLM folder plus ``sparsearch_pruning.json``.

The folder loads with ``AutoModelForMaskedLM`` anywhere (zeros, removed layers
and a narrower FFN are ordinary weights and shapes).  What Hugging Face cannot
express goes into the JSON's ``runtime`` and is redone by sparsearch's loader
(:func:`apply_runtime`, called from :class:`~sparsearch.retriever.splade.SpladeModel`):
heads cut out of the attention matrices, sparse kernels swapped in, int8 or
bfloat16 conversion, and the decoder rows of a pruned vocabulary (``kept_terms.json``).
The JSON also records every step that made the model, for the report.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from sparsearch.pruning.base import PruneReport

log = logging.getLogger(__name__)

PRUNING_FILE = "sparsearch_pruning.json"
TERMS_FILE = "kept_terms.json"
COPIED = ("idf.json", "README.md")


def save_pruned(model: nn.Module, source_dir: str | Path, out: str | Path, reports: Sequence[PruneReport],
                fp16: bool = False, extra_runtime: dict[str, Any] | None = None) -> Path:
    """Write the pruned ``model`` (before any runtime conversion) and how it was made to ``out``."""
    from sparsearch.retriever.mlm import save_masked_lm

    out_path = Path(out)
    runtime: dict[str, Any] = {}
    for report in reports:
        runtime.update(report.runtime)
    runtime.update(extra_runtime or {})
    files: dict[str, bytes] = {}
    terms = runtime.pop("vocab_terms", None)
    if terms is not None:
        files[TERMS_FILE] = json.dumps(list(terms)).encode()
        runtime["vocab_terms"] = TERMS_FILE
    steps = []
    for report in reports:
        step = asdict(report)
        step["runtime"] = {k: v for k, v in report.runtime.items() if k != "vocab_terms"}
        steps.append(step)
    previous = read_record(source_dir)  # pruning a pruned folder stacks: earlier steps and runtime carry over
    if previous:
        steps = list(previous.get("steps", [])) + steps
        earlier = dict(previous.get("runtime", {}))
        if earlier.get("vocab_terms") and "vocab_terms" not in runtime:
            files[TERMS_FILE] = (Path(source_dir) / earlier["vocab_terms"]).read_bytes()
        runtime = {**earlier, **runtime}
        if "vocab_terms" in runtime:
            runtime["vocab_terms"] = TERMS_FILE
    record = {"source": str(source_dir), "steps": steps, "runtime": runtime}
    files[PRUNING_FILE] = json.dumps(record, indent=2).encode()
    save_masked_lm(model, source_dir, out_path, fp16=fp16, extra_files=files)
    for name in COPIED:
        if (Path(source_dir) / name).exists() and not (out_path / name).exists():
            shutil.copyfile(Path(source_dir) / name, out_path / name)
    return out_path


def read_record(folder: str | Path) -> dict[str, Any] | None:
    """The folder's pruning record, or ``None`` for a model that was not pruned here."""
    path = Path(folder) / PRUNING_FILE
    if not path.exists():
        return None
    from sparsearch.retriever.mlm import read_json

    return read_json(path)


def apply_runtime(model: nn.Module, parts: Any, folder: str | Path) -> tuple[Any, np.ndarray | None]:
    """Redo the record's runtime steps on a freshly loaded model (inference only).

    Returns the (possibly vocabulary-restricted) :class:`~sparsearch.retriever.mlm.MLMParts`
    and the term id of each kept decoder row (``None``: all terms).
    """
    record = read_record(folder)
    if not record:
        return parts, None
    runtime = record.get("runtime", {})
    if runtime.get("pruned_heads"):
        from sparsearch.pruning.structured import remove_heads

        remove_heads(model, {int(k): v for k, v in runtime["pruned_heads"].items()})
    kernel = runtime.get("kernel")
    if kernel:
        from sparsearch.pruning.kernels import sparsify_linears

        swapped = sparsify_linears(model, int(kernel.get("rows", 1)), float(kernel.get("min_sparsity", 0.5)))
        log.info("%s: %d linear layers on the sparse kernel", folder, len(swapped))
    if runtime.get("int8"):
        from sparsearch.pruning.quantize import PER_TENSOR, quantize_int8

        # ``true``: a folder written before the granularity was recorded (one scale per matrix then).
        quantize_int8(model, granularity=PER_TENSOR if runtime["int8"] is True else runtime["int8"])
    terms = None
    if runtime.get("vocab_terms"):
        from sparsearch.retriever.mlm import MLMParts, read_json

        terms = np.asarray(read_json(Path(folder) / runtime["vocab_terms"]), dtype=np.int64)
        index = torch.from_numpy(terms).to(parts.decoder_weight.device)
        with torch.no_grad():
            bias = parts.decoder_bias[index].detach() if parts.decoder_bias is not None else None
            parts = MLMParts(parts.backbone, parts.transform, parts.decoder_weight[index].detach(), bias)
    if runtime.get("bf16"):
        from sparsearch.pruning.quantize import apply_bf16

        parts = apply_bf16(model, parts, runtime.get("bf16_fallback", "float32"))
    return parts, terms

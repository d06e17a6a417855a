"""One dataclass configures a training run; it is saved beside every checkpoint.

Loaded from YAML or JSON (``sparsearch train CONFIG``); unknown keys are an
error naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from sparsearch.errors import InputError

Kind = Literal["splade", "inference-free"]
Teacher = Literal["dense", "bm25", "splade", "self"]  # "self": the model adapted, frozen (sparsearch adapt)


def _expand(path: str) -> str:
    return os.path.expanduser(os.path.expandvars(path))


def _as_tuple(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class DatasetSpec:
    """A BEIR folder and the qrels splits whose queries train the model."""

    path: str
    splits: tuple[str, ...] = ("train",)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs.

    ``kind="inference-free"`` trains only the document model; queries are
    IDF-weighted tokens (``idf_path``, or computed over the training corpora).
    ``flops="idf"`` uses IDF-aware FLOPS on documents (Geng et al. 2024),
    ``"plain"`` Paria et al.'s FLOPS, ``"auto"`` the first for inference-free
    and the second for siamese SPLADE.  ``teachers`` lists the ensemble whose
    per-query min-max normalised, averaged scores (× ``teacher_scale``) give the
    KL target; an empty list trains with InfoNCE alone.  ``crop_fraction`` of
    the batches are pairs of independent random crops of corpus documents
    (Contriever), trained with InfoNCE against in-batch negatives.
    """

    kind: Kind
    base_model: str
    out_dir: str
    datasets: tuple[DatasetSpec, ...]
    teachers: tuple[Teacher, ...] = ("dense", "bm25")
    dense_teacher: str | None = None
    splade_teacher: str | None = None
    idf_path: str | None = None
    teacher_scale: float = 30.0
    kl_weight: float = 1.0
    infonce_weight: float = 0.1
    crop_fraction: float = 0.2
    crop_min: float = 0.05
    crop_max: float = 0.5
    crop_delete: float = 0.1
    negatives_per_query: int = 7
    hard_negative_depth: int = 50
    flops: Literal["auto", "idf", "plain"] = "auto"
    lambda_d: float = 0.1
    lambda_q: float = 0.1
    lambda_warmup_steps: int = 500
    steps: int = 1000
    max_train_seconds: float | None = None
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 5e-5
    lr_warmup_steps: int = 100
    weight_decay: float = 0.01
    max_length: int = 256
    query_max_length: int = 64
    bf16: bool = True
    device: str = "auto"
    seed: int = 13
    log_every: int = 20
    checkpoint_every: int = 500
    save_fp16: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("splade", "inference-free"):
            raise InputError(f"kind must be 'splade' or 'inference-free', got {self.kind!r}", field="kind")
        if self.flops not in ("auto", "idf", "plain"):
            raise InputError(f"flops must be 'auto', 'idf' or 'plain', got {self.flops!r}", field="flops")
        for t in self.teachers:
            if t not in ("dense", "bm25", "splade", "self"):
                raise InputError(f"unknown teacher {t!r} (dense, bm25, splade, self)", field="teachers")
        if "dense" in self.teachers and not self.dense_teacher:
            raise InputError("the dense teacher needs dense_teacher: a sentence-transformers folder", field="dense_teacher")
        if "splade" in self.teachers and not self.splade_teacher:
            raise InputError("the splade teacher needs splade_teacher: an MLM folder", field="splade_teacher")
        if not self.datasets:
            raise InputError("at least one dataset is needed", field="datasets")
        if not 0.0 <= self.crop_fraction <= 1.0:
            raise InputError(f"crop_fraction must be in [0, 1], got {self.crop_fraction}", field="crop_fraction")
        if not 0.0 < self.crop_min <= self.crop_max <= 1.0:
            raise InputError("need 0 < crop_min <= crop_max <= 1", field="crop_min")
        if self.max_train_seconds is not None and self.max_train_seconds <= 0:
            raise InputError(f"max_train_seconds must be > 0, got {self.max_train_seconds}", field="max_train_seconds")
        for name in ("steps", "batch_size", "grad_accum", "negatives_per_query", "max_length", "query_max_length"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}", field=name)

    @property
    def document_flops(self) -> str:
        """``auto``: IDF-aware FLOPS for inference-free documents, plain FLOPS for siamese SPLADE."""
        if self.flops != "auto":
            return self.flops
        return "idf" if self.kind == "inference-free" else "plain"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str | Path = "config") -> "TrainConfig":
        if not isinstance(raw, dict):
            raise InputError("expected a mapping of settings", path=source)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InputError(f"unknown setting(s) {', '.join(unknown)}", path=source, field=unknown[0])
        values = dict(raw)
        if isinstance(values.get("teachers"), str):  # "bm25" means ("bm25",), not its characters
            values["teachers"] = (values["teachers"],)
        for name in ("base_model", "out_dir", "dense_teacher", "splade_teacher", "idf_path"):
            if isinstance(values.get(name), str):  # "${SPARSEARCH_DATA}/..." and "~" in paths
                values[name] = os.path.expanduser(os.path.expandvars(values[name]))
        try:
            values["datasets"] = tuple(
                DatasetSpec(path=_expand(d), splits=("train",)) if isinstance(d, str)
                else DatasetSpec(path=_expand(d["path"]), splits=_as_tuple(d.get("splits", ("train",))))
                for d in raw.get("datasets", ()))
        except (KeyError, TypeError):
            raise InputError("datasets: each entry is a path or {path, splits}", path=source, field="datasets") from None
        if "teachers" in values:
            values["teachers"] = tuple(values["teachers"])
        try:
            return cls(**values)
        except TypeError as e:
            raise InputError(str(e), path=source) from None

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainConfig":
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: training config not found")
        text = p.read_text(encoding="utf-8")
        if p.suffix in (".yaml", ".yml"):
            import yaml

            try:
                raw = yaml.safe_load(text)
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                raise InputError(f"not valid YAML ({e})", path=p, line=mark.line + 1 if mark else None) from None
        else:
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as e:
                raise InputError(f"not valid JSON ({e.msg})", path=p, line=e.lineno) from None
        return cls.from_dict(raw, p)

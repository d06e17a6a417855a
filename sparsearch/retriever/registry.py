"""Encoder registry: the one place that turns an encoder name into an encoder.

* :func:`build_encoder` — a name plus settings -> a new encoder.  The CLI,
  the service, ``repro``, the quickstart, the training teachers and the
  benchmarks all build their encoders here, so a name or a setting is
  checked the same way everywhere (one-line errors naming what is unknown).
* :func:`encoder_class` — the name saved in a manifest -> the class whose
  ``load`` rebuilds it.

An entry is ``"package.module:EncoderClass"`` plus, for ``build_encoder``, its
config dataclass (``"package.module:ConfigClass"`` or the class itself).
Both are imported on first use, so building or opening a BM25 index never
imports torch.  ``build_encoder`` checks the settings' keys against the
config's fields, then calls ``EncoderClass.from_settings(settings)`` when the
class defines it (for settings that are not config fields, e.g. a tokenizer
folder whose contents the encoder copies), else
``EncoderClass(ConfigClass(**settings))``.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from sparsearch.errors import IndexFormatError, SparsearchError

if TYPE_CHECKING:
    from sparsearch.protocols import SparseEncoder


class EncoderError(SparsearchError, ValueError):
    """An encoder name or settings :func:`build_encoder` cannot use (unknown, missing or of the wrong type)."""


class ModelLocation(Protocol):
    """A model found on disk: ``resolve.ResolvedModel`` and the service's ``ModelInfo`` both fit."""

    @property
    def path(self) -> Path: ...

    @property
    def name(self) -> str | None: ...


@dataclass(frozen=True)
class EncoderEntry:
    target: str  # "package.module:EncoderClass"
    config: str | type | None = None  # its config dataclass, or "package.module:ConfigClass"


_ENCODERS: dict[str, EncoderEntry] = {
    "bm25": EncoderEntry("sparsearch.retriever.bm25:BM25Encoder", "sparsearch.retriever.bm25:BM25Config"),
    "splade": EncoderEntry("sparsearch.retriever.splade:SpladeEncoder", "sparsearch.retriever.splade:SpladeConfig"),
    "inference-free": EncoderEntry("sparsearch.retriever.inference_free:InferenceFreeEncoder",
                                   "sparsearch.retriever.inference_free:InferenceFreeConfig"),
    "precomputed": EncoderEntry("sparsearch.retriever.precomputed:PrecomputedEncoder",
                                "sparsearch.retriever.precomputed:PrecomputedConfig"),
    # A bi-encoder: float32 vectors (n, dim) scored by dot product, for a dense index rather than an inverted one.
    "dense": EncoderEntry("sparsearch.retriever.dense:DenseEncoder", "sparsearch.retriever.dense:DenseConfig"),
}


def _import(target: str | type) -> Any:
    if not isinstance(target, str):
        return target
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def encoder_names() -> list[str]:
    """Every registered encoder name, sorted."""
    return sorted(_ENCODERS)


def _known() -> str:
    return ", ".join(encoder_names())


def encoder_class(name: str) -> Any:
    """The class whose ``load`` rebuilds an encoder saved under ``name`` (a manifest's encoder name)."""
    entry = _ENCODERS.get(name)
    if entry is None:
        raise IndexFormatError(f"unknown encoder {name!r} (known: {_known()})")
    return _import(entry.target)


def register_encoder(name: str, target: str, config: str | type | None = None) -> None:
    """Register ``"package.module:Class"`` under ``name``; ``config``, its config dataclass, lets
    :func:`build_encoder` build it (without one the encoder can only be loaded from a manifest)."""
    _ENCODERS[name] = EncoderEntry(target, config)


def config_class(name: str) -> type | None:
    """The config dataclass of encoder ``name`` (``None`` if it registered none)."""
    config = _entry(name).config
    return None if config is None else _import(config)


def _entry(name: str) -> EncoderEntry:
    entry = _ENCODERS.get(name)
    if entry is None:
        raise EncoderError(f"unknown encoder {name!r} (known: {_known()})")
    return entry


def _checked_settings(name: str, cls: type, settings: Mapping[str, Any] | None,
                      model: ModelLocation | None) -> dict[str, Any]:
    """``settings`` as a dict, with ``model`` folded in, every key a field of ``cls`` and required fields present."""
    values = dict(settings or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if model is not None:
        if "model_dir" not in fields:
            raise EncoderError(f"encoder {name!r} takes no model")
        if "model_dir" in values:
            raise EncoderError(f"encoder {name!r}: give the model as model= or as setting model_dir, not both")
        values["model_dir"], values["model"] = str(model.path), model.name
    unknown = sorted(set(values) - set(fields))
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise EncoderError(f"unknown setting{plural} {', '.join(map(repr, unknown))} for encoder {name!r} "
                           f"(known: {', '.join(sorted(fields))})")
    missing = [n for n, f in fields.items() if n not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing == ["model_dir"]:
        raise EncoderError(f"encoder {name!r} needs a model: setting model_dir (a model folder, a shipped model "
                           "name or a Hugging Face id)")
    if missing:
        raise EncoderError(f"encoder {name!r} needs setting{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    return values


def encoder_config(name: str, settings: Mapping[str, Any] | None = None, *,
                   model: ModelLocation | None = None) -> Any:
    """The config dataclass of encoder ``name`` built from ``settings`` (keys checked, see :func:`build_encoder`)."""
    cls = config_class(name)
    if cls is None:
        raise EncoderError(f"encoder {name!r} registered no config class: it can be loaded, not built")
    values = _checked_settings(name, cls, settings, model)
    try:
        return cls(**values)
    except TypeError as e:  # a value of the wrong type, found by __post_init__'s comparisons
        raise EncoderError(f"bad settings for encoder {name!r}: {e}") from None


def build_encoder(name: str, settings: Mapping[str, Any] | None = None, *,
                  model: ModelLocation | None = None) -> "SparseEncoder":
    """A new encoder ``name`` with ``settings`` (the fields of its config dataclass; defaults for the rest).

    Learned encoders take a model: the setting ``model_dir`` (a folder, a
    shipped model's name or a Hugging Face id, resolved by the config) with
    an optional ``model`` name, or ``model=`` an already resolved model (its
    folder and name become ``model_dir`` and ``model``).  ``splade`` and
    ``dense`` need one; ``inference-free`` without one uses
    :data:`~sparsearch.retriever.resolve.DEFAULT_INFERENCE_FREE_MODEL` (the
    config's default ``model_dir``).  An unknown name or
    setting raises :class:`EncoderError` naming it and the known ones; a bad
    value raises the config's own ``ValueError``.
    """
    entry = _entry(name)
    encoder_cls = _import(entry.target)
    from_settings = getattr(encoder_cls, "from_settings", None)
    if from_settings is not None:
        cls = config_class(name)
        if cls is not None:
            values = _checked_settings(name, cls, settings, model)
        else:  # no config class to check against: the hook checks its settings itself
            values = dict(settings or {})
            if model is not None:
                values.update(model_dir=str(model.path), model=model.name)
        try:
            return from_settings(values)
        except TypeError as e:
            raise EncoderError(f"bad settings for encoder {name!r}: {e}") from None
    return encoder_cls(encoder_config(name, settings, model=model))

"""``sparsearch models list|path|export``: models by name, and the sentence-transformers layout (docs/learned_sparse.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from sparsearch.errors import SparsearchError

models_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Models by name: the shipped ones, where a name resolves, sentence-transformers export.")

MODEL_HELP = ("A model folder, a shipped model name (inference-free-general) or a Hugging "
              "Face id (org/name).")


def _fail(error: Exception) -> None:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(2)


@models_app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="One JSON object per model.")) -> None:
    """The models shipped with sparsearch, and the folder each resolves to here (or "not installed").

    The default inference-free model is marked; a model's deprecated former
    names (still accepted) are listed with it.
    """
    from sparsearch.retriever.resolve import (DEFAULT_INFERENCE_FREE_MODEL, DEPRECATED_MODEL_NAMES, SHIPPED_MODELS,
                                              find_shipped_model, shipped_model_dirs)

    for name, about in SHIPPED_MODELS.items():
        folder = find_shipped_model(name)
        default = name == DEFAULT_INFERENCE_FREE_MODEL
        former = [old for old, new in DEPRECATED_MODEL_NAMES.items() if new == name]
        if as_json:
            typer.echo(json.dumps({"name": name, "about": about, "path": str(folder) if folder else None,
                                   "default": default, "deprecated_names": former}))
        else:
            marks = (" (default)" if default else "") + (f" (formerly {', '.join(former)})" if former else "")
            typer.echo(f"{name}{marks}  {folder or 'not installed'}\n    {about}")
    if not as_json:
        typer.echo("searched: " + ", ".join(str(d) for d in shipped_model_dirs()))


@models_app.command("path")
def path_command(model: str = typer.Argument(..., help=MODEL_HELP)) -> None:
    """Print the local folder a model name resolves to (Hugging Face ids: the cache, else a download)."""
    from sparsearch.retriever.resolve import resolve_model
    from sparsearch.retriever.st_format import describe_model

    try:
        found = resolve_model(model)
        layout = describe_model(found.path)
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    typer.echo(str(found.path))
    typer.echo(f"{found.source}; {layout.format} layout; {layout.kind}", err=True)


@models_app.command("export")
def export_command(
    model: str = typer.Argument(..., help=MODEL_HELP),
    out: Path = typer.Argument(..., help="Output folder (new or empty; a native SPLADE folder itself: in place)."),
    kind: Optional[str] = typer.Option(None, help="splade or inference-free (default: inference-free when the "
                                       "model has an idf.json)."),
    max_seq_length: int = typer.Option(256, help="Token limit sentence-transformers will apply."),
) -> None:
    """Write a model as a sentence-transformers SparseEncoder folder (loads in sparsearch too)."""
    from sparsearch.retriever.st_format import describe_model, save_sentence_transformers

    try:
        written = save_sentence_transformers(model, out, kind=kind, max_seq_length=max_seq_length)
        layout = describe_model(written)
    except (SparsearchError, ValueError, OSError) as e:
        _fail(e)
    typer.echo(f"wrote {layout.kind} SparseEncoder folder {written} (SparseEncoder(\"{written}\") loads it; "
               f"so does --model {written})")

"""``sparsearch adapt MODEL CORPUS --out DIR``: an inference-free model fitted to a corpus from its documents alone.

See :mod:`sparsearch.training.adapt` (docs/general_model.md has the measurements).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from sparsearch.cli_common import _fail
from sparsearch.errors import SparsearchError


def adapt_command(
    model: str = typer.Argument(..., help="An inference-free model folder or shipped name (e.g. the default "
                                          "general model)."),
    corpus: Path = typer.Argument(..., help="The corpus to adapt to: corpus.jsonl or a BEIR folder (documents only)."),
    out: Optional[Path] = typer.Option(None, "--out", help="New folder for the adapted model (must not exist or be "
                                                         "empty); required unless --save-dense-embeddings."),
    dense_teacher: Optional[str] = typer.Option(None, "--dense-teacher", help="Add a dense bi-encoder to the "
                                                "teachers (a folder or name, e.g. all-minilm-l6-v2)."),
    dense_embeddings: Optional[Path] = typer.Option(None, "--dense-embeddings", help="A dense teacher given by its "
                                                    "embeddings, saved ahead with --save-dense-embeddings (same "
                                                    "corpus, --seed and --max-queries): carry them, not its weights."),
    save_dense_embeddings: Optional[Path] = typer.Option(None, "--save-dense-embeddings", help="Only embed this run's "
                                                         "documents and pseudo-queries with --dense-teacher into "
                                                         "this .npz, and stop (no training; --out is not written)."),
    steps: int = typer.Option(300, help="Training steps (300: the setting measured in docs/general_model.md)."),
    max_queries: int = typer.Option(20000, help="Pseudo-queries drawn (at most 2 per document)."),
    batch_size: int = typer.Option(32, help="Pseudo-queries per step (each with 7 candidates)."),
    micro_batch: Optional[int] = typer.Option(None, "--micro-batch", help="Pseudo-queries per forward pass "
                                              "(gradients add up to --batch-size): default all of them on a GPU, "
                                              "4 on a CPU (8 GB peak measured with the general model)."),
    lr: float = typer.Option(2e-5, help="Learning rate."),
    device: str = typer.Option("auto", help="auto (a GPU where present), cpu or cuda."),
    seed: int = typer.Option(13, help="Seed of pseudo-query sampling and training."),
) -> None:
    """Adapt an inference-free model to CORPUS: pseudo-queries + BM25/self(/dense) teachers, corpus IDF."""
    try:
        from sparsearch.errors import InputError
        from sparsearch.training.adapt import AdaptConfig, adapt, save_dense_embeddings as save_embeddings

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        if save_dense_embeddings is not None:
            if not dense_teacher:
                raise InputError("--save-dense-embeddings needs --dense-teacher (the model to embed with)")
            config = AdaptConfig(model=model, corpus=str(corpus), out=str(out or ""), max_queries=max_queries,
                                 device=device, seed=seed)
            saved = save_embeddings(config, dense_teacher, save_dense_embeddings)
            typer.echo(f"dense teacher embeddings written to {saved}")
            return
        if out is None:
            raise InputError("--out is required (the folder for the adapted model)")
        folder = adapt(AdaptConfig(model=model, corpus=str(corpus), out=str(out), dense_teacher=dense_teacher,
                                   dense_embeddings=str(dense_embeddings) if dense_embeddings else None,
                                   steps=steps, max_queries=max_queries, batch_size=batch_size, lr=lr, device=device,
                                   seed=seed, micro_batch=micro_batch))
    except (SparsearchError, ValueError, OSError) as error:
        _fail(error)
    typer.echo(f"adapted model written to {folder}")

"""``sparsearch datasets list|get``: the datasets sparsearch can fetch by name (docs/datasets.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from sparsearch.errors import SparsearchError

datasets_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="BEIR datasets by name: list them, fetch them into the cache.")

CACHE_DIR_HELP = "Cache folder (default: $SPARSEARCH_CACHE, else ~/.cache/sparsearch)."


def _fail(error: Exception) -> None:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(2)


def _log(message: str) -> None:
    typer.echo(message, err=True)


@datasets_app.command("list")
def list_command(
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per dataset."),
) -> None:
    """Every dataset name `eval` and `datasets get` accept, its checksum and whether it is cached."""
    from sparsearch.datasets import cache_root, dataset_path, registry

    try:
        known = registry()
        root = cache_root(cache_dir)
    except SparsearchError as e:
        _fail(e)
    rows = []
    for name, info in known.items():
        folder = dataset_path(name, root)
        rows.append({**info.as_dict(), "cached": str(folder) if folder.is_dir() else None})
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    typer.echo(f"{'name':<18} {'docs':>6} {'queries':>7}  {'splits':<15} {'checksum':<10} cached")
    for row in rows:
        checksum = "+".join(a for a in ("md5", "sha256") if row[a]) or "none"
        if row["url"] is None:
            checksum = "-"
        cached = "yes" if row["cached"] else ("not downloadable" if row["url"] is None else "")
        queries = "" if row["queries"] is None else str(row["queries"])
        typer.echo(f"{row['name']:<18} {row['docs']:>6} {queries:>7}  {','.join(row['splits']):<15} "
                   f"{checksum:<10} {cached}".rstrip())
        if row["subsets"]:
            typer.echo(f"{'':<18} subsets: {', '.join(row['name'] + '/' + s for s in row['subsets'])}")
    typer.echo(f"cache: {root}")


@datasets_app.command("get")
def get_command(
    name: str = typer.Argument(..., help="Dataset name (see `sparsearch datasets list`) or irds:ID."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP),
    force: bool = typer.Option(False, "--force", help="Download again even if cached."),
    progress: bool = typer.Option(True, help="Show a progress bar (on a terminal)."),
    retries: int = typer.Option(2, min=0, help="Resume an interrupted transfer this many times before giving up."),
) -> None:
    """Download NAME into the cache (checksummed, resumable) and print its folder."""
    from sparsearch.datasets import cache_root, get_dataset, get_irds, is_irds

    try:
        if is_irds(name):
            folder = get_irds(name, cache_root(cache_dir), force=force, log=_log)
        else:
            folder = get_dataset(name, cache_dir, force=force, progress=progress, retries=retries, log=_log)
    except (SparsearchError, OSError) as e:
        _fail(e)
    typer.echo(str(folder))

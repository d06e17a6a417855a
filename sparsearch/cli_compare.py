"""``sparsearch compare QRELS RUN_A RUN_B``: is run B better than run A beyond noise?

The question every change to a ranker raises (a new model, a setting, a
checkpoint): two TREC runs over the same judged queries, one measure per
query (zero for a query a run misses, as ``trec_eval -c`` counts it), the
mean difference and the paired t-test and randomization test of
:mod:`sparsearch.eval.significance`.  What ``trec_eval -q`` plus a
spreadsheet gives, in one command.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sparsearch.cli_common import _fail
from sparsearch.errors import SparsearchError


def compare_command(
    qrels: Path = typer.Argument(..., help="Judgements: a BEIR qrels .tsv or a TREC qrels file."),
    run_a: Path = typer.Argument(..., help="The baseline run (TREC format: qid Q0 docid rank score tag)."),
    run_b: Path = typer.Argument(..., help="The run compared with it."),
    measure: str = typer.Option("ndcg_cut_10", help="ndcg_cut_10, recall_100, recall_1000 or recip_rank (MRR@10)."),
    by_rank: bool = typer.Option(False, "--by-rank", help="Order each run by its rank column instead of its "
                                 "scores (sparsearch's own convention; trec_eval re-sorts by score)."),
    rounds: int = typer.Option(20000, help="Sign flips of the randomization test."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Compare two runs query by query: means, difference, paired t-test and randomization test."""
    try:
        result = compare_runs(qrels, run_a, run_b, measure, by_rank, rounds)
    except (SparsearchError, ValueError, OSError) as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    typer.echo(f"{result['queries']} judged queries, {measure}"
               f"{' (run order by rank)' if by_rank else ''}")
    typer.echo(f"  A {run_a}: {result['mean_a']:.4f}")
    typer.echo(f"  B {run_b}: {result['mean_b']:.4f}")
    typer.echo(f"  B - A: {result['difference']:+.4f} ± {result['stderr']:.4f} (standard error); "
               f"paired t-test p = {result['t_test_p']:.4g}, randomization p = {result['randomization_p']:.4g}")
    typer.echo(f"  B better on {result['better']}, worse on {result['worse']}, tied on {result['ties']}")


def compare_runs(qrels_path: Path, run_a: Path, run_b: Path, measure: str = "ndcg_cut_10", by_rank: bool = False,
                 rounds: int = 20000) -> dict[str, object]:
    """:func:`compare_command`'s result as a dict (the command prints it)."""
    from sparsearch.errors import InputError
    from sparsearch.eval.datasets import read_qrels
    from sparsearch.eval.metrics import DEFAULT_MEASURES, per_query
    from sparsearch.eval.runs import read_trec
    from sparsearch.eval.significance import paired_comparison

    if measure not in DEFAULT_MEASURES:
        raise InputError(f"unknown measure {measure!r}; one of {', '.join(DEFAULT_MEASURES)}", field="measure")
    qrels = read_qrels(Path(qrels_path))
    if not qrels:
        raise InputError("no judgements in the qrels file", path=qrels_path)
    values = []
    for path in (run_a, run_b):
        run = read_trec(path, by_rank=by_rank)
        if not set(run) & set(qrels):
            raise InputError("no query of this run is judged in the qrels (different query ids?)", path=path)
        values.append({q: v[measure] for q, v in per_query(qrels, run).items()})
    comparison = paired_comparison(values[0], values[1], rounds=rounds)
    return {"measure": measure, "run_a": str(run_a), "run_b": str(run_b), **comparison.to_dict()}

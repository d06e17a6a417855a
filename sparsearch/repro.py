"""A reproducibility matrix: (dataset, encoder, settings) -> expected metrics, checked by running them.

Like Pyserini's two-click reproductions: one YAML file (``configs/repro.yaml``)
lists every published number with the settings that produced it;
``sparsearch repro`` rebuilds each index and evaluates it through the same
code path as ``sparsearch eval`` (:func:`sparsearch.eval.beir.evaluate_beir`,
speed measurements off), prints expected against measured, and ``--check``
exits 1 when any metric is further from its expected value than the
tolerance.  ``--markdown FILE`` writes the results table (``docs/repro.md``).

Matrix format (YAML, or the same structure as JSON)::

    version: 1
    defaults:                 # optional; every key may be overridden per entry
      split: test
      k: 1000                 # hits per query (Recall@1000 needs 1000)
      tolerance: 0.0005       # absolute, per metric; or {ndcg@10: 0.001, recall@100: 0.002}
    entries:
      - name: bm25-scifact    # unique; what --only selects (shell patterns allowed)
        dataset: beir/scifact # see "Datasets" below
        encoder: bm25         # bm25, splade or inference-free
        model: inference-free-general  # learned encoders: a folder or a model name
        settings: {k1: 0.9, b: 0.4}    # the encoder's config fields (BM25Config, SpladeConfig, ...)
        expected: {ndcg@10: 0.6789, recall@100: 0.9253}
        slow: false           # slow entries run only with --slow or when --only names them
        note: free text

Metrics: ``ndcg@10``, ``recall@100``, ``recall@1000``, ``mrr@10`` (or
pytrec_eval's names ``ndcg_cut_10``, ``recall_100``, ``recall_1000``,
``recip_rank``).

Datasets: a path relative to the data folder (``--data``, else
``$SPARSEARCH_DATA``, else ``shared/data`` beside the checkout), else relative
to the matrix file (or absolute); failing both, the last path component as a
dataset name (``sparsearch datasets``: from the cache, downloaded with
``--download``).  A dataset found nowhere is an error, and fails ``--check``:
a reproduction that silently skipped its data proves nothing.

Models: a folder (relative to the matrix file, or to the repository root),
else a name for :mod:`sparsearch.retriever.resolve` (shipped models, Hugging
Face ids).
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sparsearch.errors import InputError, MissingDependencyError, SparsearchError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MATRIX = REPO_ROOT / "configs" / "repro.yaml"
DEFAULT_TOLERANCE = 0.0005

#: Matrix metric name -> (pytrec_eval name, column title).
METRICS: dict[str, tuple[str, str]] = {
    "ndcg@10": ("ndcg_cut_10", "NDCG@10"),
    "recall@100": ("recall_100", "R@100"),
    "recall@1000": ("recall_1000", "R@1000"),
    "mrr@10": ("recip_rank", "MRR@10"),
}
_ALIASES = {trec: name for name, (trec, _) in METRICS.items()}
ENCODERS = ("bm25", "splade", "inference-free")
_ENTRY_KEYS = {"name", "dataset", "encoder", "model", "settings", "expected", "slow", "note", "split", "k",
               "tolerance"}


class MatrixError(InputError):
    """A matrix file that cannot be used as written."""


@dataclass
class Entry:
    name: str
    dataset: str
    encoder: str
    expected: dict[str, float]  # by matrix metric name
    tolerance: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    split: str = "test"
    k: int = 1000
    slow: bool = False
    note: str = ""


@dataclass
class Matrix:
    path: Path
    entries: list[Entry]


@dataclass
class MetricResult:
    metric: str
    expected: float
    measured: float | None
    tolerance: float

    @property
    def delta(self) -> float | None:
        return None if self.measured is None else self.measured - self.expected

    @property
    def ok(self) -> bool:
        # Rounded to 10 places: an expected value written with 4 decimals and a tolerance of
        # 0.0005 must not fail on float noise at exactly the boundary.
        return self.measured is not None and round(abs(self.measured - self.expected), 10) <= self.tolerance


@dataclass
class EntryResult:
    entry: Entry
    status: str  # "ok", "deviation", "error", "skipped"
    metrics: list[MetricResult] = field(default_factory=list)
    seconds: float | None = None
    message: str = ""
    dataset_dir: str | None = None

    @property
    def failed(self) -> bool:
        return self.status in ("deviation", "error")


# ---------------------------------------------------------------- reading the matrix


def _read_structure(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MatrixError("no such matrix file", path=path) from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise MatrixError(f"not valid JSON ({e.msg})", path=path, line=e.lineno) from None
    try:
        import yaml
    except ImportError:
        raise MissingDependencyError("reading a YAML matrix needs PyYAML: pip install pyyaml "
                                     "(or write the matrix as .json)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise MatrixError(f"not valid YAML ({getattr(e, 'problem', None) or e})", path=path,
                          line=mark.line + 1 if mark is not None else None) from None


def _metric_name(name: Any, path: Path, entry: str) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in METRICS:
        raise MatrixError(f"entry {entry!r}: unknown metric {name!r} (known: {', '.join(METRICS)})", path=path)
    return key


def _number(value: Any, what: str, path: Path, lo: float = 0.0, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (lo <= float(value) <= hi):
        raise MatrixError(f"{what} must be a number in [{lo}, {hi}], got {value!r}", path=path)
    return float(value)


def _tolerances(value: Any, metrics: list[str], path: Path, entry: str) -> dict[str, float]:
    if isinstance(value, dict):
        tol = {_metric_name(m, path, entry): _number(v, f"entry {entry!r}: tolerance of {m}", path, 0.0, 1.0)
               for m, v in value.items()}
        missing = [m for m in metrics if m not in tol]
        if missing:
            raise MatrixError(f"entry {entry!r}: no tolerance for {', '.join(missing)}", path=path)
        return tol
    t = _number(value, f"entry {entry!r}: tolerance", path, 0.0, 1.0)
    return {m: t for m in metrics}


def load_matrix(path: str | Path) -> Matrix:
    """Parse and validate a matrix file; every problem is a :class:`MatrixError` naming the file and entry."""
    p = Path(path)
    raw = _read_structure(p)
    if not isinstance(raw, dict) or not isinstance(raw.get("entries"), list):
        raise MatrixError("expected a mapping with an 'entries' list", path=p)
    if raw.get("version", 1) != 1:
        raise MatrixError(f"unsupported matrix version {raw.get('version')!r} (this sparsearch reads version 1)",
                          path=p)
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise MatrixError("'defaults' must be a mapping", path=p)
    unknown = set(defaults) - {"split", "k", "tolerance", "settings"}
    if unknown:
        raise MatrixError(f"unknown key(s) in defaults: {', '.join(sorted(unknown))}", path=p)
    entries: list[Entry] = []
    seen: set[str] = set()
    for i, item in enumerate(raw["entries"], start=1):
        if not isinstance(item, dict):
            raise MatrixError(f"entry #{i} must be a mapping", path=p)
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise MatrixError(f"entry #{i} needs a 'name'", path=p)
        if name in seen:
            raise MatrixError(f"two entries are named {name!r}", path=p)
        seen.add(name)
        unknown = set(item) - _ENTRY_KEYS
        if unknown:
            raise MatrixError(f"entry {name!r}: unknown key(s) {', '.join(sorted(unknown))}", path=p)
        for key in ("dataset", "encoder", "expected"):
            if key not in item:
                raise MatrixError(f"entry {name!r} needs {key!r}", path=p)
        if not isinstance(item["dataset"], str) or not item["dataset"]:
            raise MatrixError(f"entry {name!r}: 'dataset' must be a non-empty string", path=p)
        encoder = item["encoder"]
        if encoder not in ENCODERS:
            raise MatrixError(f"entry {name!r}: unknown encoder {encoder!r} (known: {', '.join(ENCODERS)})", path=p)
        model = item.get("model")
        if encoder != "bm25" and not (isinstance(model, str) and model):
            raise MatrixError(f"entry {name!r}: encoder {encoder} needs 'model' (a folder or model name)", path=p)
        if encoder == "bm25" and model is not None:
            raise MatrixError(f"entry {name!r}: bm25 takes no model", path=p)
        settings = {**(defaults.get("settings") or {}), **(item.get("settings") or {})}
        if not isinstance(item.get("settings") or {}, dict):
            raise MatrixError(f"entry {name!r}: 'settings' must be a mapping", path=p)
        if "model_dir" in settings:
            raise MatrixError(f"entry {name!r}: give the model as 'model', not settings.model_dir", path=p)
        expected_raw = item["expected"]
        if not isinstance(expected_raw, dict) or not expected_raw:
            raise MatrixError(f"entry {name!r}: 'expected' must map metrics to values", path=p)
        expected = {_metric_name(m, p, name): _number(v, f"entry {name!r}: expected {m}", p, 0.0, 1.0)
                    for m, v in expected_raw.items()}
        tolerance = _tolerances(item.get("tolerance", defaults.get("tolerance", DEFAULT_TOLERANCE)),
                                list(expected), p, name)
        split = item.get("split", defaults.get("split", "test"))
        k = item.get("k", defaults.get("k", 1000))
        if not isinstance(split, str) or not split:
            raise MatrixError(f"entry {name!r}: 'split' must be a string", path=p)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise MatrixError(f"entry {name!r}: 'k' must be an integer >= 1", path=p)
        slow = item.get("slow", False)
        if not isinstance(slow, bool):
            raise MatrixError(f"entry {name!r}: 'slow' must be true or false", path=p)
        entries.append(Entry(name=name, dataset=item["dataset"], encoder=encoder, expected=expected,
                             tolerance=tolerance, settings=settings, model=model, split=split, k=k, slow=slow,
                             note=str(item.get("note") or "")))
    return Matrix(p, entries)


def select(matrix: Matrix, only: list[str] | None = None, slow: bool = False) -> list[tuple[Entry, bool]]:
    """``(entry, run_it)`` for every entry ``only`` selects (all by default); slow ones run if asked for."""
    out = []
    matched: set[str] = set()
    for entry in matrix.entries:
        hits = [pat for pat in (only or []) if fnmatch.fnmatchcase(entry.name, pat)]
        matched.update(hits)
        if only and not hits:
            continue
        # A slow entry named outright (not through a pattern) runs: the user asked for it.
        out.append((entry, slow or not entry.slow or entry.name in (only or [])))
    unmatched = [pat for pat in (only or []) if pat not in matched]
    if unmatched:
        raise MatrixError(f"--only {', '.join(unmatched)}: no such entry "
                          f"(entries: {', '.join(e.name for e in matrix.entries)})", path=matrix.path)
    return out


# ---------------------------------------------------------------- running


def data_roots(explicit: str | Path | None = None) -> list[Path]:
    """Where ``dataset: beir/scifact`` is looked up, in order."""
    roots = []
    if explicit:
        roots.append(Path(explicit))
    if os.environ.get("SPARSEARCH_DATA"):
        roots.append(Path(os.environ["SPARSEARCH_DATA"]))
    roots.append(REPO_ROOT.parent / "shared" / "data")
    return roots


def resolve_dataset_dir(entry: Entry, matrix_dir: Path, data: str | Path | None = None,
                        download: bool = False) -> Path:
    """The BEIR folder of an entry (see the module docstring for the order)."""
    candidates = [root / entry.dataset for root in data_roots(data)]
    candidates.append(matrix_dir / entry.dataset)
    for c in candidates:
        if (c / "queries.jsonl").exists() or (c / "corpus.jsonl").exists():
            return c
    name = Path(entry.dataset).name
    try:
        from sparsearch.datasets import resolve_dataset

        return Path(resolve_dataset(name, split=entry.split, download=download))
    except ImportError:
        pass
    except SparsearchError as e:
        tried = ", ".join(str(c) for c in candidates[:-1])
        raise InputError(f"dataset {entry.dataset!r} not found (looked in {tried}; set SPARSEARCH_DATA or --data"
                         f"{'' if download else ', or pass --download for a BEIR set'}): {e}") from None
    raise InputError(f"dataset {entry.dataset!r} not found (looked in "
                     f"{', '.join(str(c) for c in candidates)}; set SPARSEARCH_DATA or --data)")


def resolve_model_dir(model: str, matrix_dir: Path) -> Path:
    for base in (matrix_dir, REPO_ROOT):
        candidate = Path(model).expanduser() if Path(model).is_absolute() else base / model
        if candidate.is_dir():
            return candidate.resolve()
    try:
        from sparsearch.retriever.resolve import resolve_model
    except ImportError:
        raise InputError(f"model {model!r}: no such folder (relative to {matrix_dir} or {REPO_ROOT})") from None
    return Path(resolve_model(model).path)


def make_encoder(entry: Entry, matrix_dir: Path) -> Any:
    """The encoder an entry names, with its settings (unknown settings are an error naming the entry)."""
    from sparsearch.retriever.registry import EncoderError, build_encoder

    settings = dict(entry.settings)
    if entry.encoder != "bm25":
        assert entry.model is not None
        settings["model_dir"] = str(resolve_model_dir(entry.model, matrix_dir))
    try:
        return build_encoder(entry.encoder, settings)
    except EncoderError as e:
        raise InputError(f"entry {entry.name!r}: bad settings for {entry.encoder} ({e})") from None


def run_entry(entry: Entry, matrix_dir: Path, data: str | Path | None = None, download: bool = False) -> EntryResult:
    """Build, evaluate and compare one entry; failures become an ``error`` result, not an exception."""
    from sparsearch.eval.beir import EvalSettings, evaluate_beir

    t = time.perf_counter()
    dataset_dir = None
    try:
        dataset_dir = resolve_dataset_dir(entry, matrix_dir, data, download)
        encoder = make_encoder(entry, matrix_dir)
        report = evaluate_beir(dataset_dir, encoder=encoder,
                               settings=EvalSettings(split=entry.split, k=entry.k, measure_speed=False),
                               log_warnings=False)
    except (SparsearchError, ValueError, OSError) as e:
        return EntryResult(entry, "error", [MetricResult(m, v, None, entry.tolerance[m])
                                            for m, v in entry.expected.items()],
                           time.perf_counter() - t, str(e), str(dataset_dir) if dataset_dir else None)
    metrics = [MetricResult(m, v, float(report["metrics"][METRICS[m][0]]), entry.tolerance[m])
               for m, v in entry.expected.items()]
    status = "ok" if all(r.ok for r in metrics) else "deviation"
    message = "; ".join(report.get("warnings") or [])
    return EntryResult(entry, status, metrics, time.perf_counter() - t, message, str(dataset_dir))


def run_matrix(matrix: Matrix, only: list[str] | None = None, slow: bool = False, data: str | Path | None = None,
               download: bool = False, progress: Callable[[str], None] | None = None) -> list[EntryResult]:
    results = []
    for entry, run_it in select(matrix, only, slow):
        if not run_it:
            results.append(EntryResult(entry, "skipped", [MetricResult(m, v, None, entry.tolerance[m])
                                                          for m, v in entry.expected.items()],
                                       message="slow: run with --slow (or --only NAME)"))
            continue
        if progress:
            progress(f"running {entry.name} ({entry.encoder} on {entry.dataset}"
                     f"{', slow' if entry.slow else ''}) ...")
        result = run_entry(entry, matrix.path.parent, data, download)
        if progress:
            progress(f"  {entry.name}: {result.status} in {result.seconds:.1f}s")
        results.append(result)
    return results


# ---------------------------------------------------------------- reporting


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def _settings_text(entry: Entry) -> str:
    parts = [f"{k}={v}" for k, v in entry.settings.items()]
    if entry.model:
        parts.insert(0, f"model={entry.model}")
    if entry.split != "test":
        parts.append(f"split={entry.split}")
    return ", ".join(parts) or "defaults"


STATUS_TEXT = {"ok": "ok", "deviation": "DEVIATION", "error": "ERROR", "skipped": "skipped"}


def format_table(results: list[EntryResult]) -> str:
    """Plain-text table, one row per (entry, metric), with the deviation from the expected value."""
    header = ("entry", "dataset", "encoder", "metric", "expected", "measured", "delta", "tol", "status")
    rows = [header]
    for r in results:
        for m in r.metrics:
            status = STATUS_TEXT[r.status] if r.status in ("error", "skipped") else ("ok" if m.ok else "DEVIATION")
            rows.append((r.entry.name, r.entry.dataset, r.entry.encoder, METRICS[m.metric][1], _fmt(m.expected),
                         _fmt(m.measured), _fmt(m.delta, signed=True), f"{m.tolerance:g}", status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        if r.status == "error" or (r.message and r.status != "skipped"):
            lines.append(f"{r.entry.name}: {'error: ' if r.status == 'error' else 'warning: '}{r.message}")
    return "\n".join(lines)


def summary_line(results: list[EntryResult]) -> str:
    count = {s: sum(r.status == s for r in results) for s in STATUS_TEXT}
    return (f"{count['ok']} ok, {count['deviation']} deviating, {count['error']} failed, "
            f"{count['skipped']} skipped (of {len(results)} entries)")


def markdown(results: list[EntryResult], matrix: Matrix, command: str, env: dict[str, Any] | None = None) -> str:
    """The results table for the docs, generated (never edited by hand); ``env``: where it ran (default: here)."""
    from sparsearch.eval.beir import environment

    env = env or environment()
    metric_names = [m for m in METRICS if any(m in r.entry.expected for r in results)]
    try:
        matrix_name = matrix.path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        matrix_name = str(matrix.path)
    lines = [
        "# Reproducibility matrix",
        "",
        f"Generated by `{command}` from [`{matrix_name}`](../{matrix_name}) on "
        f"{datetime.date.today().isoformat()}: do not edit by hand; change the matrix and regenerate.",
        f"Machine: {env.get('machine')}, {env.get('cpus')} CPUs, Python {env.get('python')}, "
        f"numpy {env.get('numpy')}, numba {env.get('numba')}, commit {env.get('commit') or 'unknown'}.",
        "",
        "Each row builds the index from scratch and evaluates it with `sparsearch eval`'s code path "
        "(k = 1000 unless stated). *Expected* is the matrix's value, *measured* this run's; a row passes "
        "when every metric is within its tolerance (absolute). Rows marked slow encode the corpus with a "
        "learned model on CPU and run only with `--slow`; *seconds* is the wall-clock time of build and "
        "evaluation on this machine, shared with other jobs during the run.",
        "",
    ]
    head = ["entry", "dataset", "encoder", "settings"]
    for m in metric_names:
        head += [f"{METRICS[m][1]} expected", f"{METRICS[m][1]} measured"]
    head += ["tolerance", "status", "seconds"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in results:
        by_metric = {m.metric: m for m in r.metrics}
        cells = [r.entry.name + (" (slow)" if r.entry.slow else ""), r.entry.dataset, r.entry.encoder,
                 _settings_text(r.entry)]
        for m in metric_names:
            res = by_metric.get(m)
            if res is None:
                cells += ["", ""]
                continue
            measured = _fmt(res.measured)
            if res.measured is not None and not res.ok:
                measured = f"**{measured}**"
            cells += [_fmt(res.expected), measured]
        tolerances = sorted({f"{m.tolerance:g}" for m in r.metrics})
        status = {"ok": "ok", "deviation": "**deviation**", "error": "**error**", "skipped": "not run"}[r.status]
        cells += ["/".join(tolerances), status, "" if r.seconds is None else f"{r.seconds:.1f}"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    notes = [(r.entry.name, r.entry.note) for r in results if r.entry.note]
    if notes:
        lines += ["", "Notes:", ""] + [f"* **{name}**: {note}" for name, note in notes]
    lines += ["", summary_line(results) + ".", ""]
    return "\n".join(lines)


def results_json(results: list[EntryResult]) -> dict[str, Any]:
    """The report ``--report`` writes: where it ran, and every entry's expected and measured values."""
    from sparsearch.eval.beir import environment

    return {"environment": environment(), "results": _entries_json(results)}


def load_report(path: str | Path, matrix: Matrix) -> tuple[list[EntryResult], dict[str, Any] | None]:
    """Results of an earlier ``--report`` for the matrix's entries (to re-render them without running again).

    Expected values and tolerances come from the matrix as it is now; an
    entry the report lacks is shown as not run.
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no such report file", path=p) from None
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e.msg})", path=p, line=e.lineno) from None
    rows = raw.get("results") if isinstance(raw, dict) else raw
    env = raw.get("environment") if isinstance(raw, dict) else None
    if not isinstance(rows, list):
        raise InputError("expected a report written by sparsearch repro --report", path=p)
    by_name = {r.get("name"): r for r in rows if isinstance(r, dict)}
    out = []
    for entry in matrix.entries:
        row = by_name.get(entry.name)
        if row is None or row.get("status") == "skipped":
            out.append(EntryResult(entry, "skipped", [MetricResult(m, v, None, entry.tolerance[m])
                                                      for m, v in entry.expected.items()], message="not in report"))
            continue
        measured = {m: (v or {}).get("measured") for m, v in (row.get("metrics") or {}).items()}
        metrics = [MetricResult(m, v, measured.get(m), entry.tolerance[m]) for m, v in entry.expected.items()]
        status = "error" if row.get("status") == "error" else ("ok" if all(r.ok for r in metrics) else "deviation")
        out.append(EntryResult(entry, status, metrics, row.get("seconds"), row.get("message") or "",
                               row.get("dataset_dir")))
    return out, env


def _entries_json(results: list[EntryResult]) -> list[dict[str, Any]]:
    return [{"name": r.entry.name, "dataset": r.entry.dataset, "dataset_dir": r.dataset_dir,
             "encoder": r.entry.encoder, "model": r.entry.model, "settings": r.entry.settings,
             "split": r.entry.split, "k": r.entry.k, "status": r.status, "seconds": r.seconds,
             "message": r.message,
             "metrics": {m.metric: {"expected": m.expected, "measured": m.measured, "delta": m.delta,
                                    "tolerance": m.tolerance, "ok": m.ok} for m in r.metrics}}
            for r in results]

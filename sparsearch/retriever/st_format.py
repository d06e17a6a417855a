"""sentence-transformers ``SparseEncoder`` folders: read them, and write sparsearch's models in that layout.

sentence-transformers (≥ 5) saves a sparse model as a ``modules.json`` list of
modules, each in a sub-folder (``path``) with its own config:

SPLADE (siamese)::

    modules.json            [MLMTransformer (path ""), SpladePooling (path "1_SpladePooling")]
    config.json, model.safetensors, tokenizer.json, ...   the Hugging Face *ForMaskedLM at the root
    sentence_bert_config.json                             {"max_seq_length": ..., "do_lower_case": false}
    1_SpladePooling/config.json   {"pooling_strategy": "max", "activation_function": "relu", ...}
    config_sentence_transformers.json                     {"model_type": "SparseEncoder", ...}

Inference-free (a ``Router``, ``Asym`` before 5.0)::

    modules.json            [Router (path "")]
    router_config.json      {"types": {id: class}, "structure": {"query": [ids], "document": [ids]},
                             "parameters": {"default_route": "document", ...}}
    query_0_SparseStaticEmbedding/     config.json {"frozen": ...}, model.safetensors {"weight": [vocab]},
                                       tokenizer files
    document_0_MLMTransformer/         a Hugging Face *ForMaskedLM + sentence_bert_config.json
    document_1_SpladePooling/config.json

sentence-transformers 5.4+ writes ``Transformer`` with
``"transformer_task": "fill-mask"`` in place of ``MLMTransformer`` and
module paths under ``sentence_transformers.base.modules``; both spellings are
read, by class name.  Supported: max pooling with ``relu`` (SPLADE v2/++) or
``log1p_relu`` (OpenSearch v3) activation; query weights from a
``SparseStaticEmbedding`` (a ``weight`` tensor, or a ``path`` to an
``idf.json``).  Not supported (a one-line :class:`ModelFormatError` says so):
sum pooling, ``SparseAutoEncoder`` (CSR) models, dense ``Transformer``
modules, and asymmetric models with two different MLMs.

:func:`save_sentence_transformers` writes the 5.0 spelling (the oldest that
has ``SparseEncoder``; later versions map it), so one folder loads in
sentence-transformers 5 and 6 and in sparsearch.  A SPLADE folder can carry
both layouts at once (the ST files sit beside the Hugging Face model);
an inference-free one keeps its document model in ``document_0_MLMTransformer/``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sparsearch.errors import MissingDependencyError
from sparsearch.retriever.resolve import ModelFormatError

ST_FORMAT_VERSION = "5.0.0"  # the sentence-transformers version whose module names we write

TRANSFORMERS = {"MLMTransformer", "Transformer"}
POOLINGS = {"SpladePooling"}
STATIC = {"SparseStaticEmbedding", "IDF"}  # "IDF": its name in the 5.0 pre-releases
ROUTERS = {"Router", "Asym"}

# Files of a Hugging Face MLM folder that a copy takes along (plus every *.safetensors).
MLM_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
             "added_tokens.json", "model.safetensors.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "added_tokens.json")
ST_ROOT_FILES = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json",
                 "router_config.json")


@dataclass(frozen=True)
class ModelLayout:
    """What sparsearch needs from a model folder, native or sentence-transformers.

    ``document_dir`` holds the Hugging Face ``*ForMaskedLM`` (config, weights,
    tokenizer); ``query_dir`` the query-side tokenizer (and, for a
    sentence-transformers inference-free model, the static weights).
    """

    root: Path
    format: str  # "native" or "sentence-transformers"
    kind: str  # "splade" or "inference-free"
    document_dir: Path
    query_dir: Path
    activation: str = "relu"  # SpladePooling activation_function: "relu" or "log1p_relu"
    max_seq_length: int | None = None
    query_weights_path: Path | None = None  # SparseStaticEmbedding weights (safetensors or .bin)
    idf_path: Path | None = None  # an idf.json (native, or a SparseStaticEmbedding "path")

    def idf_table(self) -> dict[str, float]:
        """``{token: weight}`` of the query side (inference-free models)."""
        from sparsearch.retriever.idf import read_idf_json

        if self.query_weights_path is not None:
            return static_weights_table(self.query_weights_path, self.query_dir)
        if self.idf_path is not None:
            return read_idf_json(self.idf_path)
        return read_idf_json(self.root / "idf.json")  # raises the "no idf.json: make one" error


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ModelFormatError(f"{path.parent}: no {path.name}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelFormatError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None


def _class_name(type_ref: object) -> str:
    return str(type_ref).rsplit(".", 1)[-1]


def is_sentence_transformers(folder: str | Path) -> bool:
    return (Path(folder) / "modules.json").is_file()


def describe_model(folder: str | Path) -> ModelLayout:
    """Read a model folder's layout: native (Hugging Face MLM [+ idf.json]) or a ``SparseEncoder`` folder."""
    root = Path(folder)
    if not root.is_dir():
        raise ModelFormatError(f"model folder {root} does not exist")
    if not is_sentence_transformers(root):
        idf = root / "idf.json"
        return ModelLayout(root, "native", "inference-free" if idf.is_file() else "splade", root, root,
                           idf_path=idf if idf.is_file() else None)
    modules = _read_json(root / "modules.json")
    if not isinstance(modules, list) or not all(isinstance(m, dict) and "type" in m for m in modules):
        raise ModelFormatError(f"{root}/modules.json: expected a list of {{\"type\", \"path\"}} objects")
    names = [_class_name(m["type"]) for m in modules]
    if len(modules) == 1 and names[0] in ROUTERS:
        return _describe_router(root, root / str(modules[0].get("path", "")))
    if len(modules) == 2 and names[0] in TRANSFORMERS and names[1] in POOLINGS:
        doc = root / str(modules[0].get("path", ""))
        activation, max_len = _document_route(root, names[0], doc, root / str(modules[1].get("path", "")))
        return ModelLayout(root, "sentence-transformers", "splade", doc, doc, activation, max_len)
    raise ModelFormatError(f"{root}: a sentence-transformers model of modules {names} is not a sparse model "
                           "sparsearch can load (supported: [MLMTransformer, SpladePooling] or a Router with "
                           "query [SparseStaticEmbedding] and document [MLMTransformer, SpladePooling])")


def _document_route(root: Path, transformer: str, doc: Path, pooling: Path) -> tuple[str, int | None]:
    """Check an MLM + SpladePooling pair; return the activation and ``max_seq_length``."""
    st_config: dict[str, Any] = {}
    if (doc / "sentence_bert_config.json").is_file():
        st_config = _read_json(doc / "sentence_bert_config.json") or {}
    task = st_config.get("transformer_task", "fill-mask" if transformer == "MLMTransformer" else None)
    if task != "fill-mask":
        raise ModelFormatError(f"{doc}: a Transformer module with transformer_task {task!r} is not a masked "
                               "language model (SPLADE needs \"fill-mask\")")
    config = _read_json(pooling / "config.json") if (pooling / "config.json").is_file() else {}
    strategy = config.get("pooling_strategy", "max")
    activation = config.get("activation_function", "relu")
    if strategy != "max":
        raise ModelFormatError(f"{root}: SpladePooling with pooling_strategy {strategy!r} is not supported "
                               "(sparsearch pools with max, as SPLADE v2 and later do)")
    if activation not in ("relu", "log1p_relu"):
        raise ModelFormatError(f"{root}: SpladePooling activation_function {activation!r} is not supported "
                               "(relu or log1p_relu)")
    max_len = st_config.get("max_seq_length")
    return activation, int(max_len) if isinstance(max_len, int) else None


def _describe_router(root: Path, router: Path) -> ModelLayout:
    config_path = router / "router_config.json"
    if not config_path.is_file():  # Asym and early Router folders kept it in config.json
        config_path = router / "config.json"
    config = _read_json(config_path)
    try:
        types = {str(k): _class_name(v) for k, v in config["types"].items()}
        structure = {str(k): [str(m) for m in v] for k, v in config["structure"].items()}
    except (KeyError, AttributeError, TypeError):
        raise ModelFormatError(f"{config_path}: expected \"types\" and \"structure\" objects") from None
    query, document = structure.get("query"), structure.get("document")
    if not query or not document:
        raise ModelFormatError(f"{config_path}: a Router needs \"query\" and \"document\" routes, "
                               f"got {sorted(structure)}")
    doc_types = [types.get(m, "?") for m in document]
    if len(document) != 2 or doc_types[0] not in TRANSFORMERS or doc_types[1] not in POOLINGS:
        raise ModelFormatError(f"{root}: document route {doc_types} is not supported "
                               "(expected [MLMTransformer, SpladePooling])")
    doc = router / document[0]
    activation, max_len = _document_route(root, doc_types[0], doc, router / document[1])
    if query == document:  # one SPLADE model behind a Router: siamese
        return ModelLayout(root, "sentence-transformers", "splade", doc, doc, activation, max_len)
    query_types = [types.get(m, "?") for m in query]
    if len(query) != 1 or query_types[0] not in STATIC:
        raise ModelFormatError(f"{root}: query route {query_types} is not supported (expected "
                               "[SparseStaticEmbedding] for inference-free, or the document route for SPLADE)")
    q = router / query[0]
    q_config = _read_json(q / "config.json") if (q / "config.json").is_file() else {}
    weights = next((q / n for n in ("model.safetensors", "pytorch_model.bin") if (q / n).is_file()), None)
    idf_path = None
    if weights is None:
        ref = q_config.get("path")
        candidates = [q / ref, root / ref] if isinstance(ref, str) else []
        candidates += [q / "idf.json", root / "idf.json"]
        idf_path = next((c for c in candidates if c.is_file()), None)
        if idf_path is None:
            raise ModelFormatError(f"{q}: SparseStaticEmbedding has no weights (model.safetensors) and no idf.json")
    if not any((q / n).is_file() for n in ("tokenizer.json", "vocab.txt")):
        q = doc  # the query module may share the document tokenizer
    return ModelLayout(root, "sentence-transformers", "inference-free", doc, q, activation, max_len,
                       query_weights_path=weights, idf_path=idf_path)


def static_weights_table(weights_path: Path, tokenizer_dir: Path) -> dict[str, float]:
    """A ``SparseStaticEmbedding``'s ``weight`` vector as ``{token: weight}`` (tokens of weight 0 left out)."""
    from sparsearch.retriever.analysis import _load_wordpiece

    if weights_path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise MissingDependencyError("reading sentence-transformers weights needs safetensors: "
                                         "pip install safetensors") from None
        tensors = load_file(str(weights_path))
    else:
        try:
            import torch
        except ImportError:
            raise MissingDependencyError(f"{weights_path} is a PyTorch pickle: reading it needs torch") from None
        tensors = {k: v.float().numpy() for k, v in torch.load(weights_path, map_location="cpu",
                                                                weights_only=True).items()}
    if "weight" not in tensors:
        raise ModelFormatError(f"{weights_path}: no \"weight\" tensor (has {sorted(tensors)})")
    weight = np.asarray(tensors["weight"], np.float64).reshape(-1)
    if not np.isfinite(weight).all() or (weight < 0).any():
        bad = int((~np.isfinite(weight) | (weight < 0)).sum())
        raise ModelFormatError(f"{weights_path}: {bad} query token weights are negative or not finite; "
                               "sparsearch's query side needs weights >= 0")
    vocab = _load_wordpiece(str(tokenizer_dir)).get_vocab(with_added_tokens=True)
    if len(weight) < len(vocab):
        raise ModelFormatError(f"{weights_path}: {len(weight)} weights for a vocabulary of {len(vocab)} tokens")
    return {tok: float(weight[i]) for tok, i in sorted(vocab.items(), key=lambda kv: kv[1]) if weight[i] > 0}


# ---------------------------------------------------------------- writing


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _copy_files(src: Path, dst: Path, names: tuple[str, ...], weights: bool) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    chosen = [src / n for n in names if (src / n).is_file()]
    if weights:
        safetensors = sorted(src.glob("*.safetensors"))
        chosen += safetensors or [p for p in (src / "pytorch_model.bin",) if p.is_file()]
    for p in chosen:
        if p.resolve() != (dst / p.name).resolve():
            shutil.copyfile(p, dst / p.name)


def _compute_in_float32(config_path: Path) -> None:
    """sparsearch computes in float32 whatever the stored dtype (the shipped model stores float16); a config
    saying ``"dtype": "float16"`` would make transformers ≥ 5 (hence sentence-transformers) compute in half
    precision, 1e-3 away.  The exported config asks for float32: the same numbers on both sides."""
    config = _read_json(config_path)
    changed = False
    for key in ("dtype", "torch_dtype"):
        if key in config and config[key] not in (None, "float32"):
            config[key] = "float32"
            changed = True
    if changed:
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _vocab_size(document_dir: Path) -> int | None:
    config = _read_json(document_dir / "config.json")
    size = config.get("vocab_size") if isinstance(config, dict) else None
    return int(size) if isinstance(size, int) else None


def _st_config() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("sparsearch")
    except PackageNotFoundError:
        ours = "unknown"
    return {"__version__": {"sentence_transformers": ST_FORMAT_VERSION, "sparsearch": ours},
            "model_type": "SparseEncoder", "prompts": {"query": "", "document": ""}, "default_prompt_name": None,
            "similarity_fn_name": "dot"}


def _pooling_config(activation: str, vocab_size: int | None) -> dict[str, Any]:
    return {"pooling_strategy": "max", "activation_function": activation, "word_embedding_dimension": vocab_size}


def query_weight_vector(layout: ModelLayout) -> np.ndarray:
    """The query weights sparsearch uses, by token id (special tokens 0): a ``SparseStaticEmbedding.weight``."""
    from sparsearch.retriever.idf import idf_vector, special_token_ids
    from sparsearch.retriever.splade import load_tokenizer

    tokenizer = load_tokenizer(layout.query_dir)
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    weights = idf_vector(layout.idf_table(), vocab)
    weights[sorted(special_token_ids(tokenizer))] = 0.0
    return weights


def save_sentence_transformers(model: str | Path, out: str | Path, kind: str | None = None,
                               max_seq_length: int = 256) -> Path:
    """Write ``model`` (a folder or a name :func:`~sparsearch.retriever.resolve.resolve_model` knows) as a
    sentence-transformers ``SparseEncoder`` folder at ``out``; returns ``out``.

    ``kind`` is ``"splade"`` or ``"inference-free"`` (default: inference-free
    when the model has query weights, an ``idf.json``).  A SPLADE model may be
    written in place (``out`` = the model folder): the folder then loads both
    natively and in sentence-transformers.  ``max_seq_length`` is the token
    limit sentence-transformers will apply (sparsearch's default is 256).
    """
    from sparsearch.retriever.resolve import resolve_model

    layout = describe_model(resolve_model(model).path)
    kind = kind or layout.kind
    if kind not in ("splade", "inference-free"):
        raise ValueError(f"kind must be 'splade' or 'inference-free', got {kind!r}")
    if max_seq_length < 4:
        raise ValueError(f"max_seq_length must be >= 4, got {max_seq_length}")
    out_path = Path(out)
    in_place = out_path.exists() and out_path.resolve() == layout.root.resolve()
    if out_path.exists() and not in_place and any(out_path.iterdir()):
        raise FileExistsError(f"{out_path} exists and is not empty")
    if in_place and (kind == "inference-free" or layout.format != "native"):
        raise ValueError("only a native SPLADE folder can be written in place; give another output folder")
    vocab_size = _vocab_size(layout.document_dir)
    sbert = {"max_seq_length": max_seq_length, "do_lower_case": False}
    base = "sentence_transformers.sparse_encoder.models"
    if kind == "splade":
        _copy_files(layout.document_dir, out_path, MLM_FILES, weights=True)
        _compute_in_float32(out_path / "config.json")
        _write_json(out_path / "sentence_bert_config.json", sbert)
        _write_json(out_path / "1_SpladePooling" / "config.json", _pooling_config(layout.activation, vocab_size))
        _write_json(out_path / "modules.json", [
            {"idx": 0, "name": "0", "path": "", "type": f"{base}.MLMTransformer"},
            {"idx": 1, "name": "1", "path": "1_SpladePooling", "type": f"{base}.SpladePooling"}])
    else:
        weights = query_weight_vector(layout).astype(np.float32)
        q, d, p = "query_0_SparseStaticEmbedding", "document_0_MLMTransformer", "document_1_SpladePooling"
        _copy_files(layout.query_dir, out_path / q, TOKENIZER_FILES, weights=False)
        _write_json(out_path / q / "config.json", {"frozen": True})
        try:
            from safetensors.numpy import save_file
        except ImportError:
            raise MissingDependencyError("writing sentence-transformers weights needs safetensors: "
                                         "pip install safetensors") from None
        save_file({"weight": weights}, str(out_path / q / "model.safetensors"), metadata={"format": "pt"})
        _copy_files(layout.document_dir, out_path / d, MLM_FILES, weights=True)
        _compute_in_float32(out_path / d / "config.json")
        _write_json(out_path / d / "sentence_bert_config.json", sbert)
        _write_json(out_path / p / "config.json", _pooling_config(layout.activation, vocab_size))
        _write_json(out_path / "modules.json",
                    [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Router"}])
        _write_json(out_path / "router_config.json", {
            "types": {q: f"{base}.SparseStaticEmbedding", d: f"{base}.MLMTransformer", p: f"{base}.SpladePooling"},
            "structure": {"query": [q], "document": [d, p]},
            "parameters": {"default_route": "document", "allow_empty_key": True}})
        # The table itself too, as OpenSearch's releases ship it (and for tools that read idf.json).
        from sparsearch.retriever.idf import write_idf_json

        write_idf_json(layout.idf_table(), out_path / "idf.json")
    _write_json(out_path / "config_sentence_transformers.json", _st_config())
    readme = layout.root / "README.md"
    if readme.is_file() and not in_place:
        shutil.copyfile(readme, out_path / "README.md")
    return out_path

"""Dense retrieval: one vector per text from a bi-encoder (all-MiniLM-L6-v2, e5, BGE, ...).

:class:`DenseEncoder` is the dense instance of the ``Encoder`` protocol: its
representation is a float32 matrix ``(n, dim)``, one row per text, and two
rows are scored by their dot product (cosine, once the rows are normalised).

The model folder is what sentence-transformers saves (``modules.json``: a
``Transformer`` at the root or in a sub-folder, then ``Pooling`` and an
optional ``Normalize``), or a plain Hugging Face encoder.  We read that
layout ourselves and run the Transformer through ``transformers.AutoModel``
with the fast ``tokenizers`` tokenizer and our own pooling, so
sentence-transformers stays an optional dependency (the tests check that the
vectors agree with it to 1e-5).  Supported: ``mean``, ``cls`` and ``max``
pooling and ``Normalize``; other modules (``Dense`` projections, several
pooling modes concatenated, ``lasttoken`` ...) raise a one-line
:class:`~sparsearch.retriever.resolve.ModelFormatError` rather than encode
something different from what the model was trained to produce.

Importing this module, or building a :class:`DenseConfig`, imports neither
torch nor transformers: the model is loaded on first use, as the learned
sparse encoders do, and encoders on the same folder and device share one
loaded copy (:func:`shared_dense_model`).
"""

from __future__ import annotations

import json
import re
import threading
import weakref
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from sparsearch.errors import MissingDependencyError
from sparsearch.retriever.resolve import ModelFormatError
from sparsearch.types import CollectionStats, Document

POOLING_MODES = ("auto", "mean", "cls", "max")

#: Token limit when neither the settings nor the model folder (``sentence_bert_config.json``) give one.
DEFAULT_MAX_LENGTH = 256

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

# Models whose position ids start after the padding index: they take 2 positions fewer than they declare.
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "mpnet", "longformer"}

_SPARSE_MODULES = {"MLMTransformer", "SpladePooling", "SparseStaticEmbedding", "Router", "Asym"}


# ---------------------------------------------------------------- the model folder


@dataclass(frozen=True)
class DenseLayout:
    """What a dense model folder says about itself (read from JSON files only: no torch)."""

    root: Path
    transformer_dir: Path  # the Hugging Face model and its tokenizer (the Transformer module's folder)
    pooling: str | None  # the Pooling module's mode; None for a plain Hugging Face folder
    normalize_module: bool  # modules.json lists a Normalize module
    similarity_fn: str | None  # config_sentence_transformers.json's similarity_fn_name, when declared
    max_seq_length: int | None  # sentence_bert_config.json's max_seq_length
    do_lower_case: bool
    include_prompt: bool  # the Pooling module pools over the prompt (prefix) tokens too
    dim: int | None  # hidden size from config.json
    max_positions: int | None  # tokens the model can take (position embeddings less any padding offset)

    def default_normalize(self) -> bool:
        """``normalize="auto"``: see :class:`DenseConfig`."""
        return self.normalize_module or self.similarity_fn in (None, "cosine")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelFormatError(f"{path}: cannot read it as JSON ({e})") from None


def _pooling_mode(path: Path) -> tuple[str, bool]:
    """``(mode, include_prompt)`` of a Pooling module's ``config.json`` (ST ≥ 5.2 ``pooling_mode`` or the
    older ``pooling_mode_*`` booleans)."""
    if not path.is_file():
        return "mean", True  # sentence-transformers' own default
    config = _read_json(path)
    mode = config.get("pooling_mode")
    if mode is None:
        legacy = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean",
                  "pooling_mode_max_tokens": "max", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                  "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
        mode = [name for key, name in legacy.items() if config.get(key)]
    if isinstance(mode, list) and len(mode) == 1:
        mode = mode[0]
    if isinstance(mode, list):
        raise ModelFormatError(f"{path}: pooling modes {mode} concatenated are not supported by the dense "
                               "encoder (one of mean, cls, max)")
    if mode not in ("mean", "cls", "max"):
        raise ModelFormatError(f"{path}: pooling mode {mode!r} is not supported by the dense encoder "
                               "(mean, cls or max)")
    return mode, bool(config.get("include_prompt", True))


def _model_facts(folder: Path) -> tuple[int | None, int | None]:
    """``(hidden size, usable positions)`` from a Hugging Face ``config.json``."""
    if not (folder / "config.json").is_file():
        raise ModelFormatError(f"{folder}: no config.json (not a Hugging Face model folder)")
    config = _read_json(folder / "config.json")
    dim = next((config[k] for k in ("hidden_size", "d_model", "dim") if isinstance(config.get(k), int)), None)
    positions = config.get("max_position_embeddings")
    if not isinstance(positions, int) or positions <= 0:
        return dim, None
    if config.get("model_type") in _OFFSET_POSITIONS:
        positions -= 2
    return dim, positions


def describe_dense_model(folder: str | Path) -> DenseLayout:
    """Read a sentence-transformers (``modules.json``) or plain Hugging Face folder as a dense model.

    A plain folder gets mean pooling, as sentence-transformers gives a model
    it wraps without a ``modules.json``.
    """
    root = Path(folder)
    if not (root / "modules.json").is_file():
        dim, positions = _model_facts(root)
        return DenseLayout(root, root, None, False, None, None, False, True, dim, positions)
    modules = _read_json(root / "modules.json")
    if not isinstance(modules, list):
        raise ModelFormatError(f"{root / 'modules.json'}: expected a list of modules")
    kinds = [(str(m.get("type", "")).rsplit(".", 1)[-1], str(m.get("path", ""))) for m in modules]
    names = [k for k, _ in kinds]
    if set(names) & _SPARSE_MODULES:
        raise ModelFormatError(f"{root}: a sparse sentence-transformers model ({', '.join(names)}): "
                               "use encoder 'splade' or 'inference-free'")
    unsupported = [k for k in names if k not in ("Transformer", "Pooling", "Normalize")]
    if unsupported or names.count("Transformer") != 1 or names[0] != "Transformer" or names.count("Pooling") > 1:
        raise ModelFormatError(f"{root}: modules {names} are not supported by the dense encoder (expected "
                               "Transformer, Pooling and optionally Normalize)")
    transformer_dir = root / kinds[0][1]
    pooling_path = next((p for k, p in kinds if k == "Pooling"), None)
    if pooling_path is None:
        raise ModelFormatError(f"{root}: modules.json has no Pooling module (a token-level model?)")
    mode, include_prompt = _pooling_mode(root / pooling_path / "config.json")
    sbert_path = transformer_dir / "sentence_bert_config.json"
    sbert = _read_json(sbert_path) if sbert_path.is_file() else {}
    max_seq = sbert.get("max_seq_length")
    st_path = root / "config_sentence_transformers.json"
    st_config = _read_json(st_path) if st_path.is_file() else {}
    similarity = st_config.get("similarity_fn_name")
    dim, positions = _model_facts(transformer_dir)
    return DenseLayout(root, transformer_dir, mode, "Normalize" in names,
                       similarity if isinstance(similarity, str) else None,
                       max_seq if isinstance(max_seq, int) and max_seq > 0 else None,
                       bool(sbert.get("do_lower_case", False)), include_prompt, dim, positions)


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class DenseConfig:
    """How a dense bi-encoder encodes text.

    ``model_dir`` is a folder, a shipped model's name, an installed model
    package's name (``all-minilm-l6-v2``) or a Hugging Face id; a name is
    resolved here and kept in ``model`` (both go into an index's manifest).

    The ``"auto"`` settings are read from the model folder when the config is
    built and replaced by what they resolved to, so a manifest records what
    the documents were really encoded with (a later edit of the folder's
    pooling file cannot silently mix two kinds of vector in one index):

    * ``max_length`` ``None``: the folder's ``max_seq_length``
      (``sentence_bert_config.json``), else 256;
    * ``pooling`` ``"auto"``: the folder's Pooling module, mean for a plain
      Hugging Face folder;
    * ``normalize`` ``"auto"``: true when ``modules.json`` lists a
      ``Normalize`` module, or ``config_sentence_transformers.json`` declares
      ``similarity_fn_name: "cosine"``, or declares no similarity at all
      (sentence-transformers' default is cosine, and a cosine model's vectors
      scored by dot product must be unit length); false when it declares
      another one (``"dot"``).  Dot-product models saved before
      sentence-transformers declared similarities (TAS-B, ``msmarco-*-dot``)
      need ``normalize=False``.

    ``query_prefix``/``document_prefix`` are prepended to the text: e5 models
    need ``"query: "``/``"passage: "``, BGE a query instruction.
    """

    model_dir: str
    max_length: int | None = None
    batch_size: int = 32
    device: str = "auto"
    pooling: str = "auto"
    normalize: bool | str = "auto"
    query_prefix: str = ""
    document_prefix: str = ""
    model: str | None = None

    def __post_init__(self) -> None:
        if self.max_length is not None and (type(self.max_length) is not int or self.max_length < 4):
            raise ValueError(f"max_length must be an integer >= 4 (or None: the model's own), got {self.max_length!r}")
        if type(self.batch_size) is not int or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}")
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {', '.join(POOLING_MODES)}, got {self.pooling!r}")
        if not isinstance(self.normalize, bool) and self.normalize != "auto":
            raise ValueError(f"normalize must be true, false or 'auto', got {self.normalize!r}")
        for key in ("query_prefix", "document_prefix"):
            if not isinstance(getattr(self, key), str):
                raise ValueError(f"{key} must be a string, got {getattr(self, key)!r}")
        from sparsearch.retriever.splade import resolve_config_model

        resolve_config_model(self)
        if Path(self.model_dir).is_dir():
            _settle(self, describe_dense_model(self.model_dir))

    @property
    def settled(self) -> bool:
        """No ``"auto"`` left: every setting says what it is."""
        return self.max_length is not None and self.pooling != "auto" and self.normalize != "auto"


def _settle(config: DenseConfig, layout: DenseLayout) -> None:
    """Replace the config's ``"auto"`` values by the folder's (in place: called while the config is built)."""
    if config.max_length is None:
        object.__setattr__(config, "max_length", layout.max_seq_length or DEFAULT_MAX_LENGTH)
        if layout.max_positions is not None and config.max_length > layout.max_positions:
            object.__setattr__(config, "max_length", layout.max_positions)  # a folder claiming too much
    elif layout.max_positions is not None and config.max_length > layout.max_positions:
        raise ValueError(f"max_length={config.max_length} exceeds the {layout.max_positions} positions the "
                         f"model in {layout.root} takes")
    if config.pooling == "auto":
        object.__setattr__(config, "pooling", layout.pooling or "mean")
    if config.normalize == "auto":
        object.__setattr__(config, "normalize", layout.default_normalize())
    if not layout.include_prompt and (config.query_prefix or config.document_prefix):
        raise ValueError(f"the model in {layout.root} pools without its prompt tokens (include_prompt=false), "
                         "which the dense encoder does not implement: leave query_prefix/document_prefix empty")


# ---------------------------------------------------------------- the loaded model


def _torch():  # type: ignore[no-untyped-def]
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "dense models need torch and transformers: pip install 'sparsearch[learned]'") from None
    return torch


def pool(hidden: Any, mask: Any, mode: str) -> Any:
    """One vector per row of ``hidden`` ``[rows, tokens, dim]`` over the tokens ``mask`` keeps.

    The same arithmetic as sentence-transformers' Pooling (right padding):
    mean divides by the token count (at least 1e-9), cls takes position 0,
    max ignores padding.
    """
    torch = _torch()
    if mode == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "mean":
        return (hidden * m).sum(dim=1) / torch.clamp(m.sum(dim=1), min=1e-9)
    if mode == "max":
        return hidden.masked_fill(m == 0, float("-inf")).max(dim=1).values
    raise ValueError(f"unknown pooling mode {mode!r}")


class DenseModel:
    """A loaded Hugging Face encoder and its tokenizer, encoding text in length-sorted batches.

    Holds no encoding settings (pooling, normalisation, limits and batch size
    come with each call), so encoders with different settings share a copy.
    """

    def __init__(self, model_dir: str | Path, device: str = "auto") -> None:
        torch = _torch()
        from transformers import AutoConfig, AutoModel

        from sparsearch.retriever.splade import load_tokenizer

        self.layout = describe_dense_model(model_dir)
        folder = self.layout.transformer_dir
        config = AutoConfig.from_pretrained(folder)
        if getattr(config, "is_encoder_decoder", False):
            raise ModelFormatError(f"{folder}: an encoder-decoder model ({config.model_type}) is not supported "
                                   "by the dense encoder")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        # float32 whatever the stored dtype: the vectors of an index must not depend on how weights were saved.
        self.model = AutoModel.from_pretrained(folder, dtype=torch.float32).to(self.device).eval()
        self.tokenizer = load_tokenizer(folder)
        self.dim = int(config.hidden_size)
        pad = next((self.tokenizer.token_to_id(t) for t in ("[PAD]", "<pad>")
                    if self.tokenizer.token_to_id(t) is not None), None)
        # The pad id matters beyond the mask: RoBERTa-style models derive position ids from it.
        self.pad_id = int(pad if pad is not None else (getattr(config, "pad_token_id", None) or 0))
        # Truncation is a setting of the tokenizer: one thread at a time sets it and tokenizes.
        self._tokenizer_lock = threading.Lock()

    def token_ids(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        """Token ids with special tokens, truncated to ``max_length`` (as Hugging Face truncates one text)."""
        if self.layout.do_lower_case:
            texts = [t.lower() for t in texts]
        with self._tokenizer_lock:
            self.tokenizer.enable_truncation(max_length)
            return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    def encode(self, texts: Sequence[str], max_length: int, batch_size: int, pooling: str,
               normalize: bool) -> np.ndarray:
        """``(len(texts), dim)`` float32, C-contiguous, rows in the order of ``texts``.

        Texts are batched in order of token count, so a batch pads to its own
        longest text instead of to ``max_length``; each batch's rows are
        written straight back to their original positions.
        """
        torch = _torch()
        from sparsearch.retriever.splade import pad_rows

        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        ids = self.token_ids(texts, max_length)
        order = np.argsort([len(x) for x in ids], kind="stable")
        with torch.inference_mode():
            for lo in range(0, len(order), batch_size):
                chosen = order[lo:lo + batch_size]
                rows = [ids[i] for i in chosen]
                if max(len(r) for r in rows) == 0:  # a tokenizer adding no special tokens, and empty texts
                    continue
                input_ids, mask = pad_rows(rows, self.pad_id, self.device)
                hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                vectors = pool(hidden, mask, pooling)
                if normalize:
                    vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
                out[chosen] = vectors.float().cpu().numpy()
        return out


_SHARED: "weakref.WeakValueDictionary[tuple[str, str, int], DenseModel]" = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def _weights_stamp(folder: Path) -> int:
    """The newest modification time of the folder's weights: a model replaced in place is loaded again."""
    stamps = [p.stat().st_mtime_ns for p in folder.glob("*") if p.suffix in (".safetensors", ".bin")]
    return max(stamps, default=0)


def shared_dense_model(model_dir: str | Path, device: str = "auto") -> DenseModel:
    """The loaded model of ``model_dir`` on ``device``, one copy per process while any encoder uses it.

    The learned sparse encoders share their MLM through the service's model
    source (:func:`sparsearch.retriever.splade.models_from`); a dense model
    is a different object, so dense encoders share theirs here, weakly held:
    it is freed with the last encoder using it.
    """
    folder = Path(model_dir).resolve()
    layout = describe_dense_model(folder)
    if device == "auto":  # one copy for "auto" and the device it picks
        device = "cuda" if _torch().cuda.is_available() else "cpu"
    key = (str(folder), device, _weights_stamp(layout.transformer_dir))
    with _SHARED_LOCK:
        model = _SHARED.get(key)
        if model is None:
            model = DenseModel(folder, device)
            _SHARED[key] = model
        return model


# ---------------------------------------------------------------- the encoder


class DenseEncoder:
    """A bi-encoder: the same model encodes queries and documents into vectors scored by dot product."""

    name: ClassVar[str] = "dense"

    def __init__(self, config: DenseConfig) -> None:
        self.settings = config
        self._model: DenseModel | None = None

    @property
    def model(self) -> DenseModel:
        """The loaded model (on first use; the folder is found again by name if it moved)."""
        if self._model is None:
            from sparsearch.retriever.resolve import require_model_dir

            folder = require_model_dir(self.settings.model_dir, self.settings.model)
            self._model = shared_dense_model(folder, self.settings.device)
            if not self.settings.settled:  # a config read back while its folder was missing: settle it now
                self.settings = replace(self.settings, model_dir=str(folder))
        return self._model

    @property
    def dim(self) -> int:
        """Length of every vector (the model's hidden size: pooling keeps it)."""
        layout_dim = None
        if self._model is None and Path(self.settings.model_dir).is_dir():
            layout_dim = describe_dense_model(self.settings.model_dir).dim  # no need to load the model
        return layout_dim if layout_dim is not None else self.model.dim

    @property
    def similarity(self) -> str:
        """How two vectors are compared: ``"dot"`` (cosine when :attr:`normalized`)."""
        return "dot"

    @property
    def normalized(self) -> bool:
        """Whether every vector has unit length (so dot product = cosine)."""
        if not self.settings.settled:
            self.model  # noqa: B018 — finds the folder and settles "auto" (a config read while it was missing)
        return bool(self.settings.normalize)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 of texts taken as they are (no prefix)."""
        model = self.model
        s = self.settings
        return model.encode(list(texts), int(s.max_length or DEFAULT_MAX_LENGTH), s.batch_size, s.pooling,
                            bool(s.normalize))

    def encode_documents(self, documents: Sequence[Document]) -> np.ndarray:
        """One row per document, of ``document_prefix + title + " " + text``."""
        prefix = self.settings.document_prefix
        return self.encode_texts([prefix + d.contents for d in documents])

    def encode_queries(self, queries: Sequence[str], stats: CollectionStats | None = None) -> np.ndarray:
        """One row per query, of ``query_prefix + query``; ``stats`` is not used (a dense query has no IDF)."""
        prefix = self.settings.query_prefix
        return self.encode_texts([prefix + q for q in queries])

    def config(self) -> dict[str, Any]:
        return asdict(self.settings)

    def state_files(self) -> dict[str, bytes]:
        """None: the model is found again by folder or name, like the learned sparse encoders'."""
        return {}

    @classmethod
    def load(cls, config: dict[str, Any], files: dict[str, Path]) -> "DenseEncoder":
        from sparsearch.retriever.resolve import configs_from_manifest

        with configs_from_manifest():
            return cls(DenseConfig(**config))

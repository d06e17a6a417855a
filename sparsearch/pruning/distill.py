"""Distilling a pruned student back towards the unpruned model it came from.

Two terms, both against the teacher's outputs on the same (unlabelled) texts,
so no relevance labels are needed and the student learns what the teacher
does rather than the teacher's training task again:

* SquareHead (Kurtic et al. 2023, "Sparse Fine-tuning for Inference
  Acceleration of Large Language Models"): per transformer layer, the MSE
  between student and teacher hidden states normalised by the teacher's
  energy, ``Σ_l MSE(h_s^l, h_t^l) / MSE(h_t^l, 0)``.  A student with layers
  removed matches each of its layers to the teacher layer it was copied from.
* The document vectors themselves: the MSE between the SPLADE weights of
  student and teacher, normalised the same way.

``on_step`` is how gradual pruning re-imposes its masks after every optimiser
step (:mod:`sparsearch.pruning.gradual`).
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from sparsearch.pruning.base import PruningError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillConfig:
    """Fine-tuning settings: ``steps`` of AdamW on batches of ``batch_size`` texts.

    ``freeze_embeddings``: the vocabulary projection is tied to the word
    embeddings, so freezing them keeps every term's output row the teacher's
    (the student only learns to produce the same token states) and leaves
    a third of the weights untouched.  ``max_seconds`` stops early on a time budget.
    """

    steps: int = 200
    batch_size: int = 16
    lr: float = 5e-5
    warmup_steps: int = 20
    max_length: int = 256
    hidden_weight: float = 1.0
    output_weight: float = 1.0
    seed: int = 0
    device: str = "cpu"
    bf16: bool = False
    freeze_embeddings: bool = True
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise PruningError("steps and batch_size must be >= 1")


def normalised_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``MSE(s, t) / MSE(t, 0)`` over the rows ``mask`` keeps (non-padding tokens)."""
    diff = (student.float() - teacher.float()).pow(2)
    energy = teacher.float().pow(2)
    if mask is not None:
        m = mask.unsqueeze(-1).to(diff.dtype)
        return (diff * m).sum() / (energy * m).sum().clamp_min(1e-12)
    return diff.sum() / energy.sum().clamp_min(1e-12)


def squarehead_loss(student_states: Sequence[torch.Tensor], teacher_states: Sequence[torch.Tensor],
                    layer_map: Sequence[int], mask: torch.Tensor) -> torch.Tensor:
    """Sum over student layers ``l ≥ 1`` of the normalised MSE to teacher layer ``layer_map[l-1] + 1``.

    ``*_states`` are Hugging Face ``hidden_states`` (index 0 = embeddings).
    """
    if len(layer_map) != len(student_states) - 1:
        raise PruningError(f"layer map of {len(layer_map)} entries for a student of {len(student_states) - 1} layers")
    losses = [normalised_mse(student_states[i + 1], teacher_states[t + 1], mask) for i, t in enumerate(layer_map)]
    return torch.stack(losses).sum()


def _outputs(model: nn.Module, input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[tuple, torch.Tensor]:
    """Hidden states of every layer and the SPLADE vectors, in one forward pass."""
    from sparsearch.retriever.mlm import mlm_parts, splade_activation

    parts = mlm_parts(model)
    out = parts.backbone(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
    hidden = parts.transform(out.last_hidden_state)
    logits = torch.matmul(hidden, parts.decoder_weight.t())
    if parts.decoder_bias is not None:
        logits = logits + parts.decoder_bias
    logits = logits.masked_fill((mask == 0).unsqueeze(-1), torch.finfo(logits.dtype).min)
    return out.hidden_states, splade_activation(logits.amax(dim=1))


def distill(student: nn.Module, teacher: nn.Module, token_rows: Sequence[Sequence[int]], config: DistillConfig,
            layer_map: Sequence[int] | None = None, pad_id: int = 0,
            on_step: Callable[[int], None] | None = None) -> list[float]:
    """Fine-tune ``student`` in place towards ``teacher`` on tokenised texts; returns the loss of every step.

    ``layer_map[l]`` is the teacher layer student layer ``l`` started from
    (identity when ``None``).  ``on_step(step)`` runs before each step
    (gradual pruning updates its masks there) and once after the last.
    """
    from tqdm import tqdm

    from sparsearch.retriever.splade import pad_rows

    device = torch.device(config.device)
    student.to(device).train()
    teacher.to(device).eval()
    n_layers = student.config.num_hidden_layers
    layer_map = list(range(n_layers)) if layer_map is None else list(layer_map)
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    if config.freeze_embeddings:
        student.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    order = list(range(len(token_rows)))
    losses: list[float] = []
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16)
    started = time.monotonic()
    for step in tqdm(range(config.steps), desc="distil", disable=config.steps < 50):
        if config.max_seconds is not None and time.monotonic() - started > config.max_seconds:
            log.warning("distillation stopped at step %d of %d: time budget %.0f s", step, config.steps,
                        config.max_seconds)
            break
        if on_step is not None:
            on_step(step)
        if step % len(order) < config.batch_size:
            rng.shuffle(order)
        lo = (step * config.batch_size) % len(order)
        rows = [list(token_rows[order[(lo + i) % len(order)]])[:config.max_length] for i in range(config.batch_size)]
        input_ids, mask = pad_rows(rows, pad_id, device)
        with autocast:
            with torch.no_grad():
                t_states, t_vectors = _outputs(teacher, input_ids, mask)
            s_states, s_vectors = _outputs(student, input_ids, mask)
            loss = config.output_weight * normalised_mse(s_vectors, t_vectors)
            if config.hidden_weight:
                loss = loss + config.hidden_weight * squarehead_loss(s_states, t_states, layer_map, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0:
            log.info("distil step %d loss %.4f", step, losses[-1])
    if on_step is not None:
        on_step(config.steps)
    student.get_input_embeddings().weight.requires_grad_(True)
    student.eval()
    return losses

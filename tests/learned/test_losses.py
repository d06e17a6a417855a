"""Regularisers, losses, the λ schedule and random crops, against numbers worked out by hand."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from sparsearch.training.cropping import crop_pair, random_crop
from sparsearch.training.losses import ensemble_teacher_logits, info_nce, kl_distillation, minmax_normalize
from sparsearch.training.regularizers import flops, idf_flops
from sparsearch.training.schedules import QuadraticWarmup

# ---------------------------------------------------------------- FLOPS


def test_flops_by_hand() -> None:
    w = torch.tensor([[1.0, 0.0, 2.0],
                      [3.0, 0.0, 0.0]])
    # column means [2, 0, 1] -> 4 + 0 + 1
    assert flops(w).item() == pytest.approx(5.0)
    # a single row: the sum of squares of its weights
    assert flops(torch.tensor([[0.5, 2.0]])).item() == pytest.approx(0.25 + 4.0)


def test_flops_is_not_the_l1_or_l2_of_rows() -> None:
    """Spreading the same mass over different terms costs less than piling it on one (FLOPS, not L2)."""
    same = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    spread = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert flops(same).item() == pytest.approx(1.0)  # mean [1, 0]
    assert flops(spread).item() == pytest.approx(0.5)  # mean [.5, .5] -> .25 + .25


def test_idf_flops_by_hand() -> None:
    w = torch.tensor([[1.0, 4.0, 0.0, 3.0],
                      [3.0, 0.0, 0.0, 0.0]])
    idf = torch.tensor([2.0, 0.5, 0.0, 3.0])
    # w / idf: [[.5, 8, 0, 1], [1.5, 0, 0, 0]] -> means [1, 4, 0, .5] -> 1 + 16 + 0 + .25
    assert idf_flops(w, idf).item() == pytest.approx(17.25)
    # An IDF-0 token (special tokens: the trainer zeroes their weights) contributes 0, and no NaN.
    assert idf_flops(w[:, [2]], idf[[2]]).item() == 0.0
    assert torch.isfinite(idf_flops(w, idf))


def test_idf_flops_ignores_nonzero_weight_on_idf_zero_token() -> None:
    """Even unmasked, a token no query can hold adds 0 (not w²·10¹²): it cannot swamp the loss."""
    w = torch.tensor([[5.0, 2.0]])
    idf = torch.tensor([0.0, 2.0])
    assert idf_flops(w, idf).item() == pytest.approx(1.0)  # (2/2)^2


def test_idf_flops_penalises_common_tokens_more() -> None:
    w = torch.tensor([[1.0, 1.0]])
    common_rare = torch.tensor([0.1, 5.0])
    # (1/.1)^2 + (1/5)^2 = 100 + .04
    assert idf_flops(w, common_rare).item() == pytest.approx(100.04)
    assert idf_flops(w, torch.ones(2)).item() == pytest.approx(flops(w).item())


def test_idf_flops_gradient_ignores_idf_zero_columns_with_zero_weight() -> None:
    raw = torch.tensor([[1.0, 2.0]], requires_grad=True)
    idf = torch.tensor([0.0, 2.0])
    masked = raw * (idf > 0).float()  # as Student.encode masks inference-free documents
    idf_flops(masked, idf).backward()
    # d/dw1 of (w1/2)^2 = w1/2 = 1; nothing flows to the masked column
    assert raw.grad.tolist() == [[0.0, 1.0]]


# ---------------------------------------------------------------- losses


def test_minmax_normalize_by_hand() -> None:
    s = torch.tensor([[1.0, 3.0, 2.0],
                      [5.0, 5.0, 5.0],
                      [-2.0, 0.0, 6.0]])
    got = minmax_normalize(s)
    np.testing.assert_allclose(got.numpy(), [[0, 1, 0.5], [0, 0, 0], [0, 0.25, 1]], atol=1e-7)
    assert not torch.isnan(got).any()


def test_ensemble_teacher_logits_by_hand() -> None:
    bm25 = torch.tensor([[1.0, 3.0, 2.0], [4.0, 4.0, 4.0]])
    dense = torch.tensor([[0.0, 10.0, 0.0], [-1.0, 0.0, 1.0]])
    # row 0: [0, 1, .5] and [0, 1, 0] -> mean [0, 1, .25];  row 1: [0, 0, 0] and [0, .5, 1] -> mean [0, .25, .5]
    got = ensemble_teacher_logits([bm25, dense], scale=2.0)
    np.testing.assert_allclose(got.numpy(), [[0, 2, 0.5], [0, 0.5, 1.0]], atol=1e-6)
    # one teacher: its normalised scores times the default scale 30
    np.testing.assert_allclose(ensemble_teacher_logits([bm25]).numpy(), [[0, 30, 15], [0, 0, 0]], atol=1e-5)
    # units do not matter: a teacher scaled by 1000 gives the same logits
    np.testing.assert_allclose(ensemble_teacher_logits([bm25 * 1000, dense], 2.0).numpy(), got.numpy(), atol=1e-5)
    with pytest.raises(ValueError):
        ensemble_teacher_logits([])


def test_kl_distillation_by_hand() -> None:
    student = torch.tensor([[0.0, math.log(2.0)],
                            [1.0, 1.0]])
    teacher = torch.tensor([[0.0, 0.0],
                            [7.0, 7.0]])
    # Row 0: teacher p = [1/2, 1/2], student q = [1/3, 2/3]:
    #   KL(p‖q) = ½ ln(½ / ⅓) + ½ ln(½ / ⅔) = ½ ln(9/8).   Row 1: equal distributions, 0.  Mean over rows.
    expected = 0.5 * math.log(9 / 8) / 2
    assert kl_distillation(student, teacher).item() == pytest.approx(expected, rel=1e-5)
    # The other direction, KL(q‖p) = ⅓ ln(⅔) + ⅔ ln(4/3), is a different number: the direction is checked.
    assert abs(expected - (math.log(2 / 3) / 3 + 2 / 3 * math.log(4 / 3)) / 2) > 1e-3
    assert kl_distillation(teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_distillation_gradient_moves_student_towards_teacher() -> None:
    student = torch.tensor([[0.0, math.log(2.0)]], requires_grad=True)
    kl_distillation(student, torch.zeros((1, 2))).backward()
    # d KL / d s = softmax(s) - softmax(t) = [1/3 - 1/2, 2/3 - 1/2]
    np.testing.assert_allclose(student.grad.numpy(), [[-1 / 6, 1 / 6]], atol=1e-6)


def test_info_nce_by_hand() -> None:
    scores = torch.tensor([[1.0, 0.0, 0.0],
                           [0.0, 2.0, 0.0]])
    positive = torch.tensor([0, 2])
    # row 0: -ln(e/(e+2));  row 1: -ln(1/(2+e^2))
    expected = (-math.log(math.e / (math.e + 2)) + math.log(2 + math.e ** 2)) / 2
    assert info_nce(scores, positive).item() == pytest.approx(expected, rel=1e-6)
    # temperature divides the scores: 0.5 doubles them
    expected_t = (-math.log(math.e ** 2 / (math.e ** 2 + 2)) + math.log(2 + math.e ** 4)) / 2
    assert info_nce(scores, positive, temperature=0.5).item() == pytest.approx(expected_t, rel=1e-6)


# ---------------------------------------------------------------- λ schedule


def test_quadratic_warmup_values() -> None:
    lam = QuadraticWarmup(0.4, 4)
    assert [lam(t) for t in range(6)] == pytest.approx([0.0, 0.4 / 16, 0.1, 0.4 * 9 / 16, 0.4, 0.4])
    assert lam(1000) == pytest.approx(0.4)
    assert QuadraticWarmup(0.3, 0)(0) == 0.3  # no warmup: full weight from the start


# ---------------------------------------------------------------- random crops

WORDS = [f"w{i}" for i in range(20)]


def _positions(crop: str) -> list[int]:
    return [WORDS.index(w) for w in crop.split()]


@pytest.mark.parametrize("seed", range(30))
def test_random_crop_is_a_contiguous_span_within_bounds(seed: int) -> None:
    rng = random.Random(seed)
    crop = random_crop(WORDS, rng, 0.1, 0.5)
    pos = _positions(crop)
    # length round(20 * r) for r in [.1, .5]: 2..10 words, consecutive
    assert 2 <= len(pos) <= 10
    assert pos == list(range(pos[0], pos[0] + len(pos)))


def test_random_crop_covers_the_range_of_lengths_and_starts() -> None:
    rng = random.Random(0)
    crops = [_positions(random_crop(WORDS, rng, 0.1, 0.5)) for _ in range(400)]
    assert {len(c) for c in crops} == set(range(2, 11))
    assert min(c[0] for c in crops) == 0 and max(c[-1] for c in crops) == 19


@pytest.mark.parametrize("seed", range(20))
def test_random_crop_with_deletion_keeps_an_ordered_subset_of_one_span(seed: int) -> None:
    # The span is drawn before the deletions, so the same seed without deletion gives the whole span.
    span = _positions(random_crop(WORDS, random.Random(seed), 0.25, 0.5))
    pos = _positions(random_crop(WORDS, random.Random(seed), 0.25, 0.5, delete=0.5))
    assert pos and set(pos) <= set(span)
    assert pos == sorted(set(pos))


def test_random_crop_deletes_about_the_requested_fraction() -> None:
    kept = total = 0
    for seed in range(300):
        span = _positions(random_crop(WORDS, random.Random(seed), 0.25, 0.5))
        pos = _positions(random_crop(WORDS, random.Random(seed), 0.25, 0.5, delete=0.3))
        kept, total = kept + len(pos), total + len(span)
    assert 0.62 <= kept / total <= 0.78  # 70 % kept, give or take sampling noise


def test_random_crop_edge_cases() -> None:
    rng = random.Random(1)
    assert random_crop([], rng, 0.1, 0.5) == ""
    assert random_crop(["only"], rng, 0.01, 0.02) == "only"  # at least one word
    assert random_crop(WORDS, rng, 1.0, 1.0) == " ".join(WORDS)
    assert len(random_crop(WORDS, rng, 0.5, 0.5, delete=1.0).split()) == 1  # everything deleted: keep one word


def test_crop_pair_draws_two_crops_of_the_text() -> None:
    rng = random.Random(3)
    pairs = [crop_pair(" ".join(WORDS), rng, 0.2, 0.4, delete=0.0) for _ in range(50)]
    for a, b in pairs:
        for crop in (a, b):
            pos = _positions(crop)
            assert 4 <= len(pos) <= 8 and pos == list(range(pos[0], pos[0] + len(pos)))
    assert any(a != b for a, b in pairs)  # independent draws

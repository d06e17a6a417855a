"""Rank fusion on rankings small enough to fuse by hand (sparsearch.retriever.fusion)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparsearch.retriever.fusion import FusionConfig, fuse, fuse_batch, fuse_runs, minmax_normalize, zscore_normalize
from sparsearch.types import Hits

# Two rankings of one query: A from an engine (Hits, its own order), B as a score mapping.
A = Hits(["a", "b", "c"], np.array([10.0, 6.0, 2.0], np.float32))
B = {"b": 0.9, "d": 0.5, "a": 0.1}


def as_pairs(hits: Hits) -> list[tuple[str, float]]:
    return list(zip(hits.ids, hits.scores.tolist()))


def test_minmax_two_way_alpha() -> None:
    # A: min 2, max 10 -> a (10-2)/8 = 1, b (6-2)/8 = 0.5, c 0.
    # B: min 0.1, max 0.9 -> b 1, d (0.5-0.1)/0.8 = 0.5, a 0.
    # alpha 0.6: a = .6*1 + .4*0 = .6; b = .6*.5 + .4*1 = .7;
    #            c = .6*0 + .4*0 (missing from B -> 0) = 0; d = .6*0 (missing from A) + .4*.5 = .2
    out = fuse([A, B], FusionConfig("minmax", alpha=0.6))
    assert out.ids == ["b", "a", "d", "c"]
    assert out.scores.tolist() == pytest.approx([0.7, 0.6, 0.2, 0.0], abs=1e-7)
    assert out.scores.dtype == np.float32


def test_alpha_one_and_zero_keep_one_ranking_order() -> None:
    only_a = fuse([A, B], FusionConfig("minmax", alpha=1.0))
    # d (B only) and c (A's minimum) both score 0: first appearance puts c (from A) first.
    assert only_a.ids == ["a", "b", "c", "d"]
    only_b = fuse([A, B], FusionConfig("minmax", alpha=0.0))
    assert only_b.ids[:2] == ["b", "d"]


def test_zscore_equal_weights_and_missing_gets_minimum_z() -> None:
    # A: mean 6, population std sqrt((16+0+16)/3) = sqrt(32/3) -> z = (+4, 0, -4)/sqrt(32/3) = +-sqrt(3/2)
    # B: mean .5, std sqrt(.32/3) -> b +sqrt(3/2), d 0, a -sqrt(3/2)
    # Missing documents take the ranking's minimum z, -sqrt(3/2) in both.  Weights 1/2 each:
    # a = (z 1.2247 + -1.2247)/2 = 0; b = (0 + 1.2247)/2 = .6124; c = (-1.2247 + -1.2247)/2 = -1.2247;
    # d = (-1.2247 [missing from A] + 0)/2 = -.6124
    r = math.sqrt(1.5)
    out = fuse([A, B], FusionConfig("zscore"))
    assert out.ids == ["b", "a", "d", "c"]
    assert out.scores.tolist() == pytest.approx([r / 2, 0.0, -r / 2, -r], abs=1e-6)


def test_zscore_missing_is_not_the_mean() -> None:
    # A lone document found only by the second ranking must not beat the first ranking's
    # below-average candidates merely by being absent from it: it gets A's minimum z, not 0.
    first = {"x": 3.0, "y": 2.0, "z": 1.0}   # z-scores +1.2247, 0, -1.2247
    second = {"z": 1.0, "w": 1.0}            # constant: z 0 for both, missing also 0
    out = fuse([first, second], FusionConfig("zscore"))
    # x = (1.2247 + 0)/2, y = (0 + 0)/2, z = (-1.2247 + 0)/2, w = (-1.2247 [A's min] + 0)/2: a tie with z,
    # broken by first appearance (z came from the first ranking).
    assert out.ids == ["x", "y", "z", "w"]
    assert out.scores.tolist() == pytest.approx([0.61237, 0.0, -0.61237, -0.61237], abs=1e-5)


def test_rrf_hand_computed() -> None:
    # Ranks: A a1 b2 c3; B b1 d2 a3.  k = 60, weight 1 each:
    # a = 1/61 + 1/63 = .0163934 + .0158730 = .0322665
    # b = 1/62 + 1/61 = .0161290 + .0163934 = .0325225
    # c = 1/63 = .0158730;  d = 1/62 = .0161290
    out = fuse([A, B], FusionConfig("rrf"))
    assert out.ids == ["b", "a", "d", "c"]
    assert out.scores.tolist() == pytest.approx([1 / 62 + 1 / 61, 1 / 61 + 1 / 63, 1 / 62, 1 / 63], rel=1e-6)


def test_rrf_uses_ranks_not_scores_and_weights() -> None:
    scaled = {k: v * 1000 for k, v in B.items()}
    assert fuse([A, scaled], FusionConfig("rrf")) == fuse([A, B], FusionConfig("rrf"))
    # Weights 2 and 1, k = 0: a = 2/1 + 1/3 = 2.3333, b = 2/2 + 1/1 = 2, c = 2/3, d = 1/2
    out = fuse([A, B], FusionConfig("rrf", weights=(2.0, 1.0), rrf_k=0))
    assert as_pairs(out) == [("a", pytest.approx(7 / 3)), ("b", pytest.approx(2.0)),
                             ("c", pytest.approx(2 / 3)), ("d", pytest.approx(0.5))]


def test_ties_broken_by_first_appearance() -> None:
    x_first = Hits(["x", "y"], np.array([2.0, 1.0], np.float32))
    y_first = Hits(["y", "x"], np.array([2.0, 1.0], np.float32))
    # RRF: both 1/61 + 1/62, an exact tie: the first ranking's order decides.
    assert fuse([x_first, y_first], FusionConfig("rrf")).ids == ["x", "y"]
    assert fuse([y_first, x_first], FusionConfig("rrf")).ids == ["y", "x"]
    # Equal scores inside one mapping: its own (insertion) order gives the ranks.
    assert fuse([{"p": 1.0, "q": 1.0}], FusionConfig("rrf")).ids == ["p", "q"]
    assert fuse([{"q": 1.0, "p": 1.0}], FusionConfig("rrf")).ids == ["q", "p"]


def test_minmax_constant_ranking_maps_to_one() -> None:
    # {u: 5} alone: constant -> u 1.0 (missing 0).  {v: 3, w: 1} -> v 1, w 0.  Weights 1/2:
    # u = (1 + 0)/2 = .5, v = (0 + 1)/2 = .5 (tie: u appeared first), w = 0
    out = fuse([{"u": 5.0}, {"v": 3.0, "w": 1.0}], FusionConfig("minmax"))
    assert as_pairs(out) == [("u", 0.5), ("v", 0.5), ("w", 0.0)]
    assert minmax_normalize(np.array([4.0, 4.0]))[0].tolist() == [1.0, 1.0]


def test_zscore_constant_ranking_says_nothing() -> None:
    # {u: 5, t: 5}: std 0 -> z 0, missing 0.  {v: 3, w: 1}: mean 2, std 1 -> v +1, w -1, missing -1.
    # u = (0 + -1)/2 = -.5, t = -.5, v = (0 + 1)/2 = .5, w = (0 + -1)/2 = -.5
    out = fuse([{"u": 5.0, "t": 5.0}, {"v": 3.0, "w": 1.0}], FusionConfig("zscore"))
    assert as_pairs(out) == [("v", 0.5), ("u", -0.5), ("t", -0.5), ("w", -0.5)]
    z, missing = zscore_normalize(np.array([2.0, 2.0, 2.0]))
    assert z.tolist() == [0.0, 0.0, 0.0] and missing == 0.0


def test_depth_cuts_each_ranking_before_normalising() -> None:
    # depth 2: A -> a 10, b 6 -> a 1, b 0;  B -> b .9, d .5 -> b 1, d 0;  c never a candidate.
    # alpha .6: a = .6*1 + .4*0 = .6, b = .6*0 + .4*1 = .4, d = 0 + .4*0 = 0
    out = fuse([A, B], FusionConfig("minmax", alpha=0.6, depth=2))
    assert as_pairs(out) == [("a", pytest.approx(0.6)), ("b", pytest.approx(0.4)), ("d", 0.0)]


def test_k_truncates_and_empty_rankings() -> None:
    assert fuse([A, B], FusionConfig("rrf"), k=2).ids == ["b", "a"]
    empty = fuse([{}, A], FusionConfig("minmax"))
    assert empty.ids == ["a", "b", "c"]  # the empty ranking shifts every document by the same 0
    assert len(fuse([], FusionConfig("rrf"))) == 0


def test_three_rankings_need_weights_not_alpha() -> None:
    with pytest.raises(ValueError, match="alpha weighs exactly two"):
        fuse([A, B, B], FusionConfig("minmax", alpha=0.5))
    with pytest.raises(ValueError, match="3 weights given for 2"):
        fuse([A, B], FusionConfig("minmax", weights=(1, 1, 1)))
    # Default for n rankings: the mean of the min-max values.  C = {d: 1}: constant -> d 1.
    # a = (1 + 0 + 0)/3, b = (.5 + 1 + 0)/3 = .5, c = 0, d = (0 + .5 + 1)/3 = .5 (tie with b: b first)
    out = fuse([A, B, {"d": 1.0}], FusionConfig("minmax"))
    assert as_pairs(out) == [("b", pytest.approx(0.5)), ("d", pytest.approx(0.5)),
                             ("a", pytest.approx(1 / 3)), ("c", 0.0)]


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        FusionConfig("borda")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FusionConfig(alpha=1.5)
    with pytest.raises(ValueError):
        FusionConfig(weights=(-1.0, 1.0))
    with pytest.raises(ValueError):
        FusionConfig(depth=0)
    with pytest.raises(ValueError, match="NaN"):
        fuse([{"a": float("nan")}])


def test_repeated_id_keeps_first_position() -> None:
    dup = Hits(["a", "b", "a"], np.array([3.0, 2.0, 1.0], np.float32))
    # a keeps rank 1 (score 3), the repeat is ignored: min-max over [3, 2] -> a 1, b 0.
    assert as_pairs(fuse([dup])) == [("a", 1.0), ("b", 0.0)]


def test_batch_and_runs() -> None:
    sparse = [A, Hits(["q"], np.array([1.0], np.float32))]
    dense = [Hits(["b", "d", "a"], np.array([0.9, 0.5, 0.1], np.float32)), Hits([], np.zeros(0, np.float32))]
    out = fuse_batch([sparse, dense], FusionConfig("rrf"))
    assert out[0] == fuse([A, B], FusionConfig("rrf"))
    assert out[1].ids == ["q"] and out[1].scores.tolist() == pytest.approx([1 / 61])
    with pytest.raises(ValueError, match="same queries"):
        fuse_batch([sparse, dense[:1]])
    runs = fuse_runs([{"q1": A}, {"q1": B, "q2": {"z": 1.0}}], FusionConfig("rrf"))
    assert list(runs) == ["q1", "q2"]
    assert runs["q1"] == fuse([A, B], FusionConfig("rrf"))
    assert runs["q2"].ids == ["z"]

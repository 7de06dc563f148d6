"""Fidelity and diversity metrics (gendistill.evaluation.fidelity) against values worked out by hand, and the
Frechet distance against the matrix square root it avoids."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gendistill.evaluation.fidelity import capped, display_frame, frechet_distance, measure, prdc

# Real points on a line and k = 1: each real point's ball has the radius of its nearest other real point,
# 0, 1, 2, 3 -> 1 and 10 -> 7 (a point is inside a ball when its distance is below the radius).
REAL = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])


def test_prdc_matches_hand_computed_values():
    # fake 0.5 lies in the balls of 0 and 1, 2.9 in those of 2 and 3, 20 in none:
    # precision 2/3, density (2 + 2 + 0) / 3 / k = 4/3; coverage: 0, 1, 2, 3 have a fake point within their
    # radius, 10 (nearest fake 7.1 away, radius 7) not: 4/5; recall: fake radii (k = 1) 2.4, 2.4, 17.1, and
    # every real point is inside one of them (10 inside 20's): 1
    got = prdc(REAL, np.array([[0.5], [2.9], [20.0]]), nearest_k=1)
    assert got == pytest.approx({"precision": 2 / 3, "recall": 1.0, "density": 4 / 3, "coverage": 4 / 5})
    # fake 0.5, 2.9, 3.5: every fake point in a real ball (3.5 in those of 3 and 10): precision 1, density 6/3;
    # every real point has a fake one within its radius: coverage 1; fake radii 2.4, 0.6, 0.6 leave 10 out: recall 4/5
    got = prdc(REAL, np.array([[0.5], [2.9], [3.5]]), nearest_k=1)
    assert got == pytest.approx({"precision": 1.0, "recall": 4 / 5, "density": 2.0, "coverage": 1.0})


def test_prdc_of_a_set_no_larger_than_k_has_no_recall():
    """Recall needs each fake point's k-th neighbour among the fake ones; the other three use the real balls."""
    got = prdc(REAL, np.array([[0.5]]), nearest_k=1)
    assert math.isnan(got["recall"])
    assert got["precision"] == 1.0 and got["density"] == 2.0 and got["coverage"] == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="too few"):
        prdc(REAL[:2], np.array([[0.5], [1.0]]), nearest_k=2)


def test_frechet_distance_matches_hand_computed_values():
    # 1-D: real 0, 2 (mean 1, variance 2), fake 1, 5 (mean 3, variance 8): 4 + 2 + 8 - 2 sqrt(16) = 6
    assert frechet_distance(np.array([[0.0], [2.0]]), np.array([[1.0], [5.0]])) == pytest.approx(6.0)
    # 2-D: the corners of a square (mean (1, 1), covariance 4/3 I) and the same doubled and shifted by 1 (mean
    # (3, 3), 16/3 I): 8 + 2 (4/3 + 16/3 - 2 x 8/3) = 8 + 8/3
    square = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    assert frechet_distance(square, 2 * square + 1) == pytest.approx(8 + 8 / 3)
    assert frechet_distance(square, square) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(frechet_distance(square, square[:1]))


@pytest.mark.parametrize("n, m, d", [(40, 30, 6), (25, 12, 50)])  # more features than images: low-rank covariances
def test_frechet_distance_equals_the_matrix_square_root_formula(n, m, d):
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(n)
    real = rng.normal(size=(n, d))
    fake = rng.normal(size=(m, d)) @ rng.normal(size=(d, d)) * 0.5 + 0.3
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    ref = ((real.mean(0) - fake.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    assert frechet_distance(real, fake) == pytest.approx(ref, rel=1e-6)


def test_measure_gives_every_metric_and_the_display_keeps_the_spread():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 3)), rng.normal(size=(20, 3)) + 2.0
    got = measure(real, fake, 5)
    assert set(got) == {"precision", "recall", "density", "coverage", "frechet_distance"}
    near = measure(real, rng.normal(size=(20, 3)), 5)
    assert near["frechet_distance"] < got["frechet_distance"] and near["precision"] > got["precision"]
    table = pd.DataFrame(
        [
            {"set": "distilled", "n_images": 20, "n_draws": 1, **got, **{f"{k}_std": np.nan for k in got}},
            {"set": "random_subset", "n_images": 20, "n_draws": 2, **near, **{f"{k}_std": 0.01 for k in near}},
        ]
    )
    shown = display_frame(table)
    assert "+-" not in shown["precision"].iloc[0] and shown["precision"].iloc[1].endswith("+- 0.010")
    assert capped(5, 10).tolist() == list(range(5)) and len(set(capped(100, 10).tolist())) == 10

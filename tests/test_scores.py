"""DD-Ranking's scores (gendistill.evaluation.scores) on hand-computed values.

normalise(x) = (e^x - e^-1) / (e - e^-1), with e = 2.718281828, e^-1 = 0.367879441, e - e^-1 = 2.350402387.
"""

import math

import pytest

from gendistill.evaluation.scores import (
    augmentation_robust_score,
    hard_label_recovery,
    improvement_over_random,
    label_robust_score,
    normalise,
)


def test_normalise_maps_minus_one_to_zero_and_one_to_one():
    assert normalise(-1.0) == pytest.approx(0.0, abs=1e-12)
    assert normalise(1.0) == pytest.approx(1.0)
    # alpha = 0: (1 - 0.367879441) / 2.350402387 = 0.268941421
    assert normalise(0.0) == pytest.approx(0.268941421, abs=1e-9)


def test_hlr_and_ior_are_differences_of_fractions():
    # HLR = 0.95 - 0.85 = 0.10; IOR = 0.85 - 0.55 = 0.30
    assert hard_label_recovery(0.95, 0.85) == pytest.approx(0.10)
    assert improvement_over_random(0.85, 0.55) == pytest.approx(0.30)
    assert improvement_over_random(0.50, 0.60) == pytest.approx(-0.10)


def test_lrs_on_hand_computed_values():
    # alpha = 0.5 x 0.30 - 0.5 x 0.10 = 0.10; e^0.10 = 1.105170918
    # LRS = (1.105170918 - 0.367879441) / 2.350402387 = 0.737291477 / 2.350402387 = 0.313687342
    assert label_robust_score(0.10, 0.30) == pytest.approx(0.313687342, abs=1e-9)
    # w = 0.8: alpha = 0.8 x 0.30 - 0.2 x 0.10 = 0.22; e^0.22 = 1.246076731
    # LRS = (1.246076731 - 0.367879441) / 2.350402387 = 0.373636997
    assert label_robust_score(0.10, 0.30, weight=0.8) == pytest.approx(0.373636997, abs=1e-9)
    # the extremes: a set as good as the full data and 100 points above random scores 1; the reverse 0
    assert label_robust_score(-1.0, 1.0) == pytest.approx(normalise(1.0))
    assert label_robust_score(1.0, -1.0) == pytest.approx(0.0, abs=1e-12)


def test_ars_on_hand_computed_values():
    # with aug 0.60 - 0.50 = 0.10, without 0.55 - 0.35 = 0.20; beta = 0.5 x 0.10 + 0.5 x 0.20 = 0.15
    # e^0.15 = 1.161834243; ARS = (1.161834243 - 0.367879441) / 2.350402387 = 0.337795267
    assert augmentation_robust_score(0.60, 0.50, 0.55, 0.35) == pytest.approx(0.337795267, abs=1e-9)
    # g = 1: only the augmented runs count: beta = 0.10 -> 0.313687342 (as the LRS above)
    assert augmentation_robust_score(0.60, 0.50, 0.55, 0.35, weight=1.0) == pytest.approx(0.313687342, abs=1e-9)


def test_percentages_are_refused_not_scored():
    # the ddranking package computes LRS from percentages: HLR 10, IOR 30 -> alpha 10 -> 9,371 ("normalised")
    assert normalise(0.5 * 30 - 0.5 * 10) == pytest.approx(9371.2, abs=0.1)
    with pytest.raises(ValueError, match="percentage"):
        label_robust_score(10.0, 30.0)
    with pytest.raises(ValueError, match="percentage"):
        hard_label_recovery(95.0, 85.0)
    with pytest.raises(ValueError, match="percentage"):
        improvement_over_random(85.0, 55.0)
    with pytest.raises(ValueError, match="percentage"):
        augmentation_robust_score(60.0, 50.0, 55.0, 35.0)
    with pytest.raises(ValueError, match="outside"):
        hard_label_recovery(-0.1, 0.5)  # an accuracy below 0
    with pytest.raises(ValueError, match="weight"):
        label_robust_score(0.1, 0.3, weight=1.5)


def test_missing_components_give_nan():
    assert math.isnan(label_robust_score(math.nan, 0.3))
    assert math.isnan(hard_label_recovery(math.nan, 0.5))

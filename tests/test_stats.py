"""Statistics over training seeds (gendistill.evaluation.stats) on hand-computed values.

Student t quantiles t(0.975, df) from the textbook table: df 1 -> 12.706, df 2 -> 4.303, df 4 -> 2.776,
df 9 -> 2.262, df 30 -> 2.042, df 120 -> 1.980, df infinite -> 1.960; t(0.95, 4) -> 2.132.
"""

import math

import pytest

from gendistill.evaluation.stats import NOT_DISTINGUISHABLE, difference, mean_interval, t_quantile


def test_t_quantiles_match_the_table():
    assert t_quantile(2) == pytest.approx(4.303, abs=5e-4)
    assert t_quantile(4) == pytest.approx(2.776, abs=5e-4)
    assert t_quantile(9) == pytest.approx(2.262, abs=5e-4)
    assert t_quantile(1) == pytest.approx(12.706, abs=5e-4)
    assert t_quantile(30) == pytest.approx(2.042, abs=5e-4)
    assert t_quantile(120) == pytest.approx(1.980, abs=5e-4)
    assert t_quantile(1e9) == pytest.approx(1.960, abs=5e-4)
    assert t_quantile(4, level=0.90) == pytest.approx(2.132, abs=5e-4)


def test_t_quantile_of_a_fractional_df_lies_between_its_neighbours():
    """Welch's degrees of freedom are fractional: the quantile falls between those of the integers around it."""
    assert t_quantile(4) > t_quantile(4.5) > t_quantile(5)
    with pytest.raises(ValueError, match="df > 0"):
        t_quantile(0)


def test_mean_interval_on_three_seeds():
    # mean 0.82; sample std s = sqrt((0.02^2 + 0 + 0.02^2) / 2) = 0.02; sem = 0.02 / sqrt(3) = 0.011547005
    # half width = 4.302653 x 0.011547005 = 0.049682754; population std = sqrt(0.0008 / 3) = 0.016329932
    iv = mean_interval([0.80, 0.82, 0.84])
    assert iv.mean == pytest.approx(0.82)
    assert iv.std == pytest.approx(0.016329932, abs=1e-9)
    assert iv.half_width == pytest.approx(0.049682754, abs=1e-6)
    assert (iv.low, iv.high) == pytest.approx((0.770317246, 0.869682754), abs=1e-6)
    assert iv.n == 3


def test_one_seed_has_a_mean_and_no_interval():
    iv = mean_interval([0.7])
    assert iv.mean == 0.7 and iv.n == 1
    assert math.isnan(iv.low) and math.isnan(iv.high)
    assert mean_interval([]).n == 0
    assert mean_interval([0.5, math.nan, 0.7]).n == 2  # NaN entries (missing runs) are dropped


def test_paired_difference_that_excludes_zero():
    # per-seed differences 0.10, 0.05, 0.10: mean 0.083333; s = sqrt((0.016667^2 + 0.033333^2 + 0.016667^2) / 2)
    # = 0.028867513; sem = 0.016666667; half = 4.302653 x 0.016666667 = 0.071710879
    d = difference({0: 0.90, 1: 0.85, 2: 0.88}, {0: 0.80, 1: 0.80, 2: 0.78})
    assert d.paired and d.n == 3 and d.df == 2
    assert d.mean == pytest.approx(0.083333333, abs=1e-9)
    assert (d.low, d.high) == pytest.approx((0.011622454, 0.155044212), abs=1e-6)
    assert d.distinguishable is True and d.verdict == "higher"


def test_paired_difference_whose_interval_contains_zero_is_not_distinguishable():
    # differences 0.02, -0.01, 0.02: mean 0.01; s = sqrt((0.01^2 + 0.02^2 + 0.01^2) / 2) = 0.017320508;
    # sem = 0.01; half = 0.043026527 -> [-0.033026527, 0.053026527]
    d = difference({0: 0.62, 1: 0.59, 2: 0.62}, {0: 0.60, 1: 0.60, 2: 0.60})
    assert (d.low, d.high) == pytest.approx((-0.033026527, 0.053026527), abs=1e-6)
    assert d.distinguishable is False and d.verdict == NOT_DISTINGUISHABLE
    lower = difference({0: 0.5, 1: 0.52, 2: 0.49}, {0: 0.6, 1: 0.61, 2: 0.6})
    assert lower.verdict == "lower"


def test_unpaired_seeds_use_welchs_interval():
    # a: 0.9, 0.8, 0.7 (seeds 0-2); b: 0.6, 0.5, 0.4 (seeds 3-5): both sample variances 0.01, n 3
    # se = sqrt(0.01/3 + 0.01/3) = 0.081649658; Welch df = (2 x 0.003333)^2 / (2 x 0.003333^2 / 2) = 4
    # half = 2.776445 x 0.081649658 = 0.226696 -> 0.3 +- 0.226696
    d = difference({0: 0.9, 1: 0.8, 2: 0.7}, {3: 0.6, 4: 0.5, 5: 0.4})
    assert not d.paired
    assert d.df == pytest.approx(4.0)
    assert d.mean == pytest.approx(0.3)
    assert (d.low, d.high) == pytest.approx((0.3 - 0.226696, 0.3 + 0.226696), abs=1e-5)


def test_too_few_seeds_give_no_verdict():
    d = difference({0: 0.9}, {0: 0.8})
    assert d.mean == pytest.approx(0.1) and d.verdict == "no interval"
    assert difference({}, {0: 0.8}).n == 0

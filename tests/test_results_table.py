"""The results table with label regimes, runs without augmentation, intervals and DD-Ranking's scores
(evaluation/table.py) on hand-computed values, and the summary the report prints."""

from __future__ import annotations

import math

import pytest

from gendistill.evaluation.table import display_frame, rows_frame, summarise
from gendistill.report.summary import accuracy_lines


def metric(set_, seed, acc, labels="hard", aug=True, key=None):
    return {
        "set": set_,
        "model_label": "ConvNet-D3",
        "seed": seed,
        "accuracy": acc,
        "n_train": 10,
        "n_test": 100,
        "recipe": {"epochs": 3, "train_augment": aug},
        "train_seconds": 1.0,
        "chance": 0.1,
        "labels": labels,
        "eval_key": key or set_,
    }


# seeds 0, 1, 2 of each run (accuracies as fractions)
ACC = {
    ("distilled", "hard", True): [0.80, 0.82, 0.84],
    ("random_subset", "hard", True): [0.70, 0.74, 0.72],
    ("distilled", "kd", True): [0.90, 0.88, 0.89],
    ("random_subset", "kd", True): [0.89, 0.90, 0.88],
    ("distilled", "kd", False): [0.85, 0.86, 0.84],
    ("random_subset", "kd", False): [0.80, 0.81, 0.82],
    ("full", "hard", True): [0.95, 0.95, 0.95],
}


def frame():
    rows = [metric(s, k, a, labels, aug) for (s, labels, aug), accs in ACC.items() for k, a in enumerate(accs)]
    return rows_frame(rows, protocol="eccv2024_challenge")


def test_per_seed_comparisons_and_scores():
    df = frame()
    d0 = df[(df["set"] == "distilled") & (df["labels"] == "kd") & df["train_augment"] & (df["seed"] == 0)].iloc[0]
    # vs random: 0.90 - 0.89; HLR = full 0.95 - distilled hard 0.80 = 0.15; IOR = 0.90 - 0.89 = 0.01
    assert d0.vs_random == pytest.approx(0.01) and d0.hlr == pytest.approx(0.15) and d0.ior == pytest.approx(0.01)
    # LRS: a = 0.5 x 0.01 - 0.5 x 0.15 = -0.07; (e^-0.07 - e^-1) / (e - e^-1)
    # = (0.932393820 - 0.367879441) / 2.350402387 = 0.564514379 / 2.350402387 = 0.240177759
    assert d0.lrs == pytest.approx(0.240177759, abs=1e-8)
    # ARS: b = 0.5 x (0.90 - 0.89) + 0.5 x (0.85 - 0.80) = 0.03
    # (e^0.03 - e^-1) / 2.350402387 = (1.030454534 - 0.367879441) / 2.350402387 = 0.281898579
    assert d0.ars == pytest.approx(0.281898579, abs=1e-8)
    noaug = df[(df["labels"] == "kd") & ~df["train_augment"] & (df["set"] == "distilled")]
    assert noaug["lrs"].isna().all() and noaug["vs_random"].notna().all()  # compared with random without aug
    assert df.loc[df["set"] == "random_subset", "vs_random"].isna().all()
    assert set(df["protocol"]) == {"eccv2024_challenge"} and set(df["accuracy_kind"]) == {"final"}


def test_summary_intervals_verdicts_and_scores():
    s = summarise(frame()).set_index(["set", "labels", "train_augment"])
    hard = s.loc[("distilled", "hard", True)]
    # accuracy interval: mean 0.82, s 0.02 -> +- 0.049682754
    assert (hard.accuracy_ci_low, hard.accuracy_ci_high) == pytest.approx((0.770317, 0.869683), abs=1e-6)
    # vs random, paired: differences 0.10, 0.08, 0.12 -> mean 0.10, s 0.02 -> +- 4.968 points
    assert hard.minus_random_subset_points == pytest.approx(10.0)
    assert (hard.vs_random_ci_low_points, hard.vs_random_ci_high_points) == pytest.approx((5.03, 14.97), abs=0.01)
    assert hard.vs_random == "higher" and hard.vs_random_paired
    kd = s.loc[("distilled", "kd", True)]
    # differences 0.01, -0.02, 0.01: mean 0, interval around 0 -> not distinguishable
    assert kd.minus_random_subset_points == pytest.approx(0.0, abs=1e-9) and kd.vs_random == "not distinguishable"
    # LRS over seeds: HLR 0.15, 0.13, 0.11 with IOR 0.01, -0.02, 0.01
    assert kd.hlr == pytest.approx(0.13) and kd.ior == pytest.approx(0.0, abs=1e-12)
    lrs = [
        (math.exp(0.5 * i - 0.5 * h) - math.exp(-1)) / (math.e - math.exp(-1))
        for h, i in ((0.15, 0.01), (0.13, -0.02), (0.11, 0.01))
    ]
    assert kd.lrs == pytest.approx(sum(lrs) / 3)
    assert kd.lrs_ci_low < kd.lrs < kd.lrs_ci_high and kd.lrs_weight == 0.5
    assert math.isnan(s.loc[("full", "hard", True)].lrs)


def test_default_single_regime_summary_keeps_its_values():
    rows = [
        metric(s, k, a)
        for s, accs in (("distilled", [0.2, 0.4, 0.3]), ("random_subset", [0.5, 0.7]))
        for k, a in enumerate(accs)
    ]
    s = summarise(rows_frame(rows)).set_index("set")
    assert s.loc["distilled"].minus_random_subset_points == pytest.approx(-30.0)  # mean 0.3 - mean 0.6
    assert s.loc["distilled"].vs_random_paired is False or s.loc["distilled"].vs_random_paired == 0  # seeds differ
    assert s.loc["random_subset"].minus_random_subset_points == 0.0
    assert list(s.reset_index().columns[:15]) == [
        "set",
        "model",
        "accuracy_mean",
        "accuracy_std",
        "accuracy_min",
        "accuracy_max",
        "n_seeds",
        "n_train",
        "epochs",
        "chance",
        "train_seconds_mean",
        "labels",
        "accuracy",
        "minus_random_subset_points",
        "fraction_of_full",
    ]


def test_report_lines_name_regimes_intervals_and_verdicts():
    summary = summarise(frame())
    text = "\n".join(accuracy_lines(summary))
    assert "distilled [kd]" in text and "distilled [kd, no aug]" in text
    assert "not distinguishable" in text and "higher" in text
    assert "DD-Ranking's scores" in text and "comparable only under the same protocol" in text
    assert "eccv2024_challenge" in text
    shown = display_frame(summary)
    assert {"95% CI", "vs random 95% CI", "verdict", "LRS", "ARS 95% CI"} <= set(shown.columns)

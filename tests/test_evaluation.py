"""Evaluation: the networks match the field's, they learn what is learnable, subsets are seeded and
class-restricted, the table math is right, progress is logged, and adding a seed reruns only that job."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_RECIPE
from torch import nn

from gendistill.evaluation.models import build_model, convnet_depth, model_label
from gendistill.evaluation.networks import ConvNet
from gendistill.evaluation.progress import EpochProgress
from gendistill.evaluation.real import real_split, select_subset
from gendistill.evaluation.table import per_class_frame, rows_frame, summarise
from gendistill.evaluation.train import lr_at, random_crop_flip, train_and_test

RECIPE = {**TINY_RECIPE, "epochs": 4}


def separable(labels: list[int], per_class: int, size: int, seed: int):
    """Each class a different solid colour plus noise: trivially separable, but only for a model that learns."""
    g = torch.Generator().manual_seed(seed)
    palette = torch.tensor([[1.5, -1, -1], [-1, 1.5, -1], [-1, -1, 1.5], [1, 1, -1.5], [-1.5, 1, 1]])
    y = torch.tensor(labels).repeat_interleave(per_class)
    colours = palette[torch.tensor([labels.index(int(c)) for c in y])]
    x = colours.view(-1, 3, 1, 1) + 0.5 * torch.randn(len(y), 3, size, size, generator=g)
    return x, y


@pytest.mark.slow
@pytest.mark.parametrize("model,size,epochs", [("convnet", 32, 4), ("resnet18", 16, 4)])
def test_model_learns_a_trivially_separable_set(model, size, epochs):
    labels = [2, 5, 7]  # a class-restricted run inside a 10-class head
    x, y = separable(labels, 24, size, seed=0)
    xt, yt = separable(labels, 20, size, seed=1)
    torch.set_num_threads(2)
    res = train_and_test(x, y, xt, yt, 10, model, 0, {**RECIPE, "epochs": epochs}, "cpu", label_set=labels)
    assert res["accuracy"] >= 0.9, res
    assert set(res["per_class_accuracy"]) == set(labels) and res["n_train"] == 72 and res["n_test"] == 60


def test_untrained_prediction_is_restricted_to_the_run_classes():
    from gendistill.evaluation.train import predict

    torch.manual_seed(0)
    net = build_model("convnet", 10, 32)
    x = torch.randn(50, 3, 32, 32)
    assert set(predict(net, x, "cpu", 16, [3, 8]).tolist()) <= {3, 8}


def test_convnet_is_the_fields_d3_d4():
    assert convnet_depth(32) == 3 and convnet_depth(64) == 4
    assert model_label("convnet", 32) == "ConvNet-D3" and model_label("convnet", 64) == "ConvNet-D4"
    for size, depth in ((32, 3), (64, 4)):
        net = build_model("convnet", 100, size)
        kinds = [type(m) for m in net.features]
        assert kinds == [nn.Conv2d, nn.GroupNorm, nn.ReLU, nn.AvgPool2d] * depth
        for conv, norm in zip(net.features[0::4], net.features[1::4]):
            assert conv.out_channels == 128 and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
            assert norm.num_groups == norm.num_channels == 128 and norm.affine  # instance norm
        assert net.features(torch.zeros(2, 3, size, size)).shape == (2, 128, 4, 4)
        assert isinstance(net.classifier, nn.Linear) and net.classifier.in_features == 128 * 16
        assert net(torch.zeros(2, 3, size, size)).shape == (2, 100)
    assert isinstance(build_model("convnet", 10, 32), ConvNet)


def test_resnet18_has_a_small_image_stem():
    net = build_model("resnet18", 10, 32)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1) and isinstance(net.maxpool, nn.Identity)
    x = torch.zeros(2, 3, 32, 32)
    stem = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    assert stem.shape == (2, 64, 32, 32)  # no downsampling in the stem
    assert net.layer4(net.layer3(net.layer2(net.layer1(stem)))).shape == (2, 512, 4, 4)
    assert net(x).shape == (2, 10) and sum(1 for m in net.modules() if isinstance(m, nn.BatchNorm2d)) == 20
    assert model_label("resnet18", 32) == "ResNet-18"


def test_recipe_step_decay_at_half_and_crop_flip_keep_shape():
    assert [lr_at(e, 10, 0.01, "step") for e in (0, 4, 5, 9)] == [
        0.01,
        0.01,
        pytest.approx(0.001),
        pytest.approx(0.001),
    ]
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    a = random_crop_flip(x, torch.Generator().manual_seed(0))
    b = random_crop_flip(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)


def test_random_subset_is_seeded_per_class_and_class_restricted():
    labels = np.repeat(np.arange(10), 30)
    np.random.default_rng(0).shuffle(labels)
    counts = {1: 5, 4: 7, 9: 3}
    a, b, c = (select_subset(labels, counts, s) for s in (0, 0, 1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(set(a.tolist())) == len(a)  # no duplicates
    assert pd.Series(labels[a]).value_counts().to_dict() == counts
    with pytest.raises(ValueError, match="fewer than IPC"):
        select_subset(labels, {2: 31}, 0)


def test_real_split_keeps_only_the_run_classes():
    from gendistill.datasets import get_adapter

    adapter = get_adapter({"name": "digits", "classes": [0, 3], "root": None})
    x, y = real_split(adapter, "train", [0, 3])
    assert set(np.unique(y).tolist()) == {0, 3} and len(x) == len(y) > 0


def metric(set_, seed, acc, per_class=None, model="ConvNet-D3"):
    return {
        "set": set_,
        "model_label": model,
        "seed": seed,
        "accuracy": acc,
        "n_train": 10,
        "n_test": 100,
        "recipe": {"epochs": 3},
        "train_seconds": 1.0,
        "chance": 0.2,
        "per_class_accuracy": per_class or {},
    }


def test_summary_math_on_synthetic_rows():
    rows = [
        metric("full", 0, 0.9),
        metric("distilled", 0, 0.2),
        metric("distilled", 1, 0.4),
        metric("distilled", 2, 0.3),
        metric("random_subset", 0, 0.5),
        metric("random_subset", 1, 0.7),
        metric("full", 1, 0.9),
    ]
    df = rows_frame(rows)
    assert list(df["set"]) == ["distilled"] * 3 + ["random_subset"] * 2 + ["full"] * 2
    s = summarise(df).set_index("set")
    d = s.loc["distilled"]
    assert d.accuracy_mean == pytest.approx(0.3) and d.n_seeds == 3
    assert d.accuracy_std == pytest.approx(math.sqrt(((0.1) ** 2 + 0 + (0.1) ** 2) / 3))  # ddof=0
    assert d.accuracy == "30.00 +- 8.16" and d.accuracy_min == 0.2 and d.accuracy_max == 0.4
    assert d.minus_random_subset_points == pytest.approx(-30.0)
    assert d.fraction_of_full == pytest.approx(0.3 / 0.9, abs=1e-4)
    assert s.loc["full"].accuracy_std == 0.0 and s.loc["random_subset"].accuracy_std == pytest.approx(0.1)
    one = summarise(rows_frame([metric("distilled", 0, 0.5)]))
    assert one.accuracy_std.iloc[0] == 0.0 and np.isnan(one.minus_random_subset_points.iloc[0])


def test_per_class_table():
    rows = [
        metric("distilled", 0, 0, {"0": 0.2, "3": 1.0}),
        metric("distilled", 1, 0, {"0": 0.4, "3": 0.8}),
        metric("random_subset", 0, 0, {"0": 0.9, "3": 0.9}),
    ]
    pc = per_class_frame(rows, {0: "zero", 3: "three"})
    d = pc[pc.set == "distilled"].set_index("class_name")
    assert d.loc["zero"].accuracy_mean == pytest.approx(0.3) and d.loc["zero"].accuracy_std == pytest.approx(0.1)
    assert d.loc["zero"].minus_random_subset_points == pytest.approx(-60.0)
    assert d.loc["three"].minus_random_subset_points == pytest.approx(0.0)
    assert pc[pc.set == "random_subset"].minus_random_subset_points.isna().all()


def test_plots_and_tables_render(tmp_path):
    from PIL import Image

    from gendistill.report.plots import accuracy_plot, html_table, per_class_plot

    rows = [
        metric(s, k, a, {"0": a, "1": a / 2}, m)
        for s, a in (("distilled", 0.3), ("random_subset", 0.6), ("full", 0.9))
        for k in (0, 1)
        for m in ("ConvNet-D3", "ResNet-18")
    ]
    summary = summarise(rows_frame(rows))
    accuracy_plot(summary, str(tmp_path / "a.png"))
    per_class_plot(per_class_frame(rows, {0: "zero", 1: "one"}), str(tmp_path / "p.png"))
    html_table(summary, str(tmp_path / "t.html"), "Results <x>")
    assert Image.open(tmp_path / "a.png").size[0] > 300 and Image.open(tmp_path / "p.png").size[0] > 300
    text = (tmp_path / "t.html").read_text()
    assert "<caption>Results &lt;x&gt;</caption>" in text and "30.00 +- 0.00" in text


def test_epoch_progress_writes_about_ten_plain_lines(caplog):
    with caplog.at_level(logging.INFO, logger="gendistill.evaluate"):
        p = EpochProgress(300, "distilled/convnet/seed0")
        for e in range(1, 301):
            p(e, 300, 1.0 / e)
        p.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10 and "300/300" in lines[-1] and "loss 0.0033" in lines[-1]
    assert all("\r" not in line and "epoch" in line for line in lines)


@pytest.mark.workflow
def test_adding_a_seed_or_model_reruns_only_those_evaluation_jobs(tiny_run, tmp_path):
    from conftest import TINY_CONFIG, deep_update, job_counts, planned_jobs, run_snakemake

    wd = tiny_run  # dry runs only: nothing is written
    assert job_counts(run_snakemake(wd, TINY_CONFIG, "--dag").stdout) == {}
    two_seeds = deep_update(TINY_CONFIG, {"evaluation": {"seeds": [0, 1]}})
    counts = job_counts(run_snakemake(wd, two_seeds, "--dag").stdout)
    assert counts == {"evaluate": 1, "results_table": 1, "evaluation_plots": 1, "runtimes": 1, "all": 1}, counts
    planned = [w for rule, w in planned_jobs(run_snakemake(wd, two_seeds, "--dag").stdout) if rule == "evaluate"]
    assert planned == [{"model": "convnet", "scope": "", "seed": "1", "set": "distilled"}], planned
    cfg = deep_update(TINY_CONFIG, {"evaluation": {"models": ["convnet", "resnet18"]}})
    counts = job_counts(run_snakemake(wd, cfg, "--dag").stdout)
    assert counts.get("evaluate") == 1 and "sample" not in counts and "package" not in counts, counts


@pytest.mark.workflow
def test_tiny_run_writes_tidy_results(tiny_run):
    res = tiny_run / "results" / "t" / "results"
    rows = pd.read_csv(res / "results.csv")
    assert list(rows[["set", "model", "seed"]].itertuples(index=False, name=None)) == [("distilled", "ConvNet-D3", 0)]
    per_class = pd.read_csv(res / "per_class.csv")
    assert per_class["class_name"].tolist() == ["zero", "one", "two"]
    metrics = json.loads((tiny_run / "results" / "t" / "eval" / "distilled" / "convnet" / "seed0.json").read_text())
    assert metrics["chance"] == pytest.approx(1 / 3) and metrics["n_train"] == 18
    log = (tiny_run / "results" / "t" / "logs" / "evaluate" / "distilled" / "convnet" / "seed0.log").read_text()
    assert "2/2 [" in log and "epoch" in log
    for f in ("accuracy.png", "per_class.png", "results.html", "per_class.html"):
        assert (res / f).stat().st_size > 0

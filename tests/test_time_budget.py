"""Time-budget mode: the planning arithmetic (exact) and a CPU smoke test of the measuring CLI (tiny model)."""

from __future__ import annotations

import json

import pytest
import yaml

from gendistill.time_budget import fit_linear, main, plan_n_generated, predict_seconds


def test_largest_n_that_fits_without_overheads():
    # 2 classes, 10 img/s, 100 s: 1000 images in all -> 500 per class; IPC = 500 x (1 + 4)
    p = plan_n_generated(throughput=10, budget_seconds=100, n_classes=2, n_aug=4)
    assert (p.n_generated, p.ipc, p.fits, p.limited_by) == (500, 2500, True, "budget")
    assert p.predicted_seconds == pytest.approx(100)


def test_overheads_and_safety_reduce_n_and_plan_is_maximal():
    kw = dict(
        throughput=7.3,
        n_classes=100,
        n_aug=4,
        per_class_overhead=0.31,
        fixed_overhead=42.0,
        per_output_image_seconds=1e-4,
    )
    p = plan_n_generated(budget_seconds=600, safety=0.9, **kw)
    assert p.fits and p.usable_seconds == pytest.approx(540)
    assert predict_seconds(p.n_generated, **kw) <= 540 < predict_seconds(p.n_generated + 1, **kw)
    # (540 - 42) / 100 - 0.31 = 4.67 s per class; per image 1/7.3 + 5e-4 s -> 33 images
    assert p.n_generated == 33 and p.ipc == 165
    assert plan_n_generated(budget_seconds=600, safety=1.0, **kw).n_generated > p.n_generated


def test_oversampling_pays_for_every_candidate_sampled():
    # 2 classes, 10 img/s, 100 s: 1000 images sampled in all; oversample 5 -> 100 kept per class (500 sampled)
    p = plan_n_generated(throughput=10, budget_seconds=100, n_classes=2, n_aug=4, oversample=5)
    assert (p.n_generated, p.ipc) == (100, 500)
    assert predict_seconds(100, throughput=10, n_classes=2, n_aug=4, oversample=5) == pytest.approx(100)


def test_paper_scale_example():
    # the paper's CIFAR-100 result, IPC 20 = 4 generated x 5, in 600 s: 400 images need >= ~0.7 img/s here
    p = plan_n_generated(
        throughput=1.0, budget_seconds=600, n_classes=100, n_aug=4, fixed_overhead=60, per_class_overhead=0.5
    )
    assert (p.n_generated, p.ipc) == (4, 20)


def test_nothing_fits_and_cap():
    p = plan_n_generated(throughput=1, budget_seconds=10, n_classes=100, fixed_overhead=5)
    assert (p.n_generated, p.ipc, p.fits, p.limited_by) == (0, 0, False, "nothing fits")
    assert not plan_n_generated(throughput=100, budget_seconds=10, n_classes=1, fixed_overhead=20).fits
    c = plan_n_generated(throughput=100, budget_seconds=100, n_classes=1, n_aug=2, max_n_generated=50)
    assert (c.n_generated, c.ipc, c.limited_by) == (50, 150, "max_n_generated")


@pytest.mark.parametrize(
    "bad",
    [dict(throughput=0), dict(n_classes=0), dict(safety=0), dict(safety=1.5), dict(fixed_overhead=-1), dict(n_aug=-1)],
)
def test_invalid_inputs_raise(bad):
    kw = {**dict(throughput=10, budget_seconds=100, n_classes=10), **bad}
    with pytest.raises(ValueError):
        plan_n_generated(**kw)


def test_fit_linear_recovers_throughput_and_overhead():
    pts = [(n, 0.25 + n / 40) for n in (8, 16, 32, 8, 16, 32)]
    thr, ovh = fit_linear(pts)
    assert thr == pytest.approx(40) and ovh == pytest.approx(0.25)
    assert fit_linear([(10, 2.0)]) == (5.0, 0.0)
    thr, ovh = fit_linear([(8, 1.0), (16, 0.9)])  # noise: negative slope -> average rate of the largest run
    assert thr == pytest.approx(16 / 0.9) and ovh == 0.0


def _config(path, **sections):
    """A run config for the CLI: ten class names (the tiny DiT's labels), the tiny random-weight model on the CPU."""
    cfg = {
        "run": "tb",
        "dataset": {"name": "classlist", "class_names": list(DIGITS), "image_size": 16},
        "model": {"tiny": {"seed": 0}},
        "generation": {"n_generated": 2, "resolution": 32, "device": "cpu", "batch_size": 4},
        "augmentation": {"n_aug": 4},
        **sections,
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
QUICK = ["--timed-batches", "2", "--repeats", "1", "--budget", "60"]


@pytest.mark.slow
def test_cli_measures_the_runs_config_on_cpu_and_writes_record(tmp_path, capsys, monkeypatch):
    """The classes, n_aug, oversample, batch size and resolution come from the run's config; a
    time_budget_record the config already names (an older record) does not stop a new measurement."""
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"kind": "gendistill.time_budget", "recommendation": {"n_generated": 99}}))
    cfg = _config(
        tmp_path / "run.yaml",
        dataset={"name": "digits", "classes": [0, 1, 2]},  # real images: selection's teacher can be trained
        selection={"oversample": 2, "criterion": "confidence"},
        time_budget_record=str(old),
    )
    out = tmp_path / "tb.json"
    assert main(["--configfile", str(cfg), *QUICK, "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    r, m = rec["recommendation"], rec["measured"]
    assert m["throughput_img_s"] > 0 and m["batch_size"] == 4 and len(m["runs"]) == 2
    assert (m["resolution"], m["out_size"], m["family"]) == (32, 32, "sdxl")
    assert rec["model"]["n_classes"] == 3 and rec["model"]["n_aug"] == 4 and rec["model"]["oversample"] == 2
    assert r["fits"] and r["n_generated"] >= 1 and r["ipc"] == 5 * r["n_generated"]
    assert r["predicted_seconds"] <= 60 * 0.9
    assert rec["environment"]["device"] == "cpu" and rec["config"]["files"] == [str(cfg)]
    assert "n_generated:" in capsys.readouterr().out
    # the record it wrote is what the workflow's check reads: with n_generated set to it, the config passes
    from gendistill.config import load_and_validate, read_config_files

    follow = read_config_files([cfg], [f"time_budget_record={out}", f"generation.n_generated={r['n_generated']}"])
    load_and_validate(follow)


@pytest.mark.slow
def test_cli_accepts_any_family_with_its_steps_guidance_and_decoder(tmp_path, capsys):
    """A class-conditional DiT, 2 steps with guidance, tiny decoder, from a second config file and an override
    (merged as the workflow merges them): measured at its native resolution, with its FLOPs per image."""
    base = _config(tmp_path / "run.yaml")
    family = tmp_path / "dit.yaml"
    family.write_text(
        yaml.safe_dump(
            {
                "model": {"tiny": {"family": "dit"}},
                "generation": {"steps": 2, "guidance_scale": 3.0, "batch_size": 2, "decoder": "tiny"},
            }
        )
    )
    out = tmp_path / "tb.json"
    rc = main(["--configfile", str(base), str(family), "--set", "augmentation.n_aug=0", *QUICK, "--json", str(out)])
    assert rc == 0
    rec = json.loads(out.read_text())
    m = rec["measured"]
    assert (m["family"], m["pipeline"], m["resolution"], m["steps"]) == ("dit", "DiTPipeline", 32, 2)
    assert m["flops"]["evals_per_image"] == 4 and m["flops"]["per_image"] > 0
    assert rec["environment"]["decoder"] == "tiny" and rec["recommendation"]["fits"]
    assert rec["model"]["n_aug"] == 0 and rec["config"]["set"] == ["augmentation.n_aug=0"]
    assert "dit (DiTPipeline), decoder tiny, 2 step(s)" in capsys.readouterr().out


def test_cli_refuses_a_bad_config_before_loading_anything(tmp_path, capsys):
    cfg = _config(tmp_path / "run.yaml", generation={"resolution": 8})
    assert main(["--configfile", str(cfg), *QUICK]) == 2
    assert "generation.resolution: 8 is below the dataset's image size 16" in capsys.readouterr().err
    assert main(["--configfile", str(tmp_path / "missing.yaml"), *QUICK]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_config_files_merge_as_the_workflow_merges_them(tmp_path):
    from gendistill.config import ConfigError, read_config_files

    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump({"run": "a", "generation": {"steps": 4, "resolution": 512}, "model": {"tiny": {}}}))
    b.write_text(yaml.safe_dump({"generation": {"steps": 1}, "model": {"tiny": None, "source": "x"}}))
    cfg = read_config_files([a, b], ["generation.guidance_scale=1.5", "dataset.class_names=[a, b]"])
    assert cfg == {
        "run": "a",
        "generation": {"steps": 1, "resolution": 512, "guidance_scale": 1.5},
        "model": {"tiny": None, "source": "x"},
        "dataset": {"class_names": ["a", "b"]},
    }
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        read_config_files([a], ["generation.steps"])

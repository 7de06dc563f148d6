"""The evaluation at scale (evaluation/runtime.py, evaluation/kd_cache.py, gendistill/evaluate_torchrun.py): uint8
images on the device give the packaged floats, the batched augmentations equal their per-image definitions,
mixed precision, channels-last and compile are applied when asked, the cached soft labels are the online
teacher's targets on the same batches and every student seed reads the same ones, several processes train the
model one process trains (and through the workflow: world_size 2, and it learns), the runtime knobs rerun
nothing while amp and the cache do, and bad settings are refused before any job."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_CONFIG, TINY_RECIPE, deep_update, job_counts, run_snakemake
from torch import nn

from gendistill.config import ConfigError
from gendistill.evaluation import augment as A
from gendistill.evaluation import kd_cache
from gendistill.evaluation import train as T
from gendistill.evaluation.data import DeviceImages, TensorSource
from gendistill.evaluation.runs import machine_problems
from gendistill.evaluation.runtime import Runtime, resolve_amp, share_of
from gendistill.evaluation.train import Trainer, fit

RECIPE = TINY_RECIPE
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def images(n=16, size=16, seed=0):
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def source(n=16, size=16, seed=0):
    x8 = images(n, size, seed)
    return DeviceImages(x8, torch.arange(n) % 4, MEAN, STD)


# ---- uint8 on the device, batched augmentations


def test_device_images_give_the_floats_of_the_normalised_package():
    x8 = images(10, 12)
    m, s = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    packaged = TensorSource((x8.float() / 255.0 - m) / s, torch.arange(10), 8)  # what package.py stores
    held = DeviceImages(x8, torch.arange(10), MEAN, STD, 8)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    for (a, ya), (b, yb) in zip(packaged.batches(order, 4), held.batches(order, 4)):
        assert torch.equal(a, b) and torch.equal(ya, yb) and a.shape[-1] == 8
    assert held.x.dtype == torch.uint8 and held.nbytes == 10 * 3 * 12 * 12
    with pytest.raises(ValueError, match="uint8"):
        DeviceImages(x8.float(), torch.arange(10), MEAN, STD)


def test_a_streamed_set_read_once_into_uint8_gives_the_batches_of_its_files(tmp_path):
    import dataset_fixtures as fx

    from gendistill.datasets import get_adapter
    from gendistill.evaluation.real import real_source

    fix = fx.make_imagenet(tmp_path, n_classes=3, train_per_class=4)
    ad = get_adapter({"name": "imagenet", "root": str(fix.root), "image_size": 32})
    streamed = real_source(ad, "train", [0, 1, 2], 24, ad.mean, ad.std, 0)
    held = streamed.held_on("cpu", bs=5)
    assert held.x.dtype == torch.uint8 and held.nbytes == streamed.nbytes == 12 * 3 * 24 * 24
    order = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    for (a, ya), (b, yb) in zip(streamed.batches(order, 5), held.batches(order, 5)):
        assert torch.equal(a, b) and torch.equal(ya, yb)


def _crop_flip_per_image(x, gen, pad=4):  # the per-image definition the batched code replaced
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    flip = (torch.rand(n, generator=gen) < 0.5).tolist()
    out = torch.stack([xp[i, :, oy[i] : oy[i] + h, ox[i] : ox[i] + w] for i in range(n)])
    for i in range(n):
        if flip[i]:
            out[i] = out[i].flip(2)
    return out


def _cutout_per_image(x, gen, frac):
    n, _, h, w = x.shape
    ch, cw = int(h * frac + 0.5), int(w * frac + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n,), generator=gen).tolist()
    cx = torch.randint(0, w + (1 - cw % 2), (n,), generator=gen).tolist()
    mask = torch.ones(n, 1, h, w)
    for i in range(n):
        y0, x0 = cy[i] - ch // 2, cx[i] - cw // 2
        mask[i, :, max(y0, 0) : y0 + ch, max(x0, 0) : x0 + cw] = 0
    return x * mask


def _shift_per_image(x, gen, frac):
    n, _, h, w = x.shape
    sy, sx = int(h * frac + 0.5), int(w * frac + 0.5)
    dy = torch.randint(-sy, sy + 1, (n,), generator=gen).tolist()
    dx = torch.randint(-sx, sx + 1, (n,), generator=gen).tolist()
    xp = F.pad(x, (sx, sx, sy, sy))
    return torch.stack([xp[i, :, sy + dy[i] : sy + dy[i] + h, sx + dx[i] : sx + dx[i] + w] for i in range(n)])


@pytest.mark.parametrize("seed", range(4))
def test_batched_augmentations_equal_their_per_image_definitions(seed):
    x = torch.randn(9, 3, 15, 16, generator=torch.Generator().manual_seed(seed))
    g = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
    assert torch.equal(A.random_crop_flip(x, g()), _crop_flip_per_image(x, g()))
    assert torch.equal(A._cutout(x, g(), 0.5), _cutout_per_image(x, g(), 0.5))
    assert torch.equal(A._shift(x, g(), 0.125), _shift_per_image(x, g(), 0.125))


def test_share_of_splits_a_batch_into_contiguous_near_equal_shares():
    for n, world in ((10, 3), (2, 4), (256, 8), (7, 1)):
        shares = [share_of(n, r, world) for r in range(world)]
        assert shares[0].start == 0 and shares[-1].stop == n
        assert all(a.stop == b.start for a, b in zip(shares, shares[1:]))
        assert max(s.stop - s.start for s in shares) - min(s.stop - s.start for s in shares) <= 1


# ---- mixed precision, channels-last, compile


def test_amp_resolves_per_device_and_fp16_on_the_cpu_is_refused():
    assert resolve_amp("auto", "cpu") == "off" and resolve_amp("bf16", "cpu") == "bf16"
    assert resolve_amp("off", "cpu") == "off"
    with pytest.raises(ValueError, match="fp16 on cpu"):
        resolve_amp("fp16", "cpu")


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_bf16_autocast_changes_the_floats_channels_last_the_layout_only():
    base, base_info = fit(source(), 4, "convnet", 0, RECIPE)
    again, _ = fit(source(), 4, "convnet", 0, RECIPE, runtime=Runtime())
    assert torch.equal(_weights(base), _weights(again))  # the default runtime: the same floats
    bf16, info = fit(source(), 4, "convnet", 0, RECIPE, runtime=Runtime(amp="bf16"))
    diff = (_weights(bf16) - _weights(base)).abs().max()
    assert 0 < diff < 0.05 and info["final_loss"] == pytest.approx(base_info["final_loss"], rel=0.05)
    nhwc, _ = fit(source(), 4, "convnet", 0, RECIPE, runtime=Runtime(channels_last=True))
    conv = nhwc.features[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not base.features[0].weight.is_contiguous(
        memory_format=torch.channels_last
    )
    assert torch.allclose(_weights(nhwc), _weights(base), atol=1e-4)


def test_compile_wraps_the_training_forward(monkeypatch):
    compiled = []

    def fake_compile(module, **kw):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    fit(source(), 4, "convnet", 0, RECIPE, runtime=Runtime(compile=True))
    assert len(compiled) == 1 and isinstance(compiled[0], nn.Module)
    fit(source(), 4, "convnet", 0, RECIPE)
    assert len(compiled) == 1


def test_fp16_trains_through_a_gradient_scaler():
    trainer = Trainer("convnet", 4, 16, RECIPE, Runtime(amp="fp16"))  # (the CPU refuses fp16 at resolve time)
    src = source()
    order = torch.arange(16)
    xb, yb = next(src.batches(order, 8))
    trainer.step(xb, yb, order[:8], torch.Generator().manual_seed(0))
    assert trainer.scaler is not None and trainer.scaler.get_scale() > 0
    assert Trainer("convnet", 4, 16, RECIPE, Runtime(amp="bf16")).scaler is None


# ---- cached soft labels


class FixedTeacher(nn.Module):
    """A deterministic linear teacher of 16 px images."""

    def __init__(self, classes=4):
        super().__init__()
        self.lin = nn.Linear(3 * 16 * 16, classes)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(classes, 3 * 16 * 16, generator=torch.Generator().manual_seed(7)) * 0.05)
            self.lin.bias.zero_()

    def forward(self, x):
        return self.lin(x.flatten(1))


KD = {"temperature": 4.0, "alpha": 1.0}
MIXED = {**RECIPE, "epochs": 3, "augment": "rrc_flip", "rrc_scale": [0.5, 1.0], "mix": "cutmix", "mix_beta": 1.0}


def _capture_targets(monkeypatch):
    """The teacher distributions the KD losses train toward, per step, and the images of each batch."""
    seen = []
    online, cached = T.kd_loss, T.kd_prob_loss

    def kd_loss(out, t_logits, y, temperature, alpha, t_squared=True):
        seen.append(F.softmax(t_logits / temperature, 1).detach().clone())
        return online(out, t_logits, y, temperature, alpha, t_squared)

    def kd_prob_loss(out, probs, temperature, t_squared=True):
        seen.append(probs.detach().clone())
        return cached(out, probs, temperature, t_squared)

    monkeypatch.setattr(T, "kd_loss", kd_loss)
    monkeypatch.setattr(T, "kd_prob_loss", kd_prob_loss)
    return seen


def test_cached_and_online_kd_train_toward_the_same_targets(tmp_path, monkeypatch):
    path = tmp_path / "cache.pt"
    rec = kd_cache.build(source(), MIXED, FixedTeacher(), KD["temperature"], 4, 3, 4, str(path))
    assert rec["top_k"] == 4 and rec["teacher_forwards"] == 3 * 16
    assert rec["storage_bytes"] == 3 * 16 * (4 * 2 + 4 * 2 + 4)  # float16 values, int16 classes, int32 order
    seen = _capture_targets(monkeypatch)
    online_model, _ = fit(source(), 4, "convnet", 3, MIXED, teacher=FixedTeacher(), kd=KD)  # student seed = cache's
    online = list(seen)
    seen.clear()
    cached_model, _ = fit(source(), 4, "convnet", 3, MIXED, kd=KD, kd_cache=kd_cache.load(str(path)))
    assert len(seen) == len(online) == 3 * 2
    for a, b in zip(online, seen):  # the same batches, the same targets up to float16
        assert torch.allclose(a, b, atol=2e-3) and torch.allclose(b.sum(1), torch.ones(len(b)), atol=1e-3)
    assert torch.allclose(_weights(online_model), _weights(cached_model), atol=1e-3)


def test_every_student_seed_reads_the_caches_batches(tmp_path, monkeypatch):
    path = tmp_path / "cache.pt"
    kd_cache.build(source(), MIXED, FixedTeacher(), KD["temperature"], 2, 11, 4, str(path))
    seen = _capture_targets(monkeypatch)
    runs = []
    for seed in (0, 1):
        seen.clear()
        model, _ = fit(source(), 4, "convnet", seed, MIXED, kd=KD, kd_cache=kd_cache.load(str(path)))
        runs.append((list(seen), _weights(model)))
    (targets0, w0), (targets1, w1) = runs
    assert all(torch.equal(a, b) for a, b in zip(targets0, targets1))  # the cache seed's batches for both
    assert not torch.equal(w0, w1)  # the student's own seed initialises its network
    probs = targets0[0]
    assert (probs > 0).all() and torch.allclose(probs.sum(1), torch.ones(len(probs)), atol=1e-3)  # top 2 + rest
    with pytest.raises(ValueError, match="another run"):
        fit(source(), 4, "convnet", 0, {**MIXED, "batch_size": 4}, kd=KD, kd_cache=kd_cache.load(str(path)))
    cache = kd_cache.load(str(path))
    with pytest.raises(RuntimeError, match="not the stored batch"):
        cache.targets(0, 0, torch.arange(8))


def test_probabilities_spread_the_rest_of_the_mass_evenly():
    p = kd_cache.probabilities(torch.tensor([[0.5, 0.2]]), torch.tensor([[3, 0]]), 5)
    assert torch.allclose(p, torch.tensor([[0.2, 0.1, 0.1, 0.5, 0.1]]))


# ---- several processes


@pytest.mark.slow  # starts torchrun and two workers (~15 s of CPU)
def test_two_processes_train_the_model_one_process_trains(tmp_path):
    from gendistill.evaluate import EvalSpec, run_job
    from gendistill.evaluate_torchrun import run

    spec = EvalSpec(
        "random_subset",
        "convnet",
        1,
        dataset={"name": "digits"},
        labels=[0, 1, 2, 3],
        num_classes=10,
        recipe={**MIXED, "epochs": 3, "batch_size": 16},
        per_class_counts={0: 10, 1: 10, 2: 10, 3: 10},
        max_test_images=100,
        resolution=16,
    )
    one = run_job(spec)
    with (tmp_path / "log").open("w") as log:
        two = run(spec, 2, 2, log)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert two["final_loss"] == pytest.approx(one["final_loss"], rel=1e-5)  # the same steps, other sum orders
    assert two["accuracy"] == pytest.approx(one["accuracy"], abs=0.02)
    assert "rank 0/2" in (tmp_path / "log").read_text()


@pytest.mark.slow  # torchrun and two workers on an ImageNet-layout fixture (~15 s of CPU)
def test_two_processes_read_their_shares_of_a_streamed_set(tmp_path):
    import dataset_fixtures as fx

    from gendistill.evaluate import EvalSpec, run_job
    from gendistill.evaluate_torchrun import run

    fix = fx.make_imagenet(tmp_path, n_classes=3, train_per_class=7, val_per_class=3)
    spec = EvalSpec(
        "full",
        "convnet",
        0,
        dataset={"name": "imagenet", "root": str(fix.root), "image_size": 32},
        labels=[0, 1, 2],
        num_classes=3,
        recipe={**MIXED, "epochs": 2, "batch_size": 8},  # 21 images: shares of 4 and 4, then 3 and 2
    )
    one = run_job(spec)
    with (tmp_path / "log").open("w") as log:
        two = run(spec, 2, 2, log)
    assert one["n_train"] == two["n_train"] == 21 and two["world_size"] == 2
    assert two["final_loss"] == pytest.approx(one["final_loss"], rel=1e-5)
    assert two["accuracy"] == pytest.approx(one["accuracy"], abs=0.12)


def test_torchrun_holds_the_jobs_gpu_slots_and_sees_only_their_gpus(tmp_path, monkeypatch):
    """The job's slot locks are handed to torchrun (held until it has ended too, even if the job is killed first),
    and its processes inherit the job's CUDA_VISIBLE_DEVICES (gendistill.evaluation.gpus set it)."""
    import gendistill.evaluate_torchrun as tr
    from gendistill.evaluate import EvalSpec

    seen = {}

    class Started:
        def __init__(self, cmd, **kwargs):
            seen.update(kwargs)

        def wait(self):
            return 1  # failed: no result to read

    monkeypatch.setattr(tr.subprocess, "Popen", Started)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    spec = EvalSpec("distilled", "convnet", 0, dataset={"name": "digits"}, labels=[0], num_classes=1, recipe={})
    with open(tmp_path / "lock", "w") as lock, pytest.raises(RuntimeError, match="exit code 1"):
        fd = lock.fileno()
        tr.run(spec, 2, 2, keep_fds=[fd])
    assert seen["pass_fds"] == (fd,) and seen["env"]["CUDA_VISIBLE_DEVICES"] == "3,5"


PROCESSES_CONFIG = deep_update(
    TINY_CONFIG,
    {
        "evaluation": {
            "processes": 2,
            "device": "cpu",
            "seeds": [3],
            "epochs": 12,
            "batch_size": 8,
            "baselines": {"random_subset": True},
        }
    },
)


@pytest.mark.long  # torchrun and its two workers through the workflow, then dry runs: ~50 s on 2 busy cores
def test_two_processes_in_the_workflow_record_world_size_and_learn(tiny_run, tmp_path):
    """On a copy of the tiny run: an evaluation on 2 processes (gloo) through the workflow; its random real subset
    learns the 3 digit classes. Changing the runtime knobs afterwards reruns nothing; amp does."""
    from test_workflow import copy_run

    wd = copy_run(tiny_run, tmp_path / "run")
    targets = ("results/t/eval/random_subset/convnet/seed3.json", "results/t/eval/distilled/convnet/seed3.json")
    run_snakemake(wd, PROCESSES_CONFIG, targets=targets)
    sub = json.loads((wd / targets[0]).read_text())
    assert sub["world_size"] == 2 and sub["runtime"]["world_size"] == 2 and sub["runtime"]["amp"] == "off"
    assert sub["accuracy"] > 0.6 > 1 / 3 + 0.2, sub["accuracy"]  # chance is 1/3
    log = (wd / "results/t/logs/evaluate/random_subset/convnet/seed3.log").read_text()
    assert "torchrun: 2 processes" in log and "rank 0/2" in log
    knobs = {"processes": 1, "compile": True, "channels_last": True}
    one_process = deep_update(PROCESSES_CONFIG, {"evaluation": knobs})
    assert "evaluate" not in job_counts(run_snakemake(wd, one_process, "--dag", targets=targets).stdout)
    bf16 = deep_update(PROCESSES_CONFIG, {"evaluation": {"amp": "bf16"}})
    assert job_counts(run_snakemake(wd, bf16, "--dag", targets=targets).stdout).get("evaluate") == 2


def test_two_evaluations_at_once_train_on_different_gpu_slots(tiny_run, tmp_path):
    """On a copy of the tiny run, generation.gpus: [0, 1] with no GPU visible (two CPU slots): two evaluation jobs
    run at once (--cores 4, 2 threads each) and each holds a slot of its own, the GPU that CUDA_VISIBLE_DEVICES
    names in its job; a job takes the first free slot, so slots 0 and 1 mean the second found the first's held.
    Where an evaluation ran is not a rerun trigger: without the slots nothing reruns."""
    from test_workflow import copy_run

    wd = copy_run(tiny_run, tmp_path / "run")
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    env = {"CUDA_VISIBLE_DEVICES": "", "XDG_RUNTIME_DIR": str(runtime)}
    seeds = deep_update(TINY_CONFIG, {"evaluation": {"seeds": [1, 2]}})
    two = deep_update(seeds, {"generation": {"gpus": [0, 1]}})
    targets = tuple(f"results/t/eval/distilled/convnet/seed{k}.json" for k in (1, 2))
    run_snakemake(wd, two, "--cores", "4", env=env, targets=targets)
    runs = [json.loads((wd / t).read_text()) for t in targets]
    assert sorted(r["slots"][0]["index"] for r in runs) == [0, 1], [r["slots"] for r in runs]
    for r, k in zip(runs, (1, 2)):
        (slot,) = r["slots"]
        assert slot["fake"] is True and r["cuda_visible_devices"] == slot["gpu"] and r["device"] == "cpu"
        log = (wd / f"results/t/logs/evaluate/distilled/convnet/seed{k}.log").read_text()
        assert f"training on GPU slot(s) {slot['index']} (GPU {slot['gpu']}) of 2" in log, log
    assert job_counts(run_snakemake(wd, seeds, "--dag", env=env, targets=targets).stdout) == {}


# ---- refused before any job


def test_bad_runtime_settings_are_refused_before_any_job(monkeypatch):
    from gendistill.plan import build_plan

    for evaluation, expected in (
        ({"amp": "fp16", "device": "cpu"}, "amp: fp16 with evaluation.device: cpu"),
        ({"kd": {"cache": True}, "labels": ["hard", "soft"]}, "kd.cache: true"),
    ):
        with pytest.raises(ConfigError, match=expected):
            build_plan(deep_update(TINY_CONFIG, {"evaluation": evaluation}), check_model=False)
    cfg = build_plan(deep_update(TINY_CONFIG, {"evaluation": {"processes": 4, "device": "cuda"}}), False).cfg
    monkeypatch.setattr("gendistill.evaluation.runs.gpu_count", lambda: 8)  # a node with 8 GPUs
    monkeypatch.setattr("gendistill.evaluation.runs.gpu_visible", lambda: True)
    assert machine_problems(cfg, local=True, gpu_limit=None) == [] == machine_problems(cfg, True, gpu_limit=4)
    (problem,) = machine_problems(cfg, local=True, gpu_limit=2)
    assert "processes: 4" in problem and "can have 2: --resources gpu=2" in problem
    monkeypatch.setattr("gendistill.evaluation.runs.gpu_count", lambda: 3)
    (problem,) = machine_problems(cfg, local=True, gpu_limit=None)
    assert "can have 3: the GPUs visible here" in problem
    monkeypatch.setattr("gendistill.evaluation.runs.gpu_visible", lambda: False)
    monkeypatch.setattr("gendistill.evaluation.runs.gpu_count", lambda: 0)
    assert machine_problems(cfg, local=False, gpu_limit=None) == []  # a cluster's nodes: SLURM's to refuse
    auto = build_plan(deep_update(TINY_CONFIG, {"evaluation": {"amp": "fp16"}}), False).cfg
    (problem,) = machine_problems(auto, local=True, gpu_limit=None)
    assert "no GPU is visible" in problem


def test_processes_above_the_gpu_slots_are_refused(monkeypatch):
    """An evaluation trains on GPU slots of generation.gpus (gendistill.evaluation.gpus): on an 8-GPU node that
    lists 2 of them, 4 processes would wait for ever; on the CPU a list gives CPU slots, checked the same way."""
    from gendistill.plan import build_plan

    cfg = build_plan(deep_update(TINY_CONFIG, {"evaluation": {"processes": 4}, "generation": {"gpus": [0, 1]}}), False)
    cfg = cfg.cfg
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", ",".join(map(str, range(8))))
    monkeypatch.setattr("gendistill.evaluation.runs.gpu_count", lambda: 8)
    monkeypatch.setattr("gendistill.evaluation.runs.gpu_visible", lambda: True)
    (problem,) = machine_problems(cfg, local=True, gpu_limit=8)
    assert "processes: 4" in problem and "generation.gpus ([0, 1]) gives 2 GPU slot(s)" in problem
    assert "Fix: processes: 2" in problem
    assert machine_problems(deep_update(cfg, {"evaluation": {"processes": 2}}), local=True, gpu_limit=8) == []
    assert machine_problems(deep_update(cfg, {"generation": {"gpus": "auto"}}), local=True, gpu_limit=8) == []
    assert machine_problems(cfg, local=False, gpu_limit=None) == []  # a cluster job's GPUs are its own
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU: [0, 1] are CPU slots
    monkeypatch.setattr("gendistill.evaluation.runs.gpu_count", lambda: 0)
    monkeypatch.setattr("gendistill.evaluation.runs.gpu_visible", lambda: False)
    (problem,) = machine_problems(cfg, local=True, gpu_limit=1)
    assert "gives 2 GPU slot(s)" in problem
    assert machine_problems(deep_update(cfg, {"evaluation": {"device": "cpu"}}), local=True, gpu_limit=1) == []


@pytest.mark.workflow
def test_processes_above_the_gpus_are_refused_by_a_dry_run(tmp_path):
    cfg = deep_update(TINY_CONFIG, {"evaluation": {"processes": 2, "device": "cuda"}})
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)  # (run_snakemake gives Snakemake --resources gpu=1)
    assert proc.returncode != 0 and "evaluation.processes: 2 trains each evaluation on 2 GPUs" in proc.stderr
    assert "Fix:" in proc.stderr and not (tmp_path / "results").exists()  # refused before any job


@pytest.mark.long  # a teacher, three caches and four evaluations on a copy of the tiny run: about a minute of CPU
def test_kd_cache_in_the_workflow_is_computed_once_per_set_and_read_by_every_seed(tiny_run, tmp_path):
    """On a copy of the tiny run: labels kd with the cache, two seeds: one cache for the distilled set, one per
    seed for the random subset (its images are the seed's); the evaluations read it, not the teacher."""
    from test_workflow import copy_run

    wd = copy_run(tiny_run, tmp_path / "run")
    cfg = deep_update(
        TINY_CONFIG,
        {
            "teacher": {"epochs": 1, "model": "convnet"},
            "evaluation": {
                "labels": "kd",
                "seeds": [0, 1],
                "mix": "cutmix",
                "kd": {"cache": True, "cache_top_k": 2},
                "baselines": {"random_subset": True},
            },
        },
    )
    metrics = [f"results/t/eval/{s}/convnet/seed{k}.json" for s in ("distilled", "random_subset") for k in (0, 1)]
    run_snakemake(wd, cfg, targets=tuple(metrics))
    caches = wd / "results" / "t" / "eval" / "kd_cache"
    assert sorted(p.relative_to(caches).as_posix() for p in caches.rglob("*.pt")) == [
        "distilled/set.pt",
        "random_subset/subset0.pt",
        "random_subset/subset1.pt",
    ]
    rec = json.loads((caches / "distilled" / "set.json").read_text())
    assert rec["top_k"] == 2 and rec["epochs"] == 2 and rec["images"] == 18
    assert rec["storage_bytes"] == 2 * 18 * (2 * 2 + 2 * 2 + 4)  # float16 values, int16 classes, int32 order
    for path in metrics:
        res = json.loads((wd / path).read_text())
        assert res["labels"] == "kd" and res["kd"]["cache"] is True and res["kd_cache"]["top_k"] == 2
        assert res["teacher_sha256"] == rec["teacher_sha256"]
    log = (wd / "results/t/logs/evaluate/distilled/convnet/seed1.log").read_text()
    assert "cached" in log
    online = deep_update(cfg, {"evaluation": {"kd": {"cache": False}}})
    counts = job_counts(run_snakemake(wd, online, "--dag", targets=tuple(metrics)).stdout)
    assert counts.get("evaluate") == 4 and "kd_cache" not in counts and "teacher" not in counts, counts

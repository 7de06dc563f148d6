"""The protocols' training pieces (evaluation/augment.py, evaluation/train.py): augmentations keep shapes and are
seeded, DSA's groups and the random resized crop do what they say, cutmix's lam is its box's area, the schedules'
learning rates, AdamW's decay groups, the optimizer restart at the lr step, the teacher run online on the mixed
batch, and best-during-training kept apart from the final accuracy. Tiny tensors: seconds."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TINY_RECIPE
from torch import nn

from gendistill.evaluation import augment as A
from gendistill.evaluation.data import TensorSource
from gendistill.evaluation.models import build_model
from gendistill.evaluation.train import fit, fit_and_test, lr_at, make_optimizer

RECIPE = TINY_RECIPE


def batch(n=6, size=16, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", A.AUGMENTS)
def test_every_augmentation_keeps_the_shape_and_is_seeded(kind):
    x = batch()
    a = A.augment(x, torch.Generator().manual_seed(1), {"augment": kind})
    b = A.augment(x, torch.Generator().manual_seed(1), {"augment": kind})
    c = A.augment(x, torch.Generator().manual_seed(2), {"augment": kind})
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, c) or kind == "dsa"  # DSA may draw the same group twice


def test_dsa_draws_each_of_its_six_groups():
    x = batch(4, 16)
    seen = set()
    for seed in range(40):
        gen = torch.Generator().manual_seed(seed)
        group = A.DSA_GROUPS[int(torch.randint(0, 6, (1,), generator=torch.Generator().manual_seed(seed)))]
        out = A.dsa(x, gen)
        seen.add(group)
        if group == "flip":  # every image flipped or left as it is
            assert all(torch.equal(o, i) or torch.equal(o, i.flip(2)) for o, i in zip(out, x))
        if group == "cutout":  # a zeroed square of half the side, the rest untouched
            zero = out == 0
            assert zero.any() and torch.equal(out[~zero], x[~zero])
    assert seen == set(A.DSA_GROUPS)


def test_dsa_crop_shifts_with_zero_fill_within_an_eighth():
    x = torch.ones(8, 3, 32, 32)
    out = A._shift(x, torch.Generator().manual_seed(0), A.DSA["crop"])
    for o in out:  # ones shifted by at most 4 px: at most 4 zero rows/columns per side
        rows = (o[0].sum(1) == 0).sum().item()
        cols = (o[0].sum(0) == 0).sum().item()
        assert rows <= 4 and cols <= 4


def test_random_resized_crop_of_the_whole_area_is_the_image_or_its_mirror():
    x = batch(5, 16)
    out = A.random_resized_crop_flip(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0))
    for o, i in zip(out, x):
        assert torch.allclose(o, i, atol=1e-5) or torch.allclose(o, i.flip(2), atol=1e-5)
    zoomed = A.random_resized_crop_flip(x, torch.Generator().manual_seed(0), scale=(0.1, 0.2))
    assert not any(torch.allclose(o, i, atol=1e-3) for o, i in zip(zoomed, x))


def test_cutmix_pastes_a_partners_box_and_lam_is_the_kept_area():
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 10, 10).clone()
    for seed in range(10):
        out, mixed = A.mix(x, torch.Generator().manual_seed(seed), "cutmix", 1.0)
        for i in range(4):
            own = (out[i, 0] == x[i, 0, 0, 0]).float().mean().item()
            assert own == pytest.approx(mixed.lam) or mixed.perm[i] == i
    out, mixed = A.mix(x, torch.Generator().manual_seed(0), "mixup", 0.8)
    assert torch.allclose(out, mixed.lam * x + (1 - mixed.lam) * x[mixed.perm])
    assert A.mix(x, torch.Generator(), "none", 1.0) == (x, None)


def test_schedules():
    assert lr_at(0, 100, 0.01, "cosine_half") == pytest.approx(0.01)
    assert lr_at(100, 100, 0.01, "cosine_half") == pytest.approx(0.005)  # ends at half the lr
    assert lr_at(50, 100, 0.01, "cosine_half") == pytest.approx(0.005 * (1 + math.cos(math.pi / 4)))
    assert lr_at(50, 100, 0.01, "cosine") == pytest.approx(0.005)
    assert [lr_at(e, 1001, 0.01, "step_restart", 502) for e in (501, 502)] == [0.01, pytest.approx(0.001)]
    assert [lr_at(e, 10, 0.01, "step") for e in (4, 5)] == [0.01, pytest.approx(0.001)]  # default: half


def test_adamw_without_decay_on_norms_and_biases():
    net = build_model("resnet18", 10, 16)
    opt = make_optimizer(net, {**RECIPE, "optimizer": "adamw", "weight_decay": 0.01, "decay_norm_and_bias": False})
    assert isinstance(opt, torch.optim.AdamW)
    decayed, free = opt.param_groups
    assert all(p.ndim >= 2 for p in decayed["params"]) and decayed["weight_decay"] == 0.01
    assert all(p.ndim < 2 for p in free["params"]) and free["weight_decay"] == 0.0
    assert len(decayed["params"]) + len(free["params"]) == len(list(net.parameters()))


def source(n=16, size=16, classes=4, seed=0):
    return TensorSource(batch(n, size, seed), torch.arange(n) % classes)


def test_step_restart_resets_momentum_at_the_step(monkeypatch):
    made = []
    real = make_optimizer

    def counting(model, recipe):
        made.append(recipe["schedule"])
        return real(model, recipe)

    monkeypatch.setattr("gendistill.evaluation.train.make_optimizer", counting)
    fit(source(), 4, "convnet", 0, {**RECIPE, "epochs": 4, "schedule": "step_restart", "step_epoch": 2})
    assert made == ["step_restart", "step_restart"]  # created, then re-created at epoch 2
    made.clear()
    fit(source(), 4, "convnet", 0, {**RECIPE, "epochs": 4})
    assert made == ["step"]


class Recorder(nn.Module):
    """A teacher that remembers what it was shown (and prefers class 0)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        out = torch.zeros(len(x), 4)
        out[:, 0] = 3.0
        return out


def test_the_kd_teacher_labels_the_mixed_images_the_student_sees():
    teacher = Recorder()
    recipe = {**RECIPE, "augment": "rrc_flip", "rrc_scale": [0.5, 1.0], "mix": "cutmix", "mix_beta": 1.0}
    kd = {"temperature": 20.0, "alpha": 1.0, "t_squared": False}
    src = source()
    model, info = fit(src, 4, "convnet", 0, recipe, teacher=teacher, kd=kd)
    assert len(teacher.seen) == 2 * 2  # 2 epochs x 2 batches of 8
    originals = {tuple(x.flatten()[:5].tolist()) for x in src.x}
    assert all(tuple(x.flatten()[:5].tolist()) not in originals for x in teacher.seen[0])  # augmented inputs
    assert math.isfinite(info["final_loss"])
    # the same with the teacher's soft targets fixed per stored image (regime soft) also trains on a mixed batch
    soft = torch.randn(16, 4)
    _, info = fit(src, 4, "convnet", 0, recipe, soft_logits=soft, kd={"temperature": 4.0, "alpha": 0.5})
    assert math.isfinite(info["final_loss"])


def test_best_during_training_is_labelled_and_keeps_the_final_accuracy():
    recipe = {**RECIPE, "epochs": 4, "accuracy": "best_during_training", "eval_every": 2}
    res = fit_and_test(source(), source(12, seed=1), 4, "convnet", 0, recipe)
    assert res["accuracy_kind"] == "best_during_training"
    history = res["test_accuracy_history"]
    assert [h[0] for h in history] == [2, 4] and history[-1][1] == res["final_accuracy"]
    assert res["accuracy"] == max(h[1] for h in history)
    plain = fit_and_test(source(), source(12, seed=1), 4, "convnet", 0, {**RECIPE, "epochs": 4})
    assert plain["accuracy_kind"] == "final" and plain["accuracy"] == res["final_accuracy"]


def test_step_every_steps_every_period_as_torchs_steplr():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)
    for e in range(90):
        assert lr_at(e, 90, 0.1, "step_every", 30) == pytest.approx(opt.param_groups[0]["lr"]), e
        opt.step()
        sched.step()
    assert lr_at(5, 10, 0.1, "step_every") == pytest.approx(0.01)  # no step_epoch: every half of the epochs


def rded_tested_epochs(epochs: int, every: int, after: float) -> list[int]:
    """The epochs (counted after training them) RDED's validation/main.py tests at: 0-based epoch e with
    (e % every == every - 1 or e == E - 1) and e > after x E."""
    return [e + 1 for e in range(epochs) if (e % every == every - 1 or e == epochs - 1) and e > epochs * after]


@pytest.mark.parametrize(("epochs", "every", "after"), [(20, 2, 0.5), (30, 10, 0.8), (12, 3, 0.0)])
def test_best_during_training_tests_after_eval_after_as_rded(epochs, every, after):
    recipe = {**RECIPE, "epochs": epochs, "accuracy": "best_during_training", "eval_every": every, "eval_after": after}
    res = fit_and_test(source(8), source(8, seed=1), 4, "convnet", 0, {**recipe, "batch_size": 8})
    assert [h[0] for h in res["test_accuracy_history"]] == rded_tested_epochs(epochs, every, after)
    assert rded_tested_epochs(300, 10, 0.8) == list(range(250, 301, 10))  # RDED's 300 epochs: 250, ..., 300


def test_test_resize_reads_the_short_side_then_the_centre_as_torchvision():
    import numpy as np
    from PIL import Image
    from torch.nn import functional as F
    from torchvision.transforms import CenterCrop, Resize

    x = batch(2, 64)
    y = torch.zeros(2, dtype=torch.long)
    got = next(TensorSource(x, y, 64, resize=72).batches(torch.arange(2), 2))[0]
    up = F.interpolate(x, size=(72, 72), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(got, up[..., 4:68, 4:68])
    assert torch.equal(next(TensorSource(x, y, 64).batches(torch.arange(2), 2))[0], x)  # no resize at its size
    # image files keep their aspect ratio: the short side, then the centre square (PIL's bicubic)
    from gendistill.datasets.images import resize_crop

    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 90, 3), dtype=np.uint8))
    for size, short in ((32, None), (32, 40)):
        out = resize_crop(im, size, short)
        ref = CenterCrop(size)(Resize(short or size, interpolation=Image.Resampling.BICUBIC)(im))
        assert out.size == (size, size) == ref.size
        assert np.abs(np.asarray(out, dtype=int) - np.asarray(ref, dtype=int)).max() <= 1  # rounding of the filter


def test_the_lr_search_keeps_the_best_on_the_test_set_and_says_so():
    from gendistill.evaluate import search_lr

    accs = {0.001: 0.5, 0.01: 0.7, 0.1: 0.7}
    res = search_lr(
        lambda r: {"accuracy": accs[r["lr"]], "accuracy_kind": "final", "lr": r["lr"]}, {"lr_search": [*accs]}
    )
    assert res["lr"] == 0.01 and res["accuracy"] == 0.7  # a tie keeps the first, as DD-Ranking's strict >
    assert res["accuracy_kind"] == "final, lr selected on test"
    assert res["lr_search"]["accuracy_by_lr"] == {"0.001": 0.5, "0.01": 0.7, "0.1": 0.7}


def test_an_evaluation_job_searches_its_lr_and_reads_its_test_set_at_test_resize(monkeypatch):
    import inspect

    from gendistill import evaluate
    from gendistill.config import load_and_validate

    reads = []
    real = evaluate.real_source
    signature = inspect.signature(real)

    def recording(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        reads.append((bound.arguments["split"], bound.arguments["resize"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate, "real_source", recording)
    dataset = load_and_validate({"dataset": {"name": "digits"}, "model": {"tiny": {"seed": 0}}})["dataset"]
    recipe = {**RECIPE, "epochs": 1, "batch_size": 64, "lr_search": [0.001, 0.05], "test_resize": 40}
    counts = {0: 5, 1: 5}
    res = evaluate.run_job(evaluate.EvalSpec(
        "random_subset", "convnet", 0, dataset=dataset, labels=[0, 1], num_classes=10, recipe=recipe,
        per_class_counts=counts, max_test_images=60, resolution=32,
    ))  # fmt: skip
    assert reads == [("train", None), ("test", 40)]
    by_lr = res["lr_search"]["accuracy_by_lr"]
    assert set(by_lr) == {"0.001", "0.05"} and res["accuracy"] == max(by_lr.values())
    assert res["accuracy_kind"].endswith("lr selected on test") and res["recipe"] == recipe

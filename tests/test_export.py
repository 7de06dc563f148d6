"""`gendistill export` (distilled/export.py): each format written from a packaged run, read back the way its consumer
reads it (the challenge's evaluate.py, DD-Ranking's evaluators, datasets.load_from_disk) and equal to distilled.pt;
the warnings for sets a consumer does not score; nothing that looks finished after a failed export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from gendistill.cli import main as cli
from gendistill.distilled.export import CHALLENGE, DDRANKING, ExportError, export
from gendistill.distilled.package import load_distilled


def packaged_run(tmp_path, dataset="cifar100", n_classes=100, ipc=10, size=32, n_all=None, soft=False):
    """A run directory whose dataset/ the package (and soft-label) code wrote, from random PNGs in the augment
    stage's format: classes 0 .. n_classes - 1 of a dataset of n_all classes."""
    from gendistill.distilled.package import package
    from gendistill.imageio import save_png

    rng = np.random.default_rng(0)
    run, dirs = tmp_path / "run", []
    for c in range(n_classes):
        d = tmp_path / "aug" / f"{c:03d}_c{c}"
        d.mkdir(parents=True)
        recs = []
        for i in range(ipc):
            f = f"{i:04d}_0.png"
            recs.append(
                {
                    "file": f,
                    "class_index": c,
                    "class_name": f"c{c}",
                    "class_id": d.name,
                    "prompt": f"a photo of c{c}",
                    "seed": 2**62 + 7 * i,  # 63-bit seeds survive every format
                    "source_image": f"{i:04d}.png",
                    "copy": 0,
                    "aug_seed": None,
                    "augmentation": None,
                    "sha256": save_png(d / f, rng.integers(0, 256, (size, size, 3), dtype=np.uint8)),
                }
            )
        (d / "records.json").write_text(json.dumps({"meta": {}, "images": recs}))
        dirs.append(str(d))
    ds = run / "dataset"
    package(
        dirs,
        [f"c{i}" for i in range(n_all or n_classes)],
        [0.5, 0.4, 0.3],
        [0.2, 0.25, 0.3],
        str(ds / "distilled.pt"),
        str(ds / "manifest.csv"),
        str(ds / "imagefolder"),
        provenance={"config": json.dumps({"dataset": {"name": dataset}})},
    )
    if soft:
        from gendistill.imageio import sha256_file

        d = load_distilled(str(ds / "distilled.pt"))
        torch.save(
            {
                "format": "gendistill-soft-labels-v1",
                "logits": torch.randn(len(d["labels"]), n_all or n_classes),
                "temperature": 4.0,
                "labels": d["labels"].clone(),
                "files": list(d["files"]),
                "distilled_sha256": sha256_file(ds / "distilled.pt"),
                "teacher_sha256": "0" * 64,
            },
            ds / "soft_labels.pt",
        )
    return run


def uint8(d) -> torch.Tensor:
    return d["images_uint8"].float()


def test_challenge_submission_reads_back_as_its_evaluate_py_reads_it(tmp_path):
    run = packaged_run(tmp_path)
    out = tmp_path / "submission"
    rec = export(str(run), "challenge", str(out))
    assert rec["warnings"] == [] and rec["file"] == "cifar100.pt"
    d = load_distilled(str(run / "dataset" / "distilled.pt"))
    # evaluate.py: data = torch.load(submission); asserts; labels np.ones(10) * i per class; no normalisation
    data = torch.load(out / "cifar100.pt")
    num_classes = 100
    assert data.shape[0] == 10 * num_classes and tuple(data.shape[1:]) == (3, 32, 32) and data.dtype == torch.float32
    labels_train = torch.tensor(np.array([np.ones(10) * i for i in range(num_classes)]), dtype=torch.long).view(-1)
    assert torch.equal(labels_train, d["labels"])
    c = CHALLENGE["cifar100"]
    back = (data * torch.tensor(c["std"]).view(1, 3, 1, 1) + torch.tensor(c["mean"]).view(1, 3, 1, 1)) * 255
    assert torch.equal(back.round(), uint8(d)) and (back - uint8(d)).abs().max() < 1e-3
    assert json.loads((out / "gendistill_export.json").read_text())["distilled_sha256"]


def test_challenge_warns_for_what_it_does_not_score_and_refuses_unimpliable_labels(tmp_path):
    run = packaged_run(tmp_path, dataset="digits", n_classes=3, ipc=2, size=16, n_all=10)
    rec = export(str(run), "challenge", str(tmp_path / "s"))
    warnings = " ".join(rec["warnings"])
    assert "'digits' is not one the challenge scores" in warnings and "IPC 2" in warnings
    assert rec["file"] == "digits.pt" and rec["mean"] == [0.5, 0.4, 0.3]  # the package's own normalisation
    uneven = tmp_path / "uneven"
    uneven.mkdir()
    run = packaged_run(uneven, n_classes=2, ipc=2)
    d = dict(load_distilled(str(run / "dataset" / "distilled.pt")))
    d["labels"] = torch.tensor([0, 0, 0, 1])
    torch.save(d, run / "dataset" / "distilled.pt")
    (run / "dataset" / "manifest.csv").unlink()
    with pytest.raises(ExportError, match="same number of images for every class"):
        export(str(run), "challenge", str(tmp_path / "u"))
    assert not (tmp_path / "u").exists()


def test_ddranking_inputs_read_back_as_its_evaluators_read_them(tmp_path):
    from torchvision import datasets, transforms

    run = packaged_run(tmp_path, dataset="cifar10", n_classes=10, ipc=3, soft=True)
    out = tmp_path / "ddr"
    rec = export(str(run), "ddranking", str(out))
    assert rec["warnings"] == [] and rec["ddranking_dataset"] == "CIFAR10" and rec["ipc"] == 3
    d = load_distilled(str(run / "dataset" / "distilled.pt"))
    soft = torch.load(run / "dataset" / "soft_labels.pt", weights_only=True)
    mean, std = DDRANKING["cifar10"]["mean"], DDRANKING["cifar10"]["std"]
    # compute_metrics(image_tensor=images.pt, soft_labels=labels.pt): normalised as its test sets, class order
    images = torch.load(out / "images.pt", map_location="cpu")
    expected = (uint8(d) / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(images, expected)
    assert torch.equal(torch.load(out / "labels.pt"), soft["logits"])
    hard = torch.tensor(np.array([np.ones(3) * i for i in range(10)]), dtype=torch.long).view(-1)  # its implied labels
    assert torch.equal(torch.load(out / "hard_labels.pt"), d["labels"]) and torch.equal(hard, d["labels"])
    # compute_metrics(image_path=images/): datasets.ImageFolder with its custom_train_trans (ToTensor, Normalize)
    folder = datasets.ImageFolder(out / "images", transforms.Compose([transforms.ToTensor()]))
    assert folder.targets == d["labels"].tolist()
    for i in (0, 7, 29):
        x, y = folder[i]
        assert y == int(d["labels"][i]) and torch.equal((x * 255).round(), uint8(d)[i])


def test_ddranking_warns_for_a_subset_of_classes_and_a_dataset_it_lacks(tmp_path):
    run = packaged_run(tmp_path, dataset="digits", n_classes=2, ipc=2, size=16, n_all=10)
    rec = export(str(run), "ddranking", str(tmp_path / "ddr"))
    warnings = " ".join(rec["warnings"])
    assert "not one of DD-Ranking's built-in datasets" in warnings and "2 of the dataset's 10 classes" in warnings
    assert "no soft labels" in warnings and not (tmp_path / "ddr" / "labels.pt").exists()


def test_hf_dataset_loads_back_with_its_class_names_and_manifest(tmp_path):
    import datasets

    run = packaged_run(tmp_path, dataset="cifar100", n_classes=4, ipc=3, n_all=100, soft=True)
    out = tmp_path / "hf"
    export(str(run), "hf", str(out))
    ds = datasets.load_from_disk(str(out))
    d = load_distilled(str(run / "dataset" / "distilled.pt"))
    assert len(ds) == len(d["labels"]) and ds.features["label"].names == d["class_names"]
    assert ds["label"] == d["labels"].tolist()
    for i, row in enumerate(ds):
        assert np.array_equal(np.asarray(row["image"]), d["images_uint8"][i].permute(1, 2, 0).numpy())
    manifest = pd.read_csv(run / "dataset" / "manifest.csv", dtype=str, keep_default_na=False)
    assert ds["file"] == manifest["file"].tolist() == d["files"]
    assert [str(s) for s in ds["seed"]] == manifest["seed"].tolist()  # 63-bit seeds exact
    assert ds["prompt"] == manifest["prompt"].tolist() and ds["aug_seed"] == [None] * len(ds)
    soft = torch.load(run / "dataset" / "soft_labels.pt", weights_only=True)
    torch.testing.assert_close(torch.tensor(ds["teacher_logits"]), soft["logits"])


def test_an_export_is_never_left_half_written_nor_written_over(tmp_path, monkeypatch, capsys):
    import gendistill.imageio as imageio

    run = packaged_run(tmp_path, dataset="cifar10", n_classes=2, ipc=3, n_all=10)
    calls = []

    def failing(path, img):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt  # killed in the middle of the image folder
        return real(path, img)

    real = imageio.save_png
    monkeypatch.setattr(imageio, "save_png", failing)
    with pytest.raises(KeyboardInterrupt):
        export(str(run), "ddranking", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir() if "out" in p.name] == []
    monkeypatch.setattr(imageio, "save_png", real)
    assert cli(["export", str(run), "--format", "ddranking", "--out", str(tmp_path / "out")]) == 0
    assert cli(["export", str(run), "--format", "hf", "--out", str(tmp_path / "out")]) == 1  # left as it is
    assert "already exists" in capsys.readouterr().err and (tmp_path / "out" / "images.pt").exists()
    assert cli(["export", str(tmp_path / "nope"), "--format", "hf", "--out", str(tmp_path / "x")]) == 1

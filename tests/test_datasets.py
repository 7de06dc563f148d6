"""Dataset adapters on fixtures written in the exact real on-disk formats (tests/dataset_fixtures.py).

Tier 1 checks each adapter alone: class order from the dataset's own files, and every image paired with its
true label (fixture images are flat colours that encode their label). Tier 3 runs the whole workflow on each
fixture and checks that label i in the packaged dataset is the dataset's class i.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import dataset_fixtures as fx
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, TINY_CONFIG, deep_update, run_snakemake, with_tiny_model

from gendistill.datasets import DatasetError, get_adapter
from gendistill.naming import class_ids
from gendistill.plan import build_plan

SRC_ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}

# The paper's reference script hard-codes CIFAR-100 classes in its own order; our fixtures use yet another
# order, so only an adapter that reads the dataset's meta file gets the labels right.
REFERENCE_CODE_ORDER_HEAD = ["apple", "aquarium_fish", "baby", "bear", "beaver", "bed"]

MAKERS = {
    "cifar10": fx.make_cifar10,
    "cifar100": fx.make_cifar100,
    "tinyimagenet": fx.make_tinyimagenet,
    "imagefolder": fx.make_imagefolder,
}


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return {name: make(tmp_path_factory.mktemp(name)) for name, make in MAKERS.items()}


@pytest.mark.parametrize("name", list(MAKERS))
def test_class_order_is_the_datasets_own(fixtures, name):
    fix = fixtures[name]
    names = [c.name for c in get_adapter({"name": name, "root": str(fix.root)}).classes()]
    assert names == fix.names
    assert names != sorted(names) or name == "imagefolder"  # the fixture order is not alphabetical
    assert names[: len(REFERENCE_CODE_ORDER_HEAD)] != REFERENCE_CODE_ORDER_HEAD


@pytest.mark.parametrize("name", list(MAKERS))
def test_every_image_carries_its_true_label(fixtures, name):
    fix = fixtures[name]
    ad = get_adapter({"name": name, "root": str(fix.root)})
    ad.check()
    for split in ("train", "test"):
        x, y = ad.load_split(split)
        assert x.dtype == np.uint8 and x.shape == (fix.counts[split], ad.image_size, ad.image_size, 3)
        assert y.dtype == np.int64 and sorted(set(y.tolist())) == list(range(len(fix.names)))
        np.testing.assert_array_equal(fx.decode_labels(x), y)


def test_imagefolder_without_class_list_uses_sorted_directories(tmp_path):
    fix = fx.make_imagefolder(tmp_path, classes_txt=False)
    ad = get_adapter({"name": "imagefolder", "root": str(tmp_path)})
    assert [c.name for c in ad.classes()] == sorted(fx.FOLDER_NAMES) == fix.names
    x, y = ad.load_split("test")
    np.testing.assert_array_equal(fx.decode_labels(x), y)


def test_tinyimagenet_prompt_fields_from_words_txt(fixtures):
    classes = get_adapter({"name": "tinyimagenet", "root": str(fixtures["tinyimagenet"].root)}).classes()
    goldfish = classes[1]
    assert goldfish.fields["name"] == "goldfish" and goldfish.fields["synonyms"] == "goldfish, Carassius auratus"
    assert goldfish.fields["wnid"] == "n01443537"


def test_unsafe_names_get_unique_safe_ids_and_keep_label_and_prompt(fixtures):
    fix = fixtures["imagefolder"]
    cfg = deep_update(TINY_CONFIG, {"dataset": {"name": "imagefolder", "root": str(fix.root), "classes": None}})
    plan = build_plan(cfg)
    ids = [c.id for c in plan.classes]
    assert len(set(ids)) == len(ids) == len(fix.names)
    assert all(i.isascii() and "/" not in i and " " not in i for i in ids)
    assert [c.name for c in plan.classes] == fix.names  # labels and names unchanged
    assert plan.classes[2].prompt == "Crème brûlée" and plan.classes[3].prompt == "Creme brulee"
    assert ids == class_ids(fix.names)


def _corrupt_meta(root):
    (root / "cifar-100-python" / "meta").write_bytes(b"\x80\x02truncated")


def _label_out_of_range(root):
    path = root / "cifar-100-python" / "test"
    d = pickle.loads(path.read_bytes(), encoding="bytes")
    d[b"fine_labels"][0] = 99
    path.write_bytes(pickle.dumps(d, protocol=2))


@pytest.mark.parametrize(
    "damage, expect",
    [
        (lambda r: (r / "cifar-100-python" / "train").unlink(), "missing train"),
        (_corrupt_meta, "cannot unpickle"),
        (_label_out_of_range, "labels span 0..99 but meta names 6 classes"),
    ],
)
def test_malformed_cifar_is_reported_with_path_and_fix(tmp_path, damage, expect):
    fx.make_cifar100(tmp_path)
    damage(tmp_path)
    with pytest.raises(DatasetError) as e:
        get_adapter({"name": "cifar100", "root": str(tmp_path)}).check()
    msg = str(e.value)
    assert expect in msg and "expected layout" in msg and "cifar-100-python.tar.gz" in msg, msg


def test_malformed_tinyimagenet_and_imagefolder(tmp_path):
    fx.make_tinyimagenet(tmp_path / "t")
    words = tmp_path / "t" / "tiny-imagenet-200" / "words.txt"
    words.write_text("".join(line + "\n" for line in words.read_text().splitlines() if "pizza" not in line))
    with pytest.raises(DatasetError, match=r"words.txt has no words for \['n07873807'\]"):
        get_adapter({"name": "tinyimagenet", "root": str(tmp_path / "t")}).check()
    fx.make_imagefolder(tmp_path / "f")
    (tmp_path / "f" / "classes.txt").write_text("zebra\ngolden_retriever\nzebra\n")
    with pytest.raises(DatasetError, match=r"names \['zebra'\] more than once"):
        get_adapter({"name": "imagefolder", "root": str(tmp_path / "f")}).check()


def test_digits_without_scikit_learn_names_the_demo_extra(monkeypatch):
    """A compute node's install leaves the demo extra out: the digits dataset says so before any job."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    with pytest.raises(DatasetError, match=r"scikit-learn.*pip install 'gendistill\[demo\]'"):
        get_adapter({"name": "digits"}).check()


@pytest.mark.parametrize("classes", [10, 3])
def test_digits_split_is_scikit_learns_without_importing_it(classes):
    """The digits adapter reads scikit-learn's data file and splits it itself: the same images and labels as
    load_digits and the same indices as train_test_split(stratify=...), for several seeds and class subsets."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from gendistill.datasets.digits import TEST_FRACTION, read_digits, stratified_split

    images, target = read_digits()
    ref = load_digits()
    assert np.array_equal(images, ref.images) and np.array_equal(target, ref.target)
    keep = target < classes
    y = target[keep]
    for seed in range(8):
        train, test = train_test_split(np.arange(len(y)), test_size=TEST_FRACTION, random_state=seed, stratify=y)
        ours = stratified_split(y, TEST_FRACTION, seed)
        assert np.array_equal(ours[0], train) and np.array_equal(ours[1], test), seed


def test_digits_are_read_without_importing_scikit_learn():
    code = (
        "import sys; from gendistill.datasets import get_adapter; "
        "a = get_adapter({'name': 'digits', 'image_size': 16}); a.check(); x, y = a.load_split('test'); "
        "print(len(y), 'sklearn' in sys.modules, 'scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=SRC_ENV)
    assert out.stdout.split() == ["540", "False", "False"]


def test_cifar_download_goes_through_torchvision(tmp_path, monkeypatch):
    """download: true hands the real files to torchvision's downloader (offline here: its error is reported)."""
    import torchvision

    calls = []

    def fake_cifar100(root, download):
        calls.append((root, download))
        fx.make_cifar100(root)  # what the downloader leaves behind

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", fake_cifar100)
    ad = get_adapter({"name": "cifar100", "root": str(tmp_path), "download": True})
    ad.check()
    assert calls == [(str(tmp_path), True)] and [c.name for c in ad.classes()] == fx.CIFAR100_NAMES

    def offline(root, download):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", offline)
    with pytest.raises(DatasetError, match="download failed: OSError: no network"):
        get_adapter({"name": "cifar100", "root": str(tmp_path / "empty"), "download": True}).check()


# --- Tier 3: the whole workflow on each fixture -----------------------------------------------------------
E2E = {
    # (dataset config besides root, generation resolution)
    "cifar10": ({"classes": ["airplane", "truck", "dog"]}, 32),
    "cifar100": ({}, 32),
    "tinyimagenet": ({"classes": [0, 3]}, 64),
    "imagefolder": ({}, 48),
}


def _e2e_config(dataset: dict, resolution: int) -> dict:
    return deep_update(
        TINY_CONFIG,
        {
            "ipc": 2,
            "dataset": {"classes": None, **dataset},
            "generation": {"n_generated": 1, "resolution": resolution},
            "augmentation": {"n_aug": 1},
            "evaluation": {"epochs": 1, "baselines": {"random_subset": True, "full": False}},
        },
    )


def documented_imagefolder_loader(root):
    """The ImageFolder loader as docs/outputs.md gives it (its python block that reads labels.json), run as is."""
    page = (REPO / "docs" / "outputs.md").read_text()
    (code,) = [b.split("\n", 1)[1] for b in page.split("```")[1::2] if b.startswith("python") and "labels.json" in b]
    scope = {}
    exec(code.replace("results/demo/dataset/imagefolder", str(root)), scope)
    return scope["ds"]


def _check_packaged_labels(out, names, selected):
    data = torch.load(out / "dataset" / "distilled.pt", weights_only=False)
    # torchvision's ImageFolder numbers the class folders 0, 1, ...; the documented loader gives the dataset's labels
    folder = documented_imagefolder_loader(out / "dataset" / "imagefolder")
    assert [folder[i][1] for i in range(len(folder))] == data["labels"].tolist()
    assert data["class_names"] == names  # the dataset's full class list, in its own label order
    manifest = pd.read_csv(out / "dataset" / "manifest.csv")
    assert sorted(set(manifest["label"])) == sorted(selected)
    assert data["labels"].tolist() == manifest["label"].tolist()
    for row in manifest.itertuples():
        assert row.class_name == names[row.label], row  # label i is the dataset's class i
        assert row.class_id.startswith(f"{row.label:03d}_")
    return manifest


@pytest.mark.workflow
@pytest.mark.parametrize("name", list(E2E))
def test_workflow_on_each_dataset_format(tmp_path, name, tiny_run):
    fix = MAKERS[name](tmp_path / "data")
    with_tiny_model(tmp_path, tiny_run)
    dataset, resolution = E2E[name]
    cfg = _e2e_config({"name": name, "root": str(fix.root), **dataset}, resolution)
    run_snakemake(tmp_path, cfg, targets=("results/t/results/results.csv",))  # not the report's items
    out = tmp_path / "results" / "t"
    selected = [c.index for c in build_plan(cfg).classes]
    if "classes" in dataset:
        assert len(selected) == len(dataset["classes"]) < len(fix.names)
    manifest = _check_packaged_labels(out, fix.names, selected)
    assert len(manifest) == 2 * len(selected)
    prompts = pd.read_csv(out / "prompts.csv")
    assert prompts["index"].tolist() == selected
    if name == "tinyimagenet":  # first synonym of words.txt, not the wnid
        assert prompts["prompt"].tolist() == ["reel", "pizza"]
    results = pd.read_csv(out / "results" / "results.csv")
    assert set(results["set"]) == {"distilled", "random_subset"}
    assert results["accuracy"].between(0, 1).all()


def test_the_class_list_notice_counts_the_classes_that_run(capsys):
    """Issue 31, item 6: the notice counted the whole list, not the classes dataset.classes selects."""
    names = ["a", "b", "c", "d"]
    get_adapter({"name": "classlist", "class_names": names, "classes": None}).check()
    assert "generation and packaging still run for 4 classes)" in capsys.readouterr().err
    build_plan(deep_update(TINY_CONFIG, {"dataset": {"name": "classlist", "class_names": names, "classes": ["b", 3]}}))
    assert "still run for the 2 selected of the 4 classes)" in capsys.readouterr().err


@pytest.mark.workflow
def test_workflow_classlist_mode_skips_evaluation_with_a_note(tmp_path, tiny_run):
    with_tiny_model(tmp_path, tiny_run)
    names = ["snow leopard", "cat/dog", "Crème brûlée"]
    cfg = _e2e_config({"name": "classlist", "class_names": names, "image_size": 32}, 32)
    proc = run_snakemake(tmp_path, cfg)
    assert "has no real images: evaluation is skipped" in proc.stdout + proc.stderr
    out = tmp_path / "results" / "t"
    _check_packaged_labels(out, names, [0, 1, 2])
    assert not (out / "results").exists() and not (out / "eval").exists()
    meta = json.loads((out / "dataset" / "provenance.json").read_text())
    assert meta["config"]["dataset"]["class_names"] == names

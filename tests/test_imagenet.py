"""The ImageNet-1k adapter on fixtures in the ILSVRC2012 layouts people have (tests/dataset_fixtures.py):
class folders or Kaggle's flat val + LOC_val_solution.csv; names from LOC_synset_mapping.txt, the devkit's
meta.mat or torchvision's meta.bin. Labels are checked from the pixels (each class has its own colour)."""

from __future__ import annotations

import dataset_fixtures as fx
import numpy as np
import pytest

from gendistill.datasets import DatasetError, get_adapter


@pytest.mark.parametrize(
    "layout, names", [("folders", "mapping"), ("kaggle", "mapping"), ("folders", "devkit"), ("kaggle", "metabin")]
)
def test_label_order_names_and_pixels(tmp_path, layout, names):
    fix = fx.make_imagenet(tmp_path, n_classes=6, layout=layout, names=names)
    ad = get_adapter({"name": "imagenet", "root": str(fix.root), "image_size": 32})
    ad.check()
    classes = ad.classes()
    wnids = [c.fields["wnid"] for c in classes]
    assert wnids == sorted(wnids) and [c.name for c in classes] == fix.names  # sorted wnids, as torchvision
    assert [c.name for c in classes] != sorted(c.name for c in classes)
    by_wnid = {c.fields["wnid"]: c for c in classes}
    assert by_wnid["n01440764"].fields["name"] == "tench"
    assert by_wnid["n01440764"].fields["synonyms"] == "tench, Tinca tinca"
    for split in ("train", "test"):
        x, y = ad.load_split(split)
        assert x.shape == (fix.counts[split], 32, 32, 3) and sorted(set(y.tolist())) == list(range(6))
        np.testing.assert_array_equal(fx.decode_imagenet_labels(x), y)
        paths, labels = ad.files(split, labels=[1, 4])
        assert set(labels.tolist()) == {1, 4} and all(p.is_file() for p in paths)


def test_duplicate_first_names_stay_unique(tmp_path):
    fix = fx.make_imagenet(tmp_path, n_classes=5)  # includes the two 'crane' synsets
    names = [c.name for c in get_adapter({"name": "imagenet", "root": str(fix.root)}).classes()]
    assert "crane (n02012849)" in names and "crane (n03126707)" in names and len(set(names)) == len(names)


@pytest.mark.parametrize(
    "damage, expect",
    [
        ("no_train", "missing"),
        ("no_names", "no class-name file"),
        ("unnamed_wnid", "no class names for 1 wnids"),
        ("empty_class", "no training images in train/<wnid>/"),
        ("flat_val_no_csv", "no LOC_val_solution.csv labels it"),
        ("csv_missing_file", "which is not in"),
        ("csv_unknown_wnid", "is not a wnid of train/"),
        ("val_extra_class", "val/ has class folders that train/ lacks"),
    ],
)
def test_missing_or_partial_layouts_are_named(tmp_path, damage, expect):
    import shutil

    layout = "kaggle" if damage.startswith(("flat", "csv")) else "folders"
    fix = fx.make_imagenet(tmp_path, n_classes=4, layout=layout)
    data = tmp_path / "ILSVRC" / "Data" / "CLS-LOC" if layout == "kaggle" else tmp_path
    if damage == "no_train":
        shutil.rmtree(data / "train")
    elif damage == "no_names":
        (tmp_path / "LOC_synset_mapping.txt").unlink()
    elif damage == "unnamed_wnid":
        (data / "train" / "n09999999").mkdir()
    elif damage == "empty_class":
        for f in (data / "train" / "n01440764").iterdir():
            f.unlink()
    elif damage == "flat_val_no_csv":
        (tmp_path / "LOC_val_solution.csv").unlink()
    elif damage == "csv_missing_file":
        next((data / "val").iterdir()).unlink()
    elif damage == "csv_unknown_wnid":
        csv = tmp_path / "LOC_val_solution.csv"
        csv.write_text(csv.read_text().replace("n01440764", "n09999999"))
    elif damage == "val_extra_class":
        (data / "val" / "n09999999").mkdir()
    with pytest.raises(DatasetError) as e:
        get_adapter({"name": "imagenet", "root": str(fix.root)}).check()
    msg = str(e.value)
    assert expect in msg and "expected layout" in msg and "LOC_val_solution.csv" in msg, msg


@pytest.mark.parametrize("dataset", ["imagenet", "tinyimagenet"])
def test_classes_by_wnid_name_or_index_and_the_error_names_each_kind(tmp_path, dataset):
    """dataset.classes takes the WordNet ids ImageNet users think in, beside names and indices; an unknown entry
    is refused naming a few valid entries of each kind."""
    from conftest import TINY_CONFIG, deep_update

    from gendistill.config import ConfigError
    from gendistill.plan import build_plan

    if dataset == "imagenet":
        fix = fx.make_imagenet(tmp_path, n_classes=6)
    else:
        fix = fx.make_tinyimagenet(tmp_path)
    infos = get_adapter({"name": dataset, "root": str(fix.root)}).classes()
    wnid = infos[2].fields["wnid"]
    base = {"dataset": {"name": dataset, "root": str(fix.root), "image_size": 32, "classes": None}}
    cfg = deep_update(TINY_CONFIG, base)
    plan = build_plan(deep_update(cfg, {"dataset": {"classes": [wnid, infos[0].name, 1]}}))
    assert [c.index for c in plan.classes] == [0, 1, 2] and plan.classes[2].name == infos[2].name
    with pytest.raises(ConfigError) as e:
        build_plan(deep_update(cfg, {"dataset": {"classes": ["n05555555"]}}))
    msg = str(e.value)
    assert f"'n05555555' is not a class of '{dataset}'" in msg, msg
    assert repr(infos[0].name) in msg and f"indices 0..{len(infos) - 1}" in msg and infos[0].fields["wnid"] in msg
    with pytest.raises(ConfigError, match="listed twice"):
        build_plan(deep_update(cfg, {"dataset": {"classes": [wnid, 2]}}))

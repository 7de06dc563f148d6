"""Every named protocol against the lines of its sources (evaluation/protocol_sources.py): each table entry must
equal the preset as it resolves, a drift names the line to read, and (with clones of the sources at hand) each
quoted line is where the table says."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gendistill.evaluation import protocols
from gendistill.evaluation.protocol_sources import PINS, SAME, drift, format_table, verify_quotes
from gendistill.evaluation.protocols import PROTOCOLS, Context


def test_every_protocol_has_a_source_table():
    assert set(PINS) == set(PROTOCOLS)
    for name, groups in PINS.items():
        for _ctx, pins in groups:
            assert pins
            for p in pins:
                assert "@" in p.where or "==" in p.where, p
                assert p.where.rsplit(":", 1)[1].isdigit() and p.quote, p
                assert p.ours is SAME or p.why, f"{name}: {p.setting} differs from its source without a reason"


@pytest.mark.parametrize("name", list(PINS))
def test_the_preset_equals_its_sources_table(name):
    assert drift(name) == []


def test_a_preset_that_drifts_from_its_source_fails_with_the_line_to_read(monkeypatch):
    rded = PROTOCOLS["rded"]

    def drifted(ctx: Context) -> dict:
        return {**rded.evaluation(ctx), "epochs": 200, "test_resize": None}

    monkeypatch.setitem(PROTOCOLS, "rded", rded._replace(evaluation=drifted))
    problems = "\n".join(drift("rded"))
    assert "evaluation.epochs is 200" in problems and "LINs-lab/RDED@3f6453d:argument.py:114" in problems
    assert "evaluation.test_resize is None" in problems and "validation/main.py:154" in problems
    assert "args.input_size // 7 * 8" in problems


def test_a_documented_difference_holds_our_value_and_fails_when_it_changes(monkeypatch):
    soft = PROTOCOLS["dd_ranking_soft"]
    monkeypatch.setitem(
        PROTOCOLS,
        "dd_ranking_soft",
        soft._replace(evaluation=lambda ctx: {**soft.evaluation(ctx), "accuracy": "best_during_training"}),
    )
    problems = "\n".join(drift("dd_ranking_soft"))
    assert "evaluation.accuracy is 'best_during_training'" in problems and "ours by design 'final'" in problems


@pytest.mark.skipif(
    not os.environ.get("GENDISTILL_SOURCE_MIRRORS"),
    reason="set GENDISTILL_SOURCE_MIRRORS to a directory of the sources' clones (<owner>+<name>/repo)",
)
def test_every_quoted_line_is_at_its_line_in_the_source():
    problems = verify_quotes(Path(os.environ["GENDISTILL_SOURCE_MIRRORS"]))
    assert [p for p in problems if not p.startswith("unchecked")] == []


def test_the_printed_presets_and_tables(capsys):
    protocols.main(["rded", "--dataset", "imagenet", "--resolution", "224"])
    out = json.loads(capsys.readouterr().out)
    assert out["evaluation"]["test_resize"] == 256 and out["teacher"] == {"model": "resnet18", "recipe": "torchvision"}
    protocols.main(["dd_ranking_soft", "--dataset", "imagenet"])  # the dataset's own resolution and classes
    out = json.loads(capsys.readouterr().out)
    assert out["evaluation"]["baselines"] == {"random_subset": True, "full": False, "full_accuracy": 0.565}
    protocols.main(["dd_ranking_soft", "--dataset", "cifar100"])
    out = json.loads(capsys.readouterr().out)
    assert out["evaluation"]["baselines"]["full"] is True and "full_accuracy" not in out["evaluation"]["baselines"]
    from gendistill.evaluation.protocol_sources import main as sources

    sources(["dd_ranking_hard"])
    table = capsys.readouterr().out
    line = "| run[full].epochs | 1000 | 1000 | NUS-HPC-AI-Lab/DD-Ranking@b8b0966:ddranking/metrics/hard_label.py:266"
    assert line in table
    assert format_table("rded", Context("cifar100", 32, 10, 100)).count("rded: cifar100") == 1

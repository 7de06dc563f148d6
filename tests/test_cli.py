"""The command line: the sample job's argparse-free path reads exactly what argparse would, hands every other
form to argparse, and keeps the job's imports light (it runs once per class)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

from gendistill import cli

LOAD, CLS, GEN, RUNTIME = '{"source": "m"}', '{"id": "000_a b", "name": "a {b}"}', '{"steps": 1}', '{"server": true}'
WORKFLOW_FORM = ["sample", "--load", LOAD, "--cls", CLS, "--gen", GEN, "--out-size", "32", "--out", "o/000_a b"]
EXPECTED = (LOAD, CLS, GEN, 32, "o/000_a b")


@pytest.fixture
def calls(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "_run_sample", lambda *a: seen.append((*a[:3], int(a[3]), *a[4:])) or 0)
    return seen


def test_the_workflow_form_is_read_as_argparse_reads_it(calls):
    assert cli.main([*WORKFLOW_FORM, "--runtime", RUNTIME]) == 0
    assert cli.sample_fast_path([*WORKFLOW_FORM, "--runtime", RUNTIME]) is not None
    # the same values through argparse (`--opt=value` is not the fast path's form), and options in another order
    assert cli.sample_fast_path(["sample", f"--load={LOAD}", *WORKFLOW_FORM[3:], "--runtime", RUNTIME]) is None
    assert cli.main(["sample", f"--load={LOAD}", *WORKFLOW_FORM[3:], "--runtime", RUNTIME]) == 0
    assert cli.main(["sample", "--runtime", RUNTIME, *WORKFLOW_FORM[5:], *WORKFLOW_FORM[1:5]]) == 0
    assert calls == [(*EXPECTED, RUNTIME)] * 3
    assert cli.main(WORKFLOW_FORM) == 0 and calls[-1] == (*EXPECTED, "{}")  # --runtime defaults to {}


@pytest.mark.parametrize(
    "argv, message",
    [
        (WORKFLOW_FORM[:-2], "the following arguments are required: --out"),
        ([*WORKFLOW_FORM, "--seed", "3"], "unrecognized arguments: --seed 3"),
        ([*WORKFLOW_FORM[:7], "--out-size", "big", *WORKFLOW_FORM[9:]], "--out-size: invalid int value: 'big'"),
        ([*WORKFLOW_FORM, "--out", "p"], None),  # repeated: argparse takes the last one
    ],
)
def test_other_forms_get_argparse(calls, capsys, argv, message):
    assert cli.sample_fast_path(argv) is None
    if message is None:
        assert cli.main(argv) == 0 and calls[-1][4] == "p"
        return
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err and calls == []


def test_the_sample_job_imports_no_argparse_torch_or_dataclasses():
    """What a sample job imports before it connects to the sampler (the job starts once per class)."""
    probe = (
        "import sys, json; from gendistill import cli; import gendistill.sampling.client as c; "
        "c.run = lambda *a: 0; cli.main(json.loads(sys.argv[1])); "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('argparse', 'torch', 'numpy', 'PIL', 'dataclasses', 'inspect', 'yaml'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(WORKFLOW_FORM)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []

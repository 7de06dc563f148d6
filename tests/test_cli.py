"""The command line: the sample job's argparse-free path reads exactly what argparse would, hands every other
form to argparse, and keeps the job's imports light (it runs once per class)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from gendistill import cli

RUNTIME = '{"server": true}'
WORKFLOW_FORM = ["sample", "--request", "r/000_a b-0123456789abcdef.json", "--out", "o/000_a b"]
EXPECTED = ("r/000_a b-0123456789abcdef.json", "o/000_a b")


@pytest.fixture
def calls(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "_run_sample", lambda *a: seen.append(a) or 0)
    return seen


def test_the_workflow_form_is_read_as_argparse_reads_it(calls):
    assert cli.main([*WORKFLOW_FORM, "--runtime", RUNTIME]) == 0
    assert cli.sample_fast_path([*WORKFLOW_FORM, "--runtime", RUNTIME]) is not None
    # the same values through argparse (`--opt=value` is not the fast path's form), and options in another order
    assert (
        cli.sample_fast_path(["sample", f"--request={EXPECTED[0]}", *WORKFLOW_FORM[3:], "--runtime", RUNTIME]) is None
    )
    assert cli.main(["sample", f"--request={EXPECTED[0]}", *WORKFLOW_FORM[3:], "--runtime", RUNTIME]) == 0
    assert cli.main(["sample", "--runtime", RUNTIME, *WORKFLOW_FORM[3:], *WORKFLOW_FORM[1:3]]) == 0
    assert calls == [(*EXPECTED, RUNTIME)] * 3
    assert cli.main(WORKFLOW_FORM) == 0 and calls[-1] == (*EXPECTED, "{}")  # --runtime defaults to {}


@pytest.mark.parametrize(
    "argv, message",
    [
        (WORKFLOW_FORM[:-2], "the following arguments are required: --out"),
        ([*WORKFLOW_FORM, "--seed", "3"], "unrecognized arguments: --seed 3"),
        (["sample", "--load", "{}", *WORKFLOW_FORM[1:]], "unrecognized arguments: --load {}"),  # the old form
        ([*WORKFLOW_FORM, "--out", "p"], None),  # repeated: argparse takes the last one
    ],
)
def test_other_forms_get_argparse(calls, capsys, argv, message):
    assert cli.sample_fast_path(argv) is None
    if message is None:
        assert cli.main(argv) == 0 and calls[-1][1] == "p"
        return
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err and calls == []


def test_the_sample_job_imports_no_argparse_torch_or_dataclasses(tmp_path):
    """What a sample job imports before it connects to the sampler (the job starts once per class)."""
    from gendistill.sampling.request import write_request

    request = write_request(str(tmp_path), "000_a", {"cls": {}, "load": {}, "gen": {}, "out_size": 32})
    form = ["sample", "--request", request, "--out", str(tmp_path / "o")]
    probe = (
        "import sys, json; from gendistill import cli; import gendistill.sampling.client as c; "
        "c.run = lambda *a: 0; assert cli.main(json.loads(sys.argv[1])) == 0; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('argparse', 'torch', 'numpy', 'PIL', 'dataclasses', 'inspect', 'yaml'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(form)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_a_request_file_is_read_only_if_it_holds_what_its_name_says(tmp_path, capsys):
    from gendistill.sampling.request import read_request, write_request

    request = {"cls": {"prompt": "a photo of a {cat}"}, "load": {"source": "/m"}, "gen": {}, "out_size": 32}
    path = write_request(str(tmp_path / "requests"), "003_cat", request)
    assert write_request(str(tmp_path / "requests"), "003_cat", request) == path  # written once
    assert read_request(path) == request
    assert oct((tmp_path / "requests").stat().st_mode & 0o777) == "0o700"
    assert oct(Path(path).stat().st_mode & 0o777) == "0o600"
    Path(path).write_text(Path(path).read_text().replace("cat", "dog"))
    assert cli.main(["sample", "--request", path, "--out", str(tmp_path / "o")]) == 1
    assert "does not hold what its name says" in capsys.readouterr().err

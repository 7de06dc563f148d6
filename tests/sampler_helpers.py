"""Helpers of the sampler tests: a class request, the job's command line, talking to a sampler directly."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from conftest import REPO

CLS = {"index": 3, "name": "cat", "id": "003_cat", "prompt": "a photo of a cat", "seed": 0, "n_generated": 2}
GEN = {"resolution": 32, "steps": 1, "guidance_scale": 0.0}


def client_cmd(
    load: dict, cls: dict, out: Path, runtime: dict, out_size: int = 16, src: Path = REPO / "src"
) -> list[str]:
    """The sample job's command (as the workflow runs it: its request in a private file), for a job in a process
    of its own."""
    from gendistill.sampling.request import write_request

    request = write_request(
        str(Path(out).parent / ".requests"), cls["id"], {"cls": cls, "load": load, "gen": GEN, "out_size": out_size}
    )
    return [
        "env",
        f"PYTHONPATH={src}",
        sys.executable,
        "-m",
        "gendistill",
        "sample",
        "--request",
        request,
        "--out",
        str(out),
        "--runtime",
        json.dumps(runtime),
    ]


def ping(sock: Path, timeout: float = 30) -> dict:
    from gendistill.sampling.protocol import Channel
    from gendistill.sampling.runtime import connect

    conn = connect(str(sock))
    assert conn is not None, f"no sampler at {sock}"
    ch = Channel(conn[0])
    try:
        ch.send({"op": "ping"})
        return ch.recv(timeout)[0]
    finally:
        ch.close()


def read_meta(out: Path) -> dict:
    return json.loads((Path(out) / "records.json").read_text())["meta"]


def pid_gone(pid: int) -> bool:
    """The process has exited (a sampler started from the test process stays a zombie until reaped)."""
    from gendistill.processes import process_state

    return process_state(pid) in ("Z", "?")


def wait_for_tmp_pngs(parent: Path, name: str, n: int, timeout: float = 120) -> Path:
    """The job's temporary output directory `.<name>.tmp-*` once it holds n images (the job is mid-class)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for d in parent.glob(f".{name}.tmp-*"):
            if len(list(d.glob("*.png"))) >= n:
                return d
        time.sleep(0.05)
    raise TimeoutError("the job wrote no images")

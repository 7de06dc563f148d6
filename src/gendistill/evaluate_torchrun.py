"""One evaluation job on several processes (evaluation.processes): torchrun starts them on this node
(`--standalone`: its rendezvous on a free localhost port; no restarts), each runs gendistill.evaluate.run_job as
one rank of the process group (NCCL on GPUs, one GPU per process; gloo on the CPU), and rank 0 writes the result
into a private temporary directory that the job reads and removes. The job alone writes the metrics file, so a
cancelled job (its torchrun and workers are stopped with it) leaves none.

    python -m gendistill.evaluate_torchrun SPEC.json RESULT.json      # what torchrun runs in each process
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("gendistill.evaluate")


def run(spec, processes: int, threads: int, log_file=None, keep_fds=()) -> dict:
    """Train `spec` (gendistill.evaluate.EvalSpec) on `processes` processes; returns rank 0's result. `threads`:
    the job's CPU threads, shared by the processes (torch threads and DataLoader workers); `log_file`: where the
    processes' output goes (the job's log); `keep_fds`: the job's GPU slot locks (gendistill.evaluation.gpus),
    which torchrun holds too, so the GPUs stay taken while it runs even if the job is killed before it. Its
    processes see the GPUs the job's CUDA_VISIBLE_DEVICES names, and each takes the one of its local rank."""
    import gendistill

    src = str(Path(gendistill.__file__).resolve().parents[1])
    per_process = max(1, threads // processes)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]),
        "OMP_NUM_THREADS": str(per_process),
        "GENDISTILL_EVAL_THREADS": str(per_process),
    }
    with tempfile.TemporaryDirectory(prefix="gendistill-eval-") as tmp:  # mode 0700: this user's alone
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec.to_json()))
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={processes}",
            "--max-restarts=0",
            "-m",
            "gendistill.evaluate_torchrun",
            str(spec_path),
            str(out_path),
        ]
        log.info("torchrun: %d processes, %d threads each: %s", processes, per_process, " ".join(cmd[2:]))
        out = log_file if log_file is not None and hasattr(log_file, "fileno") else None
        if out is not None:
            out.flush()
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            pass_fds=tuple(keep_fds),
        )
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # a cancelled job stops its processes first
        try:
            code = proc.wait()
        except BaseException:
            _stop(proc)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
        if code != 0 or not out_path.is_file():
            raise RuntimeError(
                f"the {processes} training processes (torchrun) failed with exit code {code}; their output is above "
                "in this log."
            )
        return json.loads(out_path.read_text())


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _stop(proc: subprocess.Popen) -> None:
    """torchrun forwards SIGTERM to its workers and waits for them."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def worker(spec_path: str, out_path: str) -> None:
    """One of torchrun's processes: join the group, train as rank RANK on GPU LOCAL_RANK (or the CPU)."""
    import torch

    from .atomic import write_text
    from .evaluate import EvalSpec, run_job
    from .evaluation.runtime import from_settings, init_process_group, process_group_from_env

    rank, world_size, local_rank = process_group_from_env()
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s %(levelname)s rank {rank}/{world_size}: %(message)s",
        stream=sys.stdout,
        force=True,
    )
    torch.set_num_threads(int(os.environ.get("GENDISTILL_EVAL_THREADS", "1")))
    spec = EvalSpec.from_json(json.loads(Path(spec_path).read_text()))
    device = spec.device
    if torch.device(device).type == "cuda":
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    spec.workers = max(0, int(os.environ.get("GENDISTILL_EVAL_THREADS", "1")) - 1)
    rt = from_settings({**spec.runtime, "amp": spec.recipe.get("amp", "auto")}, device, rank, world_size)
    init_process_group(device)
    try:
        res = run_job(spec, rt)
    finally:
        torch.distributed.destroy_process_group()
    if rank == 0:
        write_text(Path(out_path), json.dumps(res))


if __name__ == "__main__":
    worker(*sys.argv[1:3])

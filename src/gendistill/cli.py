"""The one command line, `gendistill <subcommand>` (also `python -m gendistill`): the workflow's thin `shell:`
jobs, the sampler process they start, and the tools people run (time budget, regenerate, sampler-stop).

Kept import-light: every parser is defined here without importing the modules behind it, and each subcommand
imports what it needs when it runs, so `sample` in server mode and `augment` start without importing torch.
"""

from __future__ import annotations

import json
import sys

# The sample job runs once per class (1,000 jobs for ImageNet-1k) as `gendistill sample --request FILE --out DIR
# --runtime J`: what it samples (the prompt, the model path) is in the request file the workflow wrote
# (sampling/request.py), never on its command line, which every user of the machine can read. That exact form is
# read without argparse, whose import and parser construction cost ~8 ms of a ~55 ms job (benchmarks/bench_scale.py);
# any other form (--help, a typo, a missing or repeated option, --opt=value) goes to the argparse parser in main(),
# which gives the usual help and errors.
SAMPLE_REQUIRED = ("--request", "--out")
SAMPLE_OPTIONAL = {"--runtime": "{}"}


def sample_fast_path(argv: list[str]) -> dict | None:
    """{option: value} for `sample` in the workflow's form, else None (argparse takes it)."""
    if len(argv) < 2 or argv[0] != "sample" or len(argv) % 2 != 1:
        return None
    opts = dict(zip(argv[1::2], argv[2::2]))
    known = {*SAMPLE_REQUIRED, *SAMPLE_OPTIONAL}
    if len(opts) != len(argv) // 2 or not opts.keys() <= known or not set(SAMPLE_REQUIRED) <= opts.keys():
        return None
    if any(v.startswith("-") and v != "-" for v in opts.values()):
        return None
    return {**SAMPLE_OPTIONAL, **opts}


def _sample(a) -> int:
    return _run_sample(a.request, a.out, a.runtime)


def _run_sample(request: str, out: str, runtime: str) -> int:
    from .sampling.client import run
    from .sampling.request import SAMPLE_FIELDS, RequestFileError, read_request

    try:
        req = read_request(request)
        missing = [k for k in SAMPLE_FIELDS if k not in req] if isinstance(req, dict) else list(SAMPLE_FIELDS)
        if missing:
            raise RequestFileError(f"the request file {request} lacks {', '.join(missing)}")
    except RequestFileError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    return run(req["load"], req["cls"], req["gen"], int(req["out_size"]), out, json.loads(runtime))


def _augment(a) -> int:
    from .distilled.augment import run

    return run(a.generated, a.out, json.loads(a.params), json.loads(a.seeds), a.workers)


def _build_tiny(a) -> int:
    from .generator.build import save_tiny_pipeline

    spec = json.loads(a.spec)
    out = save_tiny_pipeline(a.out, spec)
    print(
        f"tiny random-weight {spec.get('family', 'sdxl')} pipeline written to {out} (its images are noise, by design)"
    )
    return 0


def _write_prompts(a) -> int:
    import csv
    import io

    from .atomic import write_text
    from .sampling.request import read_request

    rows = read_request(a.classes_file)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["index", "name", "id", "prompt", "seed", "n_generated"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(a.out, buf.getvalue())
    print(buf.getvalue())
    return 0


def _stop(a) -> int:
    from .sampling.client import stop_samplers

    lines = stop_samplers()
    for line in lines:
        print(line)
    print(f"{len(lines)} sampler process(es) of yours in this runtime directory")
    return 0


def _regenerate(a) -> int:
    from .distilled.regenerate import main

    return main(a.run_dir, a.file)


def _sampler_serve(a) -> int:
    from .sampling.server import run_sampler

    run_sampler(a.socket, a.idle, a.owner_pid, a.lock_fd)
    return 0


def _time_budget(a) -> int:
    from .time_budget import run

    return run(a, " ".join(["gendistill time-budget", *a.argv]))


def _add_time_budget(sub) -> None:
    s = sub.add_parser(
        "time-budget",
        help="the largest n_generated that fits a wall-clock budget, measured on "
        "this device (cost model: gendistill/time_budget.py)",
    )
    s.add_argument(
        "--model-source",
        required=True,
        help="hub id or local diffusers dir; 'tiny' = the tiny random-weight pipeline (smoke tests)",
    )
    s.add_argument("--revision", default=None)
    s.add_argument("--tiny-spec", default="{}", help="JSON overrides of the tiny spec (with --model-source tiny)")
    s.add_argument("--budget", type=float, required=True, help="wall-clock budget in seconds (challenge: 600)")
    s.add_argument("--classes", type=int, required=True, help="number of classes (CIFAR-100: 100)")
    s.add_argument("--n-aug", type=int, default=4, help="augmented copies per generated image (IPC = n x (1+n_aug))")
    s.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    s.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    s.add_argument(
        "--batch-size",
        default="auto",
        type=lambda v: v if v == "auto" else int(v),
        help="images per pipeline call: auto (by device) or an integer",
    )
    s.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="sampling resolution (default 512; a DiT: its native size; tiny: its sample_size)",
    )
    s.add_argument("--steps", type=int, default=1, help="inference steps, as generation.steps (configs/models/)")
    s.add_argument("--guidance-scale", type=float, default=0.0, help="as generation.guidance_scale")
    s.add_argument("--decoder", default="vae", choices=["vae", "tiny"], help="as generation.decoder")
    s.add_argument(
        "--tiny-decoder",
        default=None,
        help="as generation.tiny_decoder (with --model-source tiny: the tiny pipeline's own random one)",
    )
    s.add_argument(
        "--prompt",
        default="apple",
        help="the prompt timed (a class-conditional model: one of its labels; its first label otherwise)",
    )
    s.add_argument("--out-size", type=int, default=32, help="dataset resolution the images are resized to")
    s.add_argument("--compile", action="store_true", help="torch.compile the denoiser (compile time is counted)")
    s.add_argument(
        "--vae-dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="as generation.vae_dtype in the config",
    )
    s.add_argument("--warmup-batches", type=int, default=1)
    s.add_argument("--timed-batches", type=int, default=2)
    s.add_argument("--repeats", type=int, default=2)
    s.add_argument(
        "--job-overhead",
        type=float,
        default=0.3,
        help="seconds per class added to the measured "
        "per-class overhead for workflow job start-up and file writing (Snakemake shell jobs ~0.03 s "
        "each + thin client start; see docs/design/sampler.md)",
    )
    s.add_argument(
        "--extra-fixed", type=float, default=0.0, help="extra seconds once per run (e.g. workflow start, packaging)"
    )
    s.add_argument(
        "--no-load-time",
        action="store_true",
        help="do not count the measured model load + warm-up "
        "in the fixed overhead (when the budget starts with a loaded model)",
    )
    s.add_argument("--per-output-image-seconds", type=float, default=0.0, help="augmentation/packaging per final image")
    s.add_argument(
        "--oversample",
        type=int,
        default=1,
        help="candidates sampled per kept image (selection.oversample): the budget pays for all of them",
    )
    s.add_argument("--safety", type=float, default=0.9, help="plan for this fraction of the budget")
    s.add_argument("--max-n-generated", type=int, default=None)
    s.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    s.add_argument("--json", default=None, help="write the record here (default: print only)")
    s.set_defaults(fn=_time_budget)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if opts := sample_fast_path(argv):
        return _run_sample(opts["--request"], opts["--out"], opts["--runtime"])
    import argparse

    ap = argparse.ArgumentParser(prog="gendistill", description="generative dataset distillation tools")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample", help="generate one class's images")
    s.add_argument(
        "--request",
        required=True,
        help="a JSON file (or - for stdin) with cls (index, name, id, prompt, seed, n_generated), load (model "
        "source, revision, device, dtype, vae_dtype, + decoder, tiny_decoder), gen (resolution, steps, "
        "guidance_scale) and out_size; a file, not options, so that no prompt or path is on the command line",
    )
    s.add_argument("--out", required=True)
    s.add_argument(
        "--runtime",
        default="{}",
        help="JSON: server, idle, server_timeout, batch_size, compile, "
        "deterministic, max_retries (knobs that do not decide pixels)",
    )
    s.set_defaults(fn=_sample)
    s = sub.add_parser("augment", help="post data augmentation of every class")
    s.add_argument("--generated", nargs="+", required=True, help="the classes' generated directories")
    s.add_argument("--out", required=True, help="directory to create, one subdirectory per class")
    s.add_argument("--params", required=True, help="JSON: the augmentation section of the config")
    s.add_argument("--seeds", required=True, help="JSON: {class id: seed}")
    s.add_argument("--workers", type=int, default=1)
    s.set_defaults(fn=_augment)
    s = sub.add_parser("build-tiny-model", help="write a tiny random-weight pipeline of one family (spec: model.tiny)")
    s.add_argument("--spec", default="{}")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_build_tiny)
    s = sub.add_parser("write-prompts", help="write the prompt table (one row per class) as CSV")
    s.add_argument("--classes-file", required=True, help="a JSON file with the list of class plans")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_write_prompts)
    s = sub.add_parser("sampler-stop", help="stop your sampler processes (kills one that does not answer)")
    s.set_defaults(fn=_stop)
    s = sub.add_parser("regenerate", help="regenerate one image from a run's manifest and check it matches")
    s.add_argument("run_dir", help="results/<run>")
    s.add_argument("file", help="the image's `file` column in dataset/manifest.csv, e.g. 003_cat/0001_0.png")
    s.set_defaults(fn=_regenerate)
    _add_time_budget(sub)
    s = sub.add_parser(
        "sampler-serve",
        help="the resident sampler process (started by sample jobs; the load spec comes as one JSON line on stdin)",
    )
    s.add_argument("--socket", required=True)
    s.add_argument("--idle", type=float, default=120)
    s.add_argument(
        "--owner-pid",
        type=int,
        default=None,
        help="exit when this process ends (inside a SLURM job: the step's task, SLURM_TASK_PID)",
    )
    s.add_argument("--lock-fd", type=int, default=None, help="inherited start lock, released once listening")
    s.set_defaults(fn=_sampler_serve)
    a = ap.parse_args(argv)
    a.argv = argv[1:]  # the subcommand's own arguments (time-budget records its command line)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())

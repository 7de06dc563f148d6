"""The one command line, `gendistill <subcommand>` (also `python -m gendistill`): the workflow's thin `shell:`
jobs, the sampler process they start, and the tools people run (time budget, regenerate, export, sampler-stop).

Kept import-light: each subcommand imports what it needs when it runs, so `sample` in server mode and `augment`
start without importing torch. The parsers are defined here, except time-budget's options, which live with their
code (`time_budget.add_arguments`, a light module imported only when argparse runs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
    try:
        in_process = json.loads(runtime).get("server", True) is False
    except (ValueError, AttributeError):
        in_process = False  # the job reports the bad runtime below
    if in_process:  # generation.server: false samples here: compile the package from the bytes recorded (code.py)
        from .sampling.code import exec_hooked, hooked

        if not hooked():
            exec_hooked(["sample", "--request", request, "--out", out, "--runtime", runtime])
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
    from .layout import RunLayout

    run = RunLayout(a.run_dir.rstrip("/"))
    missing = [p for p in (run.manifest, run.provenance) if not Path(p).is_file()]
    if missing:  # before importing torch and diffusers, and instead of pandas' traceback
        print(
            f"ERROR: {a.run_dir} is not a packaged run: {' and '.join(missing)} missing. Fix: give the run's "
            f"directory, results/<run> (the one holding dataset/manifest.csv), after its `package` job has run.",
            file=sys.stderr,
        )
        return 2
    from .distilled.regenerate import main

    return main(a.run_dir, a.file)


def _export(a) -> int:
    from .distilled.export import ExportError, export

    try:
        rec = export(a.run_dir, a.format, a.out)
    except (ExportError, FileExistsError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    for w in rec["warnings"]:
        print(f"WARNING: {w}", file=sys.stderr)
    print(f"{a.format}: {rec['n_images']} images of {rec['dataset']} written to {a.out}")
    return 0


def _sampler_serve(a) -> int:
    from .sampling.server import run_sampler

    run_sampler(a.socket, a.idle, a.owner_pid, a.lock_fd)
    return 0


def _time_budget(a) -> int:
    from .time_budget import run

    return run(a, " ".join(["gendistill time-budget", *a.argv]))


JOB_COMMANDS = ("sample", "augment", "build-tiny-model", "write-prompts", "sampler-serve")


def _user_commands(sub, argparse) -> None:
    """The commands people run, each with a help line (they are what `gendistill --help` lists)."""
    # deferred, as every subcommand's module: the sample job's fast path imports none of them
    from .time_budget import add_arguments as time_budget_arguments

    class ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
        """Each option's help with its default, where it has one worth showing."""

        def _get_help_string(self, action):
            if action.required or action.default in (None, False, [], argparse.SUPPRESS):
                return action.help
            if isinstance(action.default, list):
                return f"{action.help} (default: {' '.join(map(str, action.default))})"
            return super()._get_help_string(action)

    s = sub.add_parser(
        "time-budget",
        help="the largest n_generated that fits a wall-clock generation budget, measured on this device",
        description="Measure sampling on this device with the run's config and print the largest n_generated "
        "that fits --budget seconds (cost model: src/gendistill/time_budget.py; docs/time-budget.md).",
        formatter_class=ShowDefaults,
    )
    time_budget_arguments(s)
    s.set_defaults(fn=_time_budget)
    s = sub.add_parser(
        "regenerate",
        help="regenerate one image of a run from its manifest and check it matches",
        description="Regenerate one packaged image from the run's manifest and records and check its sha256.",
    )
    s.add_argument("run_dir", help="the run's directory, results/<run>")
    s.add_argument("file", help="the image's `file` column in dataset/manifest.csv, e.g. 003_cat/0001_0.png")
    s.set_defaults(fn=_regenerate)
    s = sub.add_parser(
        "export",
        help="write a run's distilled set for the ECCV 2024 challenge, DD-Ranking or Hugging Face datasets",
        description="Write a run's distilled set in the format another evaluator reads (docs/outputs.md): the "
        "challenge's submission file, DD-Ranking's inputs, or a datasets folder. DIR is created whole or not at all.",
    )
    s.add_argument(
        "run_dir", help="the run's directory, results/<run> (its dataset/distilled.pt, manifest, soft labels)"
    )
    s.add_argument(
        "--format",
        required=True,
        choices=["challenge", "ddranking", "hf"],
        help="challenge: <dataset>.pt for the challenge's evaluate.py; ddranking: images.pt, labels.pt (soft), "
        "hard_labels.pt and images/ for DD-Ranking; hf: a datasets.load_from_disk folder",
    )
    s.add_argument("--out", required=True, help="the directory to create (an existing one is left as it is)")
    s.set_defaults(fn=_export)
    s = sub.add_parser(
        "sampler-stop",
        help="stop your sampler processes now (kills one that does not answer in 10 s)",
        description="Stop your resident sampler processes (the workflow starts them; they exit when idle).",
    )
    s.set_defaults(fn=_stop)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if opts := sample_fast_path(argv):
        return _run_sample(opts["--request"], opts["--out"], opts["--runtime"])
    import argparse

    ap = argparse.ArgumentParser(
        prog="gendistill",
        description="Generative dataset distillation: the tools you run, beside the Snakemake workflow "
        "(`snakemake --profile profiles/local` runs the whole job; README).",
        epilog="Commands the workflow's jobs run (not meant to be typed): " + ", ".join(JOB_COMMANDS) + ".",
    )
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND", title="commands")
    _user_commands(sub, argparse)
    # The workflow's own job commands: no help line, so `gendistill --help` lists only the commands above.
    s = sub.add_parser("sample", description="generate one class's images (the sample job)")
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
        "deterministic, max_retries, gpus (knobs that do not decide pixels)",
    )
    s.set_defaults(fn=_sample)
    s = sub.add_parser("augment", description="post data augmentation of every class (the augment job)")
    s.add_argument("--generated", nargs="+", required=True, help="the classes' generated directories")
    s.add_argument("--out", required=True, help="directory to create, one subdirectory per class")
    s.add_argument("--params", required=True, help="JSON: the augmentation section of the config")
    s.add_argument("--seeds", required=True, help="JSON: {class id: seed}")
    s.add_argument("--workers", type=int, default=1)
    s.set_defaults(fn=_augment)
    s = sub.add_parser(
        "build-tiny-model", description="write a tiny random-weight pipeline of one family (spec: model.tiny)"
    )
    s.add_argument("--spec", default="{}")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_build_tiny)
    s = sub.add_parser("write-prompts", description="write the prompt table (one row per class) as CSV")
    s.add_argument("--classes-file", required=True, help="a JSON file with the list of class plans")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_write_prompts)
    s = sub.add_parser(
        "sampler-serve",
        description="the resident sampler process (started by sample jobs; the load spec comes as one JSON line on "
        "stdin)",
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

"""Command-line entry points used by the workflow's thin `shell:` jobs (and by people).

Kept import-light: each subcommand imports what it needs, so `sample` in server mode and `augment` start
without importing torch.
"""

from __future__ import annotations

import argparse
import json
import sys


def _sample(a) -> int:
    from .sampling.client import run

    return run(json.loads(a.load), json.loads(a.cls), json.loads(a.gen), a.out_size, a.out, json.loads(a.runtime))


def _augment(a) -> int:
    from .augment import run

    return run(a.generated, a.out, json.loads(a.params), json.loads(a.seeds), a.workers)


def _build_tiny(a) -> int:
    from .model_build import save_tiny_pipeline

    spec = json.loads(a.spec)
    out = save_tiny_pipeline(a.out, spec)
    print(f"tiny random-weight {spec.get('family', 'sdxl')} pipeline written to {out} (its images are noise, "
          f"by design)")
    return 0


def _write_prompts(a) -> int:
    import csv
    import io

    from .atomic import write_text

    rows = json.loads(a.classes)
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
    from .regenerate import main

    return main(a.run_dir, a.file)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="gendistill", description="generative dataset distillation tools")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample", help="generate one class's images")
    s.add_argument("--load", required=True, help="JSON: model source, revision, device, dtype, vae_dtype "
                   "(+ decoder, tiny_decoder)")
    s.add_argument("--cls", required=True, help="JSON: index, name, id, prompt, seed, n_generated")
    s.add_argument("--gen", required=True, help="JSON: resolution, steps, guidance_scale")
    s.add_argument("--out-size", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--runtime", default="{}", help="JSON: server, idle, server_timeout, batch_size, compile, "
                   "deterministic, max_retries (knobs that do not decide pixels)")
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
    s.add_argument("--classes", required=True, help="JSON list of class plans")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_write_prompts)
    s = sub.add_parser("sampler-stop", help="stop your sampler processes (kills one that does not answer)")
    s.set_defaults(fn=_stop)
    s = sub.add_parser("regenerate", help="regenerate one image from a run's manifest and check it matches")
    s.add_argument("run_dir", help="results/<run>")
    s.add_argument("file", help="the image's `file` column in dataset/manifest.csv, e.g. 003_cat/0001_0.png")
    s.set_defaults(fn=_regenerate)
    a = ap.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())

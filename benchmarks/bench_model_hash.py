"""What the plan pays to resolve a local model into the sample jobs' params (gendistill.model_files), on a model
directory laid out as SDXL-Turbo's plain files, scaled to --gib (random bytes in safetensors files whose headers
describe them).

Measured, each the median of --repeats:
* the content hash, first plan (every file read and hashed): with the files in the page cache, and with them
  evicted from it (posix_fadvise DONTNEED on each file: only this model's pages; the disk's read speed);
* the content hash, later plans (each file's hash from the cache file: a stat per file);
* the warm sampler's key (stat_stamp: a stat per file), which every sample job computes;
* for comparison, sizes and safetensors headers only: as cheap as a stat, but blind to other weights of the same
  architecture (two tiny models of different seeds: identical headers and sizes; printed).

    .venv/bin/python benchmarks/bench_model_hash.py                 # 2 GiB, 3 repeats
    .venv/bin/python benchmarks/bench_model_hash.py --gib 8 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, append_csv, git_commit

from gendistill.model_files import content_sha256, files, stat_stamp
from gendistill.weights import read_safetensors_header

# SDXL-Turbo's plain (float32) weight files, in GB, and its small files
SDXL_FILES = {
    "unet/diffusion_pytorch_model.safetensors": 10.27,
    "text_encoder_2/model.safetensors": 2.78,
    "text_encoder/model.safetensors": 0.49,
    "vae/diffusion_pytorch_model.safetensors": 0.33,
}
SMALL_FILES = [
    "model_index.json",
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "text_encoder_2/config.json",
    "scheduler/scheduler_config.json",
    "tokenizer/vocab.json",
    "tokenizer/merges.txt",
    "tokenizer/tokenizer_config.json",
    "tokenizer/special_tokens_map.json",
    "tokenizer_2/vocab.json",
    "tokenizer_2/merges.txt",
    "tokenizer_2/tokenizer_config.json",
    "tokenizer_2/special_tokens_map.json",
]
CHUNK = 16 * 2**20


def write_safetensors(path: Path, nbytes: int) -> None:
    """A safetensors file of one float32 tensor of random values, `nbytes` of data."""
    n = nbytes // 4
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        left = 4 * n
        while left:
            block = os.urandom(min(CHUNK, left))
            f.write(block)
            left -= len(block)
        f.flush()
        os.fsync(f.fileno())


def build(root: Path, gib: float) -> int:
    scale = gib * 2**30 / (sum(SDXL_FILES.values()) * 1e9)
    for name, gb in SDXL_FILES.items():
        write_safetensors(root / name, int(gb * 1e9 * scale))
    for name in SMALL_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps({"name": name, "pad": "x" * 2000}))
    return sum(os.stat(path).st_size for _, path in files(root))


def evict(root: Path) -> None:
    """Drop this model's pages from the page cache (no other file's), so the next read comes from the disk."""
    for _, path in files(root):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def headers_and_sizes(root: Path) -> list:
    out = []
    for name, path in files(root):
        size = os.stat(path).st_size
        out.append((name, size, read_safetensors_header(Path(path))[0] if name.endswith(".safetensors") else None))
    return out


def timed(fn, repeats: int, before=None) -> float:
    times = []
    for _ in range(repeats):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def tiny_headers_equal(tmp: Path) -> bool:
    """Two tiny models of one architecture, other seeds: are their UNet files' sizes and headers equal?"""
    from gendistill.generator.build import save_tiny_pipeline

    a, b = (Path(save_tiny_pipeline(tmp / f"tiny{s}", {"seed": s})) for s in (0, 1))
    unet = "unet/diffusion_pytorch_model.safetensors"
    same = headers_and_sizes(a / "unet") == headers_and_sizes(b / "unet")
    return same and (a / unet).read_bytes() != (b / unet).read_bytes()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=2.0, help="the model directory's size")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write it (default: a temporary directory)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-model-hash-", dir=a.dir))
    try:
        root = tmp / "model"
        t0 = time.perf_counter()
        total = build(root, a.gib)
        print(f"wrote {total / 2**30:.2f} GiB in {len(files(root))} files in {time.perf_counter() - t0:.0f}s")
        cache = tmp / "hashes.json"

        def first():
            cache.unlink(missing_ok=True)
            content_sha256(root, cache)

        warm = timed(first, a.repeats)
        cold = timed(first, a.repeats, before=lambda: evict(root))
        content_sha256(root, cache)
        cached = timed(lambda: content_sha256(root, cache), a.repeats)
        stamp = timed(lambda: stat_stamp(root), a.repeats)
        heads = timed(lambda: headers_and_sizes(root), a.repeats)
        blind = tiny_headers_equal(tmp)
        gib = total / 2**30
        rows = [
            ("content hash, first plan, files in the page cache", warm, f"{gib / warm:.2f} GiB/s"),
            ("content hash, first plan, files read from the disk", cold, f"{gib / cold:.2f} GiB/s"),
            ("content hash, later plans (from the cache file)", cached, ""),
            ("sampler key: stat stamp", stamp, ""),
            ("sizes + safetensors headers (not used)", heads, ""),
        ]
        for what, seconds, rate in rows:
            print(f"{what:55s} {seconds * 1000:10.1f} ms  {rate}")
        print(
            f"two tiny models of one architecture, other seeds: sizes and headers "
            f"{'identical' if blind else 'differ'} (their weights differ)"
        )
        append_csv(
            RESULTS / "model_hash.csv",
            [
                {
                    "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "git": git_commit(),
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                    "gib": round(gib, 3),
                    "files": len(files(root)),
                    "first_warm_s": round(warm, 3),
                    "first_cold_s": round(cold, 3),
                    "cached_ms": round(cached * 1000, 2),
                    "stat_stamp_ms": round(stamp * 1000, 2),
                    "headers_ms": round(heads * 1000, 2),
                    "tiny_headers_identical": blind,
                }
            ],
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A model directory's files, and what identifies them. Standard library only: the plan and every sample job
import this.

* `files`: every regular file under a directory, symlinked folders followed (a component folder such as `unet/`
  may be a link to another disk; `Path.rglob` does not descend into those on Python 3.11), each folder once.
* `stat_stamp`: changes when a file is added, removed, resized or touched, or (hub cache) linked to another blob;
  a warm sampler's key (sampling/runtime.py), checked by every job at the cost of a stat per file.
* `content_sha256`: a sha256 over each file's name and contents: what a sample job's params carry for a local
  model directory, so that replacing its weights plans every class again and touching or copying them plans
  none. Each file's hash is kept in a cache file keyed by the file's path, inode, size, mtime and ctime (the
  kernel sets ctime on every write and on every change of mtime, so a rewrite that restores size and mtime is
  still seen); only a file new to the cache, or changed, is read again (BENCHMARKS.md, section 10).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

CHUNK = 16 * 2**20  # read in chunks: a weight file may be larger than the process's memory


def files(directory: Path) -> list[tuple[str, str]]:
    """(name relative to `directory`, path) of every regular file under it, sorted by name. Symlinked folders are
    followed, a folder reached twice (a link to an ancestor, two links to one folder) is listed once."""
    out = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames.sort()
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                if stat.S_ISREG(os.stat(path).st_mode):  # follows a link (a hub snapshot's file -> its blob)
                    out.append((os.path.relpath(path, directory).replace(os.sep, "/"), path))
            except OSError:
                continue  # a dangling link
    return sorted(out)


def stat_stamp(directory: Path) -> str:
    """A hash of each file's name, size, mtime and (a link) target: see the module docstring."""
    stamps = []
    for name, path in files(directory):
        try:
            st = os.stat(path)
        except OSError:
            continue
        link = os.readlink(path) if os.path.islink(path) else None
        stamps.append((name, st.st_size, st.st_mtime_ns, link))
    return hashlib.sha256(json.dumps(stamps).encode()).hexdigest()


def identifies_weights(name: str) -> bool:
    """Files that decide a local model's pixels: all but hidden ones (`hf download --local-dir` keeps its download
    metadata in .cache/) and weight files of a variant (`*.fp16.safetensors`), which a local directory is never
    loaded with (sampling/pipeline.py asks for a variant only for a hub id)."""
    from .weights import WEIGHT_EXTS, variant_of

    if any(part.startswith(".") for part in name.split("/")):
        return False
    base = name.rsplit("/", 1)[-1]
    return not (base.endswith(WEIGHT_EXTS) and variant_of(base) is not None)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _read_cache(cache: Path | None) -> dict:
    if cache is None:
        return {}
    try:
        data = json.loads(Path(cache).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(cache: Path, data: dict) -> None:
    """Write the cache whole or not at all (best effort: a read-only results directory only costs the rehash)."""
    from .atomic import write_text

    try:
        write_text(Path(cache), json.dumps(data, sort_keys=True))
    except OSError:
        pass


def content_sha256(directory: Path, cache: Path | None = None) -> str:
    """sha256 over (name, sha256 of contents) of each file of `directory` that identifies its weights
    (identifies_weights), each file's hash taken from `cache` while its stat is the one recorded there."""
    known = _read_cache(cache)
    h = hashlib.sha256()
    changed = False
    for name, path in files(Path(directory)):
        if not identifies_weights(name):
            continue
        real = os.path.realpath(path)
        st = os.stat(real)
        entry = known.get(real)
        if isinstance(entry, list) and entry[:4] == _stat_key(st):
            sha = entry[4]
        else:
            sha = file_sha256(real)
            if _stat_key(os.stat(real)) == _stat_key(st):  # not written while it was read
                known[real] = [*_stat_key(st), sha]
                changed = True
        h.update(f"{name}\0{sha}\n".encode())
    if cache is not None and changed:
        _write_cache(cache, {p: e for p, e in known.items() if os.path.exists(p)})
    return h.hexdigest()

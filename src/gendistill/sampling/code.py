"""The code a sampler runs, as its key and its records name it.

* The job keys its sampler by every module of this package as it finds them on disk (`tree_files`: the sha256
  of each .py file, about 1 ms for the whole package), so an edit anywhere in the package, not only in
  sampling/, starts a new sampler.
* The sampler records the modules of this package it has imported when it answers, hashed from the bytes the
  interpreter compiled: it is started through BOOTSTRAP, which installs an import hook before the package is
  imported, and the hook compiles each module from the very bytes it hashed (never from a .pyc, whose check is
  by mtime to the second and size). So an edit made between the job's key and the sampler's import (the model
  loads, and imports, for seconds after start) cannot be recorded under the clean tree's hash: the sampler
  compares what it imported with the key's files and retires on a difference (server.py).
* `generation.server: false` (no sampler): the job replaces itself by the same command through BOOTSTRAP before it
  imports anything else (`exec_hooked`), so its modules too are compiled from the bytes hashed, and it compares
  them with the package's files as it found them when it started, as the sampler does.
* Both record as `code_hash` the hash of the package's files as the job found them (the key's code), every
  module imported having been checked against it, so the two modes' hashes compare; `code_files` lists the
  modules each imported (a sampler imports its server, a job its writer).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../gendistill
ROOT = PACKAGE_DIR.parent  # file names are relative to this: gendistill/sampling/server.py

# `python -c BOOTSTRAP gendistill <subcommand> ...`: the sampler process's entry point (its command line reads
# `gendistill sampler-serve ...` after the code). Standard library only: it runs before any module of the package.
BOOTSTRAP = """\
# gendistill: hash each module of the package as it is imported (gendistill/sampling/code.py)
import hashlib, importlib.machinery, sys
IMPORTED = {}
class Loader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname):
        data = self.get_data(self.path)
        IMPORTED[fullname] = (self.path, hashlib.sha256(data).hexdigest())
        return self.source_to_code(data, self.path)
class Finder:
    gendistill_imported = IMPORTED
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] != "gendistill":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            spec.loader = Loader(spec.loader.name, spec.loader.path)
        return spec
sys.meta_path.insert(0, Finder)
from gendistill.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _relative(path: str) -> str:
    """A module file's name in records: relative to the directory holding the package (absolute if outside)."""
    try:
        return Path(path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def tree_files(package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """{file: sha256} of every .py file of the package on disk."""
    out = {}
    root = str(package_dir.parent)
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                with open(path, "rb") as f:
                    out[os.path.relpath(path, root).replace(os.sep, "/")] = hashlib.sha256(f.read()).hexdigest()
    return out


def digest(files: dict[str, str]) -> str:
    """One hash for {file: sha256}: the code hash of keys and records."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]}\n".encode())
    return h.hexdigest()


def imported_files() -> dict[str, str] | None:
    """{file: sha256 of the bytes compiled} of every module of this package imported so far, as the BOOTSTRAP
    hook saw them; None in a process not started through it."""
    for finder in sys.meta_path:
        imported = getattr(finder, "gendistill_imported", None)
        if isinstance(imported, dict):
            return {_relative(path): sha for path, sha in list(imported.values())}
    return None


def imported_files_on_disk() -> dict[str, str]:
    """{file: sha256} of the modules of this package imported so far, read from disk now (no hook: in-process)."""
    out = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.partition(".")[0] == "gendistill" and path and path.endswith(".py"):
            try:
                with open(path, "rb") as f:
                    out[_relative(path)] = hashlib.sha256(f.read()).hexdigest()
            except OSError:
                out[_relative(path)] = "unreadable"
    return out


def hooked() -> bool:
    """This process was started through BOOTSTRAP: each module of the package is compiled from the bytes hashed."""
    return imported_files() is not None


def exec_hooked(argv: list[str]) -> None:
    """Replace this process (same pid, same parent, same open files) by `python -c BOOTSTRAP gendistill <argv>`, with
    this package first on its path: from here on every module of the package it imports is compiled from the bytes
    the hook hashed, never from a .pyc trusted by its source's size and mtime."""
    pythonpath = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + pythonpath if pythonpath else "")}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-c", BOOTSTRAP, "gendistill", *argv], env)


def differences(ran: dict[str, str], key_files: dict[str, str]) -> list[str]:
    """The files whose imported bytes are not the key's (edited between the job's key and the import)."""
    return sorted(name for name, sha in ran.items() if key_files.get(name) != sha)

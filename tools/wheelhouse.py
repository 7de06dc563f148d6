#!/usr/bin/env python
"""Wheelhouses for offline installs, and the lock they are built from.

    python tools/wheelhouse.py build [--python-version 3.12] [--platform manylinux_2_28_x86_64] [--extras report]
                                     [--sets full,no-torch] [--out DIR]
    python tools/wheelhouse.py lock            # rewrite constraints.txt from a fresh resolution

`build` collects every wheel the project needs for one Python version and platform (default: this interpreter
and this machine), at the exact versions of the lock (constraints.txt), into two sets:

    <out>/full/       the project's wheel, its dependencies, torch and torchvision: for a node without PyTorch
    <out>/no-torch/   the same without the PyTorch stack (--node-has: torch, torchvision, numpy, pillow) and
                      without what only the stack needs (CUDA libraries, triton, sympy...): for a node whose own
                      CUDA PyTorch, torchvision, numpy and pillow are used (a venv made with --system-site-packages)

Each set holds requirements.txt (the project with its extras and every pinned package of the set: `pip install
--no-index --find-links SET -r SET/requirements.txt`). The dependency closure is walked here, from each wheel's
own metadata with the target's environment markers, at the lock's versions (a version the lock does not admit is
an error, naming the fix); then pip itself resolves each set for the target with the index switched off (the
stack stood in for by empty wheels of the lock's versions, as the node's own packages), so a set that pip could
not install offline fails here, not on the node. Downloads go through pip (its cache, find-links and index
settings), one call per level of the dependency tree; a package published only as a source archive is built
into a wheel, which must then be pure Python when the target is another platform. Rerunning reuses the wheels
already in <out>/../.cache.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags, sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "constraints.txt"
PROJECT = "gendistill"
# The PyTorch stack a node brings with its own CUDA PyTorch: torchvision requires numpy and pillow.
NODE_HAS = ("torch", "torchvision", "numpy", "pillow")
# Never in a no-torch set, whatever --node-has says: a second torch (or its CUDA libraries) must not come along.
TORCH_PARTS = re.compile(r"^(torch|torchvision|triton|nvidia-.*|cuda-.*)$")
LOCK_EXTRAS = ("dev", "slurm", "demo", "report")
LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


def pip(*args: str, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """{normalised name: version} of the lock's `name==version` lines."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            pins[canonicalize_name(req.name)] = spec.version
    return pins


# ---- the target: Python version, platform tags, environment markers ------------------------------------------


def native_platform() -> str:
    """This machine's newest manylinux tag (e.g. manylinux_2_36_x86_64)."""
    for tag in sys_tags():
        if tag.platform.startswith("manylinux_"):
            return tag.platform
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def platform_tags(platform: str) -> list[str]:
    """pip matches --platform tags exactly: manylinux_2_N_ARCH and every older glibc it implies, with the legacy
    aliases (manylinux2014 = 2.17 ...)."""
    m = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
    if not m:
        return [platform]
    newest, arch = int(m.group(1)), m.group(2)
    tags = []
    for minor in range(newest, 4, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if (2, minor) in LEGACY_MANYLINUX:
            tags.append(f"{LEGACY_MANYLINUX[(2, minor)]}_{arch}")
    return tags


def target_markers(python_version: str, platform: str) -> dict:
    machine = re.sub(r"^(manylinux|musllinux)_\d+_\d+_|^manylinux\d+_", "", platform)
    return {
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "implementation_version": f"{python_version}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "platform_release": "",
        "platform_version": "",
    }


def target_tags(python_version: str, platforms: list[str]) -> set[Tag]:
    """The wheel tags a CPython of `python_version` on `platforms` installs (as pip computes them)."""
    version = tuple(int(x) for x in python_version.split("."))
    abi = "cp" + python_version.replace(".", "")
    return {
        *cpython_tags(version, abis=[abi], platforms=platforms),
        *compatible_tags(version, interpreter=abi, platforms=platforms),
    }


def wheel_fits(path: Path, python_version: str, platforms: list[str]) -> bool:
    return bool(parse_wheel_filename(path.name)[3] & target_tags(python_version, platforms))


# ---- downloads ----------------------------------------------------------------------------------------------


def find_wheel(cache: Path, name: str, version: str, python_version: str, platforms: list[str]) -> Path | None:
    for path in cache.glob("*.whl"):
        wname, wver, _, _ = parse_wheel_filename(path.name)
        if wname == name and wver == Version(version) and wheel_fits(path, python_version, platforms):
            return path
    return None


def fetch(pins: list[tuple[str, str]], cache: Path, python_version: str, platforms: list[str]) -> dict[str, Path]:
    """The target's wheel of each (name, version), downloaded into `cache` unless there already."""
    missing = [(n, v) for n, v in pins if not find_wheel(cache, n, v, python_version, platforms)]
    target = ["--python-version", python_version, "--implementation", "cp"]
    for p in platforms:
        target += ["--platform", p]
    if missing:
        args = ["download", "--no-deps", "--only-binary=:all:", *target, "-d", str(cache)]
        if pip(*args, *[f"{n}=={v}" for n, v in missing]).returncode != 0:
            for n, v in missing:  # one at a time: which one has no wheel for the target
                if pip(*args, f"{n}=={v}").returncode != 0:
                    build_wheel(n, v, cache, python_version, platforms)
    out = {}
    for n, v in pins:
        path = find_wheel(cache, n, v, python_version, platforms)
        if path is None:
            raise SystemExit(
                f"{n}=={v}: no wheel for Python {python_version} on {platforms[0]} (and none could be built)"
            )
        out[n] = path
    return out


def build_wheel(name: str, version: str, cache: Path, python_version: str, platforms: list[str]) -> None:
    """A package published only as a source archive: build its wheel (this interpreter)."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = pip("wheel", "--no-deps", "-w", tmp, f"{name}=={version}")
        if proc.returncode != 0:
            raise SystemExit(f"{name}=={version}: no wheel to download and the build failed:\n{proc.stderr[-3000:]}")
        (built,) = Path(tmp).glob("*.whl")
        if not wheel_fits(built, python_version, platforms):
            raise SystemExit(
                f"{name}=={version}: only a source archive is published, and it builds a platform wheel "
                f"({built.name}) that does not fit Python {python_version} on {platforms[0]}. Fix: build the "
                f"wheelhouse on a machine of that kind."
            )
        shutil.move(str(built), cache / built.name)


def build_project_wheel(cache: Path) -> Path:
    """The project's own wheel, built from a copy of its sources (building writes beside them)."""
    for old in cache.glob(f"{PROJECT}-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src-tree"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / name, src / name)
        shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        proc = pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(cache), str(src), cwd=tmp)
        if proc.returncode != 0:
            raise SystemExit(f"building the {PROJECT} wheel failed:\n{proc.stderr[-3000:]}")
    (wheel,) = cache.glob(f"{PROJECT}-*.whl")
    return wheel


def wheel_requirements(path: Path) -> list[Requirement]:
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        msg = Parser().parsestr(z.read(meta).decode())
    return [Requirement(r) for r in msg.get_all("Requires-Dist") or []]


# ---- the closure ----------------------------------------------------------------------------------------------


def closure(
    project_wheel: Path, extras: set[str], lock: dict[str, str], env: dict, fetch_level, stop: set[str]
) -> tuple[dict, dict]:
    """Walk the dependency tree from the project at the lock's versions, not into the names in `stop` (named as
    requirements, never fetched). Returns ({name: wheel path}, {name: set of names it requires})."""
    wheels = {PROJECT: project_wheel}
    wanted_extras = {PROJECT: set(extras)}
    edges: dict[str, set[str]] = {}
    todo = [PROJECT]
    while todo:
        level: dict[str, set[str]] = {}
        for parent in todo:
            edges.setdefault(parent, set())
            for req in wheel_requirements(wheels[parent]):
                if req.marker and not any(
                    req.marker.evaluate({**env, "extra": e}) for e in ({""} | wanted_extras[parent])
                ):
                    continue
                name = canonicalize_name(req.name)
                if name not in lock:
                    raise SystemExit(
                        f"{name} (required by {parent}: {req}) is not pinned in {LOCK.name}. Fix: `make lock`."
                    )
                if not req.specifier.contains(lock[name], prereleases=True):
                    raise SystemExit(
                        f"{LOCK.name} pins {name}=={lock[name]} but {parent} requires {req}. Fix: change the pin "
                        f"(or `make lock`)."
                    )
                edges[parent].add(name)
                if name in stop:
                    continue
                new_extras = set(req.extras) - wanted_extras.get(name, set())
                if name not in wheels or new_extras:
                    wanted_extras.setdefault(name, set()).update(req.extras)
                    level.setdefault(name, set())
        fetched = fetch_level([(n, lock[n]) for n in level if n not in wheels])
        wheels.update(fetched)
        todo = list(level)
    return wheels, edges


def reachable(edges: dict[str, set[str]], start: str, stop: set[str]) -> set[str]:
    """Names reachable from `start` without entering any name in `stop`."""
    seen, todo = {start}, [start]
    while todo:
        for child in edges.get(todo.pop(), ()):
            if child not in seen and child not in stop:
                seen.add(child)
                todo.append(child)
    return seen


def stand_in_wheel(directory: Path, name: str, version: str) -> None:
    """An empty wheel of `name==version`: the node's own package, for pip's resolution check of a set."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = directory / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(
            f"{dist}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: stand-in\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        z.writestr(f"{dist}.dist-info/RECORD", "")


def pip_resolves(set_dir: Path, stack: dict[str, str], python_version: str, platforms: list[str]) -> None:
    """pip, index off, resolves the set's requirements.txt for the target from the set alone (+ stand-ins)."""
    with tempfile.TemporaryDirectory() as tmp:
        links = ["--find-links", str(set_dir)]
        if stack:
            stand_ins = Path(tmp) / "node"
            stand_ins.mkdir()
            for name, version in stack.items():
                stand_in_wheel(stand_ins, name, version)
            links += ["--find-links", str(stand_ins)]
        target = ["--python-version", python_version, "--implementation", "cp", "--only-binary=:all:"]
        for p in platforms:
            target += ["--platform", p]
        proc = pip(
            "--isolated", "install", "--dry-run", "--ignore-installed", "--no-index", *links, *target,
            "--target", str(Path(tmp) / "site"), "--report", str(Path(tmp) / "report.json"),
            "-r", str(set_dir / "requirements.txt"),
        )  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"pip cannot resolve {set_dir} offline:\n{proc.stderr[-4000:]}")
        report = json.loads((Path(tmp) / "report.json").read_text())
    installed = {canonicalize_name(i["metadata"]["name"]) for i in report["install"]}
    listed = {canonicalize_name(p.name.split("-")[0]) for p in set_dir.glob("*.whl")}
    if installed - set(stack) != listed:
        raise SystemExit(f"{set_dir}: pip would install {sorted(installed - set(stack) ^ listed)} differently")


def write_set(out: Path, names: set[str], wheels: dict[str, Path], lock: dict[str, str], extras: set[str]) -> int:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    size = 0
    for name in sorted(names):
        src = wheels[name]
        try:
            os.link(src, out / src.name)
        except OSError:
            shutil.copy2(src, out / src.name)
        size += src.stat().st_size
    project = Version(parse_wheel_filename(wheels[PROJECT].name)[1].public)
    extra = f"[{','.join(sorted(extras))}]" if extras else ""
    lines = [f"{PROJECT}{extra}=={project}"] + [f"{n}=={lock[n]}" for n in sorted(names - {PROJECT})]
    (out / "requirements.txt").write_text("\n".join(lines) + "\n")
    return size


def build(a) -> int:
    python_version = a.python_version or f"{sys.version_info[0]}.{sys.version_info[1]}"
    platform = a.platform or native_platform()
    platforms = platform_tags(platform)
    extras = {e for e in re.split(r"[ ,]+", a.extras or "") if e}
    sets = {s for s in a.sets.split(",") if s}
    # NAME or NAME==VERSION (the node's version, when known: pip's check of the set uses it, else the lock's);
    # @FILE: one a line, # comments
    spec = a.node_has
    if spec.startswith("@"):
        spec = " ".join(line.split("#", 1)[0] for line in Path(spec[1:]).read_text().splitlines())
    node_versions = dict(n.partition("==")[::2] for n in re.split(r"[ ,]+", spec) if n)
    node_versions = {canonicalize_name(n): v for n, v in node_versions.items()}
    node_has = set(node_versions)
    out = Path(a.out or REPO / "wheelhouse" / "-".join([f"py{python_version}", *sorted(extras)])).resolve()
    cache = out.parent / ".cache" / f"py{python_version}-{platform}"  # shared by the folders of other extras
    cache.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    lock = read_lock(Path(a.lock))
    with (out / ".lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one build per folder at a time (parallel test workers)
        env = target_markers(python_version, platform)
        project = build_project_wheel(cache)
        # a no-torch set alone never fetches the stack (gigabytes of CUDA wheels) just to read its metadata
        stop = set() if "full" in sets else node_has
        get = lambda pins: fetch(pins, cache, python_version, platforms)  # noqa: E731
        wheels, edges = closure(project, extras, lock, env, get, stop)
        summary = {"python": python_version, "platform": platform, "extras": sorted(extras)}
        if "full" in sets:
            size = write_set(out / "full", set(wheels), wheels, lock, extras)
            pip_resolves(out / "full", {}, python_version, platforms)
            summary["full"] = {"wheels": len(wheels), "MiB": round(size / 2**20, 1)}
        if "no-torch" in sets:
            names = reachable(edges, PROJECT, node_has)
            leaked = sorted(n for n in names if TORCH_PARTS.match(n))
            if leaked:
                raise SystemExit(f"the no-torch set would carry {leaked}: add them to --node-has")
            size = write_set(out / "no-torch", names, wheels, lock, extras)
            required = {n for children in edges.values() for n in children}
            stack = {n: node_versions[n] or lock[n] for n in node_has & required}
            pip_resolves(out / "no-torch", stack, python_version, platforms)
            summary["no-torch"] = {"wheels": len(names), "MiB": round(size / 2**20, 1), "from the node": sorted(stack)}
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for name in ("full", "no-torch"):
        if name in summary:
            print(f"{out / name}: {summary[name]['wheels']} wheels, {summary[name]['MiB']} MiB")
    print(f"Python {python_version}, {platform}; extras: {', '.join(sorted(extras)) or 'none'}")
    return 0


# ---- the lock -------------------------------------------------------------------------------------------------


def lock(a) -> int:
    """Resolve the project with every extra afresh (the PyTorch stack held at the lock's versions: pyproject gives
    it ranges) and write constraints.txt: every distribution the resolution installs, name==version."""
    current = read_lock(Path(a.lock)) if Path(a.lock).exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        stack = Path(tmp) / "stack.txt"
        stack.write_text("".join(f"{n}=={current[n]}\n" for n in NODE_HAS if n in current))
        src = Path(tmp) / "src-tree"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / name, src / name)
        shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        report = Path(tmp) / "report.json"
        proc = pip(
            "install", "--dry-run", "--ignore-installed", "--report", str(report), "-c", str(stack),
            f"{src}[{','.join(LOCK_EXTRAS)}]", cwd=tmp,
        )  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"resolution failed:\n{proc.stderr[-4000:]}")
        installed = json.loads(report.read_text())["install"]
    pins = sorted(
        (canonicalize_name(i["metadata"]["name"]), i["metadata"]["version"])
        for i in installed
        if canonicalize_name(i["metadata"]["name"]) != PROJECT
    )
    header = (
        "# The lock: every distribution the project and its extras (dev, slurm, demo, report) install, at the exact\n"
        "# version every `make` install uses (pip -c constraints.txt) and every wheelhouse holds. pyproject.toml\n"
        "# pins the direct dependencies exactly, except the PyTorch stack (torch, torchvision, numpy, pillow), which\n"
        "# it gives ranges so that a node's own PyTorch installs; this file holds their tested versions.\n"
        f"# Written by `make lock` (tools/wheelhouse.py lock) on Python {sys.version_info[0]}.{sys.version_info[1]}, "
        f"{native_platform()}.\n"
    )
    Path(a.lock).write_text(header + "".join(f"{n}=={v}\n" for n, v in pins))
    print(f"{a.lock}: {len(pins)} pins")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the wheelhouse sets")
    b.add_argument("--python-version", default="", help="X.Y (default: this interpreter's)")
    b.add_argument("--platform", default="", help="newest manylinux tag of the target (default: this machine's)")
    b.add_argument("--extras", default="", help="the project's extras to include (e.g. 'report demo')")
    b.add_argument("--sets", default="full,no-torch", help="full, no-torch or both (comma list)")
    b.add_argument(
        "--node-has",
        default=" ".join(NODE_HAS),
        help="left out of the no-torch set, the node's own: NAME or NAME==VERSION (its version, when known), "
        "or @FILE (one a line)",
    )
    b.add_argument("--out", default="", help="default wheelhouse/py<X.Y>[-<extras>]")
    b.add_argument("--lock", default=str(LOCK))
    b.set_defaults(fn=build)
    k = sub.add_parser("lock", help="rewrite constraints.txt from a fresh resolution")
    k.add_argument("--lock", default=str(LOCK))
    k.set_defaults(fn=lock)
    a = ap.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    raise SystemExit(main())

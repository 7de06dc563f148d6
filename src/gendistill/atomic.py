"""Write files and directories so that an interrupted job never leaves something that looks finished.

Everything is written under a temporary name in the same directory (`.<name>.tmp-<pid>-<random>`) and renamed
into place at the end (rename is atomic on POSIX filesystems); a killed job leaves only such a hidden name,
which nothing reads, and the next write of the same path removes those whose process has ended.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from .processes import alive


def tmp_name(path: Path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")


def remove_stale_tmps(path: Path) -> list[Path]:
    """Remove temporaries of `path` left by processes that have ended (killed jobs); return them."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.tmp-(\d+)(-[0-9a-f]+)?$")
    removed = []
    if not path.parent.is_dir():
        return removed
    for p in path.parent.iterdir():
        m = pattern.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not alive(int(m.group(1))):
            _remove(p)
            removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path: Path, replace: bool = True, before_publish: Callable[[], None] | None = None):
    """Yield a temporary path (file or directory) that is renamed to `path` only if the block succeeds.

    replace=False: refuse to start when `path` exists, and never replace it (a directory given by mistake is
    not emptied). `before_publish` runs just before the rename; raising there publishes nothing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not replace and (path.exists() or path.is_symlink()):
        raise FileExistsError(
            f"{path} already exists; it is left as it is. Fix: remove it, or choose another output path."
        )
    remove_stale_tmps(path)
    tmp = tmp_name(path)
    try:
        yield tmp
        if before_publish:
            before_publish()
        if replace:
            if path.exists() or path.is_symlink():
                _remove(path)
            os.replace(tmp, path)
        else:
            if path.exists() or path.is_symlink():
                raise FileExistsError(f"{path} appeared while this job was writing it; it is left as it is.")
            os.rename(tmp, path)
    finally:
        _remove(tmp)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()

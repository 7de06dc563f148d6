"""Where a hub model lives in the local Hugging Face cache, found without importing huggingface_hub (the sample
job, which keys its sampler by the resolved snapshot, runs once per class and must stay light).

The cache layout (huggingface_hub's): <cache>/models--<org>--<name>/refs/<branch or tag> holds a commit hash;
snapshots/<commit>/ holds the files of that commit (symlinks into blobs/, named by content hash). `hf download`
of an updated model adds a snapshot and moves refs/main to it, so the same id can mean other weights tomorrow:
what decides the pixels is the snapshot, not the id.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

COMMIT = re.compile(r"[0-9a-f]{40}")


def hub_cache_dir() -> Path:
    """The hub cache directory, as huggingface_hub.constants.HF_HUB_CACHE computes it from the environment."""
    default_home = os.path.join(os.path.expanduser("~"), ".cache")
    home = os.getenv("HF_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", default_home), "huggingface"))
    home = os.path.expandvars(os.path.expanduser(home))
    cache = os.getenv("HF_HUB_CACHE", os.getenv("HUGGINGFACE_HUB_CACHE", os.path.join(home, "hub")))
    return Path(os.path.expandvars(os.path.expanduser(cache)))


def cached_snapshot(repo_id: str, revision: str | None = None) -> tuple[str, Path] | None:
    """(commit, snapshot directory) that `repo_id` at `revision` (a branch, tag or commit; default main) resolves
    to in the local cache, or None when it is not cached."""
    folder = hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    rev = revision or "main"
    if COMMIT.fullmatch(rev):
        commit = rev
    else:
        try:
            commit = (folder / "refs" / rev).read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
    snapshot = folder / "snapshots" / commit
    return (commit, snapshot) if COMMIT.fullmatch(commit) and snapshot.is_dir() else None

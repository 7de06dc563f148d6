"""The job's side of sampling: write a class's images as they arrive, publish them with one rename.

Only the job that owns an output directory writes it, so a job that has gone away never gets output written
for it. Images go into a hidden temporary directory beside the output, batch by batch (a class is never held
in memory whole); `publish` writes records.json and renames the directory into place, and only if the job's
lineage is intact (a job whose Snakemake was cancelled publishes nothing) and the output does not exist yet.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import ExitStack
from pathlib import Path

from ..atomic import atomic_path
from ..layout import RECORDS


class Orphaned(RuntimeError):
    """The job's Snakemake (or parent) ended: its output must not be published."""


class ClassWriter:
    def __init__(self, out: str | Path, n_expected: int, lineage=None):
        self.out, self.n_expected, self.lineage = Path(out), n_expected, lineage
        self.records: dict[int, dict] = {}
        self._stack = ExitStack()
        self.tmp: Path = self._stack.enter_context(
            atomic_path(self.out, replace=False, before_publish=self._check_owner)
        )
        self.tmp.mkdir()

    def _check_owner(self) -> None:
        why = self.lineage.broken() if self.lineage else None
        if why:
            raise Orphaned(f"not publishing {self.out}: {why}, so this job was cancelled")

    def add(self, indices: list[int], pngs: list[bytes], records: list[dict]) -> None:
        """Write one batch: image i's PNG file bytes and its record."""
        self._check_owner()
        for i, data, rec in zip(indices, pngs, records, strict=True):
            rec = {**rec, "file": f"{i:04d}.png", "sha256": hashlib.sha256(data).hexdigest()}
            (self.tmp / rec["file"]).write_bytes(data)
            self.records[i] = rec

    def publish(self, meta: dict) -> Path:
        missing = sorted(set(range(self.n_expected)) - set(self.records))
        if missing or len(self.records) != self.n_expected:
            raise RuntimeError(
                f"{self.out}: {len(self.records)} images received, expected {self.n_expected} "
                f"(missing {missing[:5]}); nothing published"
            )
        images = [self.records[i] for i in range(self.n_expected)]
        (self.tmp / RECORDS).write_text(json.dumps({"meta": meta, "images": images}, indent=1))
        self._stack.close()  # renames the directory into place (after the owner check)
        return self.out

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # on an error (or a publish that did not happen) the temporary directory is removed, nothing else
        self._stack.__exit__(exc_type or RuntimeError, exc or RuntimeError("not published"), tb)
        return False

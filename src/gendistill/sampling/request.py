"""The sample job's request file: what one class's job samples (the class with its prompt, the load spec with the
model path, the generation settings, the output size), written by the workflow when it plans the job and read by
the job. So none of it is on the process table: every user of the machine can read command lines (`ps`), and
Snakemake runs a job as `bash -c "<its command>"`, so whatever a rule puts into its command is public.

Private (0600, in a 0700 directory) and named by the hash of its content, so a file is never rewritten: a job
reads exactly what its Snakemake planned for it, even when a later parse of an edited config writes the class's
next request beside it. Stdlib only and small: every sample job imports it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

SAMPLE_FIELDS = ("cls", "load", "gen", "out_size")


class RequestFileError(ValueError):
    """A request file that is missing, unreadable or not what its name says."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def write_request(directory: str, name: str, request) -> str:
    """Write `request` (JSON) as <directory>/<name>-<hash of its content>.json, private, unless that file is
    already there; return its path."""
    data = json.dumps(request, sort_keys=True).encode()
    path = os.path.join(directory, f"{name}-{_digest(data)}.json")
    if os.path.isfile(path):
        return path
    os.makedirs(os.path.dirname(os.path.abspath(directory)), exist_ok=True)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)  # concurrent writers (a SLURM job's own parse) write the same bytes
    return path


def read_request(path: str) -> dict:
    """A request file written by write_request (its content is checked against the hash in its name), or '-' for
    one JSON object on stdin."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    except OSError as e:
        raise RequestFileError(f"the request file {path} cannot be read ({e.strerror or e})") from None
    stem = os.path.basename(path)[: -len(".json")] if path.endswith(".json") else ""
    named = stem.rsplit("-", 1)[-1] if "-" in stem else ""
    if len(named) == 16 and named != _digest(data):
        raise RequestFileError(
            f"the request file {path} does not hold what its name says (content hash {_digest(data)}): it was "
            f"changed or cut short. Fix: rerun; the workflow writes it again."
        )
    try:
        request = json.loads(data)
    except ValueError as e:
        raise RequestFileError(f"the request file {path} is not JSON ({e})") from None
    return request

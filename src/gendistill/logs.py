"""Send a job's stdout/stderr (prints, warnings, tracebacks) to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback


@contextlib.contextmanager
def log_to(path: str):
    with open(path, "w", buffering=1) as f:
        old = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = f
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield f
        except BaseException:
            traceback.print_exc(file=f)
            raise
        finally:
            root.removeHandler(handler)
            sys.stdout, sys.stderr = old

"""Training progress in a job's log: tqdm's counter, rate and ETA as about ten plain lines (no carriage-return bar).
Used by every training job: evaluations, the teacher, the recogniser."""

from __future__ import annotations

import io
import logging

from tqdm import tqdm

log = logging.getLogger("gendistill.evaluate")


class EpochProgress:
    def __init__(self, epochs: int, desc: str, lines: int = 10):
        self.bar = tqdm(
            total=epochs, desc=desc, unit="epoch", file=io.StringIO(), ascii=True, ncols=100, mininterval=0, miniters=1
        )
        self.every = max(1, epochs // lines)

    def __call__(self, epoch: int, epochs: int, loss: float):
        self.bar.update(epoch - self.bar.n)
        self.bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
        if epoch == epochs or epoch % self.every == 0:
            log.info("%s", self.bar)

    def close(self):
        self.bar.close()

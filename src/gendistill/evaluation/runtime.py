"""How an evaluation trains on its devices, beside what it computes (the recipe): how many processes share each
batch (DDP), mixed precision, the channels-last layout and torch.compile.

Several processes (evaluation.processes, launched by torchrun: gendistill/evaluate_torchrun.py) train one model
together with DistributedDataParallel: every process draws the same permutation and augmentation from the run's
seeded generator, builds the same global batch, and trains on its contiguous share of it (sizes differing by at
most one image); DDP averages the gradients and each share's loss is weighted by its size, so a step's gradient is
the gradient of the global batch's mean loss, as with one process. The global batch, the learning rate and the
seeds mean what they mean with one process; only the order of float sums differs (and batch norm's statistics on
the CPU, where torch has no SyncBatchNorm). Where the processes are on GPUs, batch norm is synchronised over the
global batch.

amp (evaluation.amp): off, bf16 or fp16 autocast of the forward passes (the student's and the teacher's); fp16
with a gradient scaler. auto = bf16 where the GPU supports it, off on the CPU. channels_last: the networks and
their input batches in NHWC (faster convolutions on tensor cores); auto = on a GPU. compile: torch.compile of the
student's training forward.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass

import torch

AMP = ("auto", "bf16", "fp16", "off")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    """The resolved runtime of one training process (`rank` of `world_size`)."""

    device: str = "cpu"
    amp: str = "off"  # off, bf16, fp16 (resolved: never auto)
    channels_last: bool = False
    compile: bool = False
    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        """The forward passes' autocast context (a no-op with amp off)."""
        if self.amp == "off":
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(self.device).type, dtype=AMP_DTYPES[self.amp])

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x

    def share(self, n: int) -> slice:
        """This process's contiguous share of a global batch of `n` (the first n % world_size shares one larger)."""
        return share_of(n, self.rank, self.world_size)

    def record(self) -> dict:
        """What a result records about how it was trained (none of it decides the accuracy but amp)."""
        out = asdict(self)
        out.pop("rank")
        return out


def share_of(n: int, rank: int, world_size: int) -> slice:
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def resolve_amp(setting: str, device: str) -> str:
    """evaluation.amp on `device`: auto = bf16 on a GPU that supports it, else off; fp16 on the CPU is refused."""
    kind = torch.device(device).type
    if setting not in AMP:
        raise ValueError(f"evaluation.amp: {setting!r}; use one of {', '.join(AMP)}")
    if setting == "auto":
        return "bf16" if kind == "cuda" and torch.cuda.is_bf16_supported() else "off"
    if setting == "fp16" and kind != "cuda":
        raise ValueError(
            f"evaluation.amp: fp16 on {device}: torch has no fast float16 kernels on the CPU (and no gradient scaler "
            "there). Fix: amp: bf16 or off (auto: off on the CPU), or train on a GPU (evaluation.device: cuda)."
        )
    return setting


def resolve_channels_last(setting, device: str) -> bool:
    return torch.device(device).type == "cuda" if setting == "auto" else bool(setting)


def from_settings(settings: dict | None, device: str, rank: int = 0, world_size: int = 1) -> Runtime:
    """A Runtime from the job's runtime settings (evaluation.amp, channels_last, compile; evaluation/runs.py
    runtime_settings), resolved for `device`."""
    s = settings or {}
    return Runtime(
        device=device,
        amp=resolve_amp(s.get("amp", "auto"), device),
        channels_last=resolve_channels_last(s.get("channels_last", "auto"), device),
        compile=bool(s.get("compile", False)),
        rank=rank,
        world_size=world_size,
    )


# ---- the process group (the processes torchrun started; one process: none of this runs)


def process_group_from_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them; (0, 1, 0) in a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def init_process_group(device: str) -> None:
    """Join torchrun's process group: NCCL between GPUs, gloo on the CPU."""
    import torch.distributed as dist

    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)


def all_sum(value: torch.Tensor, rt: Runtime) -> torch.Tensor:
    """The sum of `value` over the processes (itself with one process)."""
    if not rt.distributed:
        return value
    import torch.distributed as dist

    out = value.clone()
    dist.all_reduce(out)
    return out


def gather_shares(part: torch.Tensor, n: int, rt: Runtime) -> torch.Tensor:
    """Every process's share of a batch of `n` rows (share_of), concatenated in rank order on every process."""
    if not rt.distributed:
        return part
    import torch.distributed as dist

    sizes = [share_of(n, r, rt.world_size) for r in range(rt.world_size)]
    width = max(s.stop - s.start for s in sizes)
    pad = torch.zeros((width - len(part), *part.shape[1:]), dtype=part.dtype, device=part.device)
    padded = torch.cat([part, pad])
    pieces = [torch.empty_like(padded) for _ in range(rt.world_size)]
    dist.all_gather(pieces, padded)
    return torch.cat([p[: s.stop - s.start] for p, s in zip(pieces, sizes)])

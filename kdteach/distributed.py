"""Distillation on several processes, with PyTorch's own engine: ``torchrun`` and DDP.

``torchrun`` starts one process per device (``--nproc_per_node``) on each machine
(``--nnodes``), and tells each its place through environment variables (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). This module only reads
them; it starts no process and builds no process group of its own:

* :func:`process_group` joins the job (``gloo`` on the CPU, ``nccl`` on CUDA) and leaves
  it on the way out, whether the block ends normally or raises;
* :func:`sharded_loader` gives each rank its disjoint share of every global batch, drawn
  from the same seeded global order (:class:`kdteach.data.DeviceLoader` with ``rank`` and
  ``world_size``), with the examples' *global* indices;
* :func:`wrap_student` wraps the student in ``DistributedDataParallel`` and
  :func:`frozen_teacher` readies the teacher, which is **not** wrapped (see there why);
* the training itself is :func:`kdteach.train.distill`, the course's one loop, unchanged:
  DDP all-reduces the gradients inside ``backward()``, and ``run_epochs`` adds up the
  ranks' epoch records once per epoch, so the printed history is the whole job's.

Why N ranks with batch ``B / N`` compute the update of one process with batch ``B``: the
loss each rank computes is a **mean over its own share** (``kd_loss`` and cross-entropy
average over the rows of the batch), the shares are equal (``B / N`` examples each), and
DDP *averages* the ranks' gradients. The average of N equal-sized means is the mean over
the union, so the averaged gradient is the gradient of the global batch's mean loss, and
the same optimiser (Adam, fused or not) applied on every rank to the same averaged
gradient gives every rank the same update — the one process's. Only the order of the
floating-point additions differs (a per-rank sum, then an all-reduce, instead of one sum),
so parameters agree to float32 rounding, not bit for bit (``tests/distributed`` checks
1e-5 after 18 Adam steps; what it measures is far smaller).

Only rank 0 writes (results, checkpoints) and draws the progress bar: :func:`is_main`.

Launch (see the README, "Distillation on several processes")::

    torchrun --standalone --nproc_per_node=2 -m kdteach.experiments.distill_ddp
"""
from __future__ import annotations

import contextlib
import datetime
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .data import DeviceLoader, Split

#: The environment variables torchrun sets for each process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

#: How long a collective may wait for a missing rank before it fails (instead of hanging).
DEFAULT_TIMEOUT = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class Context:
    """This process's place in the job: its rank among ``world_size``, its rank on this
    machine (``local_rank``, which picks its GPU), its device and the backend in use."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (its variables are all set)."""
    return all(v in os.environ for v in TORCHRUN_VARIABLES)


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"the environment variable {name}={value!r} set by torchrun is not an "
                         "int; start the job with torchrun, not by setting it yourself.") from None


@contextlib.contextmanager
def process_group(device=None, *, timeout: datetime.timedelta = DEFAULT_TIMEOUT):
    """``with process_group() as ctx:`` joins the job torchrun started; yields a :class:`Context`.

    The device is ``cuda:LOCAL_RANK`` with the ``nccl`` backend when CUDA is available (or
    ``device="cuda"`` is asked for), else the CPU with ``gloo``; ``device="cpu"`` forces the
    CPU. On the way out — normal end or exception — the process group is destroyed, so no
    rank leaves the job's sockets or NCCL communicators behind; an exception still
    propagates, the process exits non-zero, and torchrun stops the other ranks and reports
    the failure.
    """
    if not launched_by_torchrun():
        missing = [v for v in TORCHRUN_VARIABLES if v not in os.environ]
        raise RuntimeError(
            f"not started by torchrun ({', '.join(missing)} unset). Launch the script with "
            "`torchrun --standalone --nproc_per_node=2 -m <module>` (one machine) or with "
            "--nnodes, --node-rank, --rdzv-backend=c10d and --rdzv-endpoint (several).")
    if dist.is_initialized():
        raise RuntimeError("a process group is already initialised in this process; "
                           "enter process_group() once per process.")
    rank, world, local = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    wanted = torch.device(device) if device is not None else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    if wanted.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' but CUDA is not available here; use device='cpu'.")
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local} but this machine has "
                             f"{torch.cuda.device_count()} GPU(s); start at most that many "
                             "processes per node (--nproc_per_node).")
        device, backend = torch.device("cuda", local), "nccl"
        torch.cuda.set_device(device)
    elif wanted.type == "cpu":
        device, backend = torch.device("cpu"), "gloo"
    else:
        raise ValueError(f"device={str(wanted)!r} is not supported for distributed training; "
                         "use 'cpu' (gloo) or 'cuda' (nccl).")
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
    try:
        yield Context(rank, world, local, device, backend)
    finally:
        # A DistributedDataParallel wrapper sits in a reference cycle, so it can outlive the
        # code that used it; left to the interpreter's exit, its reducer is torn down after
        # the group below and the process can abort ("terminate called without an active
        # exception") although the job succeeded. Collect it while the group still exists.
        gc.collect()
        dist.destroy_process_group()


def is_main() -> bool:
    """Whether this process is rank 0 (or runs alone, without a process group)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier(ctx: Context) -> None:
    """Wait until every rank gets here (e.g. until rank 0 has trained the teacher)."""
    if ctx.backend == "nccl":
        dist.barrier(device_ids=[ctx.device.index])
    else:
        dist.barrier()


def per_rank_batch(batch_size: int, ctx: Context) -> int:
    """The share of a global batch of ``batch_size`` each rank draws: ``batch_size /
    world_size``, which must be whole (unequal shares would weight examples unequally)."""
    if batch_size % ctx.world_size:
        raise ValueError(f"batch_size={batch_size} (the global batch) is not divisible by the "
                         f"{ctx.world_size} processes; pick a multiple of {ctx.world_size}.")
    return batch_size // ctx.world_size


def sharded_loader(data: Split, ctx: Context, *, batch_size: int, seed: int = 0,
                   jitter: int = 0) -> DeviceLoader:
    """This rank's loader: global batches of ``batch_size`` examples in the order one process
    would draw them (same ``seed``), of which this rank takes its ``batch_size / world_size``.
    Every rank holds the whole set on its device; the indices it yields are global."""
    return DeviceLoader(data, per_rank_batch(batch_size, ctx), seed=seed, jitter=jitter,
                        device=ctx.device, rank=ctx.rank, world_size=ctx.world_size)


def frozen_teacher(teacher: nn.Module, ctx: Context) -> nn.Module:
    """The teacher on this rank's device, in ``eval()``, its parameters frozen.

    The teacher is **not** wrapped in ``DistributedDataParallel``, on purpose. DDP exists to
    keep replicas in step by all-reducing their gradients in ``backward()``; a frozen
    teacher has none (it runs under ``no_grad``), so wrapping it would all-reduce nothing
    useful — and DDP refuses a module none of whose parameters require a gradient
    ("DistributedDataParallel is not needed when a module doesn't have any parameter that
    requires a gradient", the error learners meet, e.g. torchdistill issue #122). Its
    weights are the same on every rank already: each rank loads the same cached file.
    Every rank runs (or looks up) the teacher on its own share of the batch.
    """
    teacher = teacher.to(ctx.device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def wrap_student(student: nn.Module, ctx: Context) -> DistributedDataParallel:
    """The student on this rank's device, wrapped in ``DistributedDataParallel``.

    DDP broadcasts rank 0's weights to every rank when it wraps the model (so all ranks
    start equal even if their initialisations differed) and all-reduces (averages) the
    gradients during ``backward()``. Pass the wrapper to :func:`kdteach.train.distill`;
    save ``wrapper.module`` (the plain student) from rank 0.
    """
    student = student.to(ctx.device)
    if ctx.device.type == "cuda":
        return DistributedDataParallel(student, device_ids=[ctx.device.index])
    return DistributedDataParallel(student)

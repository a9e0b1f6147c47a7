"""What each rank of the test jobs runs, under ``python -m torch.distributed.run`` (torchrun).

    torchrun --standalone --nproc-per-node=2 tests/distributed/ddp_worker.py train OUT_DIR
    torchrun --standalone --nproc-per-node=2 tests/distributed/ddp_worker.py fail OUT_DIR

``train``: the tiny distillation of :func:`setup` through ``train.distill`` with the student
in DDP and a sharded loader, and the teacher's top-k outputs written to a cache, one shard
per rank; rank 0 saves the student's weights and the history to ``OUT_DIR/result.pt``.
``fail``: rank 1 raises before the first collective while rank 0 waits in one.

The test process imports :func:`setup` and :data:`RUN` to train the one-process reference.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from kdteach import config, distributed, models, teacher_cache, train
from kdteach.data import Split
from kdteach.files import atomic_write

#: Global batch 16, three epochs of 96 examples (18 steps), Hinton's loss at T = 4.
GLOBAL_BATCH = 16
RUN = dict(T=4.0, alpha=0.5, epochs=3, lr=1e-2, seed=0, schedule="cosine", progress=False)
TOPK = 3


def setup():
    """The data, the teacher and the student's initial weights, the same on every rank."""
    g = torch.Generator().manual_seed(1234)
    split = Split(torch.randn(96, 1, 6, 6, generator=g), torch.randint(0, 10, (96,), generator=g))
    config.seed_everything(7)
    teacher = models.MLP((36, 32, 10))
    config.seed_everything(8)
    student = models.MLP((36, 12, 10))
    return split, teacher, student


def train_job(out: Path) -> None:
    with distributed.process_group("cpu") as ctx:
        split, teacher, student = setup()
        teacher = distributed.frozen_teacher(teacher, ctx)
        teacher_cache.write_shard(teacher, split, out, "teacher", kind="topk", k=TOPK,
                                  rank=ctx.rank, world_size=ctx.world_size, batch_size=7)
        loader = distributed.sharded_loader(split, ctx, batch_size=GLOBAL_BATCH, seed=RUN["seed"])
        ddp = distributed.wrap_student(student, ctx)
        history = train.distill(ddp, teacher, loader, **RUN)
        if ctx.is_main:
            state = {k: v.detach().clone() for k, v in ddp.module.state_dict().items()}
            with atomic_write(out / "result.pt", "wb") as f:
                torch.save({"state": state, "history": history.records,
                            "world_size": ctx.world_size}, f)


def fail_job(out: Path) -> None:
    with distributed.process_group("cpu") as ctx:
        if ctx.rank == 1:
            raise ValueError("rank 1 stops here on purpose (the failure test)")
        distributed.barrier(ctx)  # waits for rank 1, which never comes


@record  # torchrun's failure summary then shows the raising rank's traceback
def main(mode: str, out: str) -> None:
    torch.set_num_threads(1)
    {"train": train_job, "fail": fail_job}[mode](Path(out))


if __name__ == "__main__":
    main(*sys.argv[1:3])

"""Hinton distillation of the MNIST student on several processes: torchrun + DDP.

    torchrun --standalone --nproc_per_node=2 -m kdteach.experiments.distill_ddp
    torchrun --standalone --nproc_per_node=2 -m kdteach.experiments.distill_ddp --smoke

Several machines (run the same command on each, ``--node-rank`` 0 on the first)::

    torchrun --nnodes=2 --node-rank=0 --nproc-per-node=1 --rdzv-backend=c10d \\
        --rdzv-endpoint=HOST:29500 -m kdteach.experiments.distill_ddp

Each process (a *rank*) holds the whole training set and the frozen teacher, draws its
share of every global batch (``--batch-size`` is the global batch, split evenly), and
trains its replica of the student, wrapped in ``DistributedDataParallel``, through
:func:`kdteach.train.distill` — the course's one loop. The teacher is the course's cached
MNIST teacher (:func:`kdteach.zoo.mnist_teacher`): rank 0 loads it (or trains and caches
it) first, the others then load the cached file. Rank 0 prints the per-epoch history of
the whole job and the test errors, and alone writes ``--out`` (a JSON results file) and
``--checkpoint`` (the student's weights). ``gloo`` on the CPU, ``nccl`` on CUDA.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from .. import config, data, distributed, models, results, train, zoo
from ..files import atomic_write

#: Tiny sizes for a smoke test: seconds on a CPU (not meant to reach the paper's numbers).
SMOKE = config.Profile("smoke", train_size=512, test_size=500, teacher_epochs=1,
                       student_epochs=1, batch_size=64, seeds=1)


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="torchrun --standalone --nproc_per_node=2 -m kdteach.experiments.distill_ddp",
        description="Distil the MNIST student from the cached teacher on several processes.")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs (default: the profile's student epochs)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="the GLOBAL batch, split evenly over the ranks (default: the profile's)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--T", type=float, default=20.0, help="temperature (Hinton et al.: 20)")
    parser.add_argument("--alpha", type=float, default=0.1, help="weight of the hard labels")
    parser.add_argument("--seed", type=int, default=None, help="default: KDTEACH_SEED, else 0")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="default: CUDA (nccl) if available, else the CPU (gloo)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and a one-epoch teacher: a check of the code path")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    parser.add_argument("--checkpoint", default=None, help="save the student's weights here")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, ctx: distributed.Context, log=print) -> dict:
    """Train on this rank; return the results (the same dict on every rank)."""
    teacher_profile = SMOKE if args.smoke else config.profile()  # names the cached teacher
    changes = {k: v for k, v in (("train_size", args.train_size), ("test_size", args.test_size),
                                 ("batch_size", args.batch_size)) if v is not None}
    profile = dataclasses.replace(teacher_profile, **changes)  # the student's sizes
    epochs = args.epochs or profile.student_epochs
    seed = config.base_seed() if args.seed is None else args.seed
    say = log if ctx.is_main else (lambda *a, **k: None)

    # Rank 0 first: a missing teacher is trained (and cached) once, not once per rank.
    if ctx.is_main:
        teacher = zoo.mnist_teacher(profile=teacher_profile)
    distributed.barrier(ctx)
    if not ctx.is_main:
        teacher = zoo.mnist_teacher(profile=teacher_profile)
    teacher = distributed.frozen_teacher(teacher, ctx)

    train_set = data.load("mnist", True, n=profile.train_size, seed=0)
    test_set = data.load("mnist", False, n=profile.test_size, seed=0)
    loader = distributed.sharded_loader(train_set, ctx, batch_size=profile.batch_size, seed=seed)
    config.seed_everything(seed)
    student = distributed.wrap_student(models.hinton_student(), ctx)
    say(f"{ctx.world_size} process(es), backend {ctx.backend}, {len(train_set):,} training "
        f"images, global batch {profile.batch_size} = {ctx.world_size} x {loader.batch_size}, "
        f"{epochs} epoch(s), T={args.T:g}, alpha={args.alpha:g}, seed {seed}")

    def test_errors() -> dict:  # rank 0 only: the plain student, no collective inside
        if not ctx.is_main:
            return {}
        return {"test_errors": train.evaluate(student.module, test_set, device=ctx.device).errors}

    start = time.perf_counter()
    history = train.distill(student, teacher, loader, T=args.T, alpha=args.alpha,
                            epochs=epochs, lr=args.lr, seed=seed, eval_data=test_errors,
                            progress=None if ctx.is_main else False)
    seconds = time.perf_counter() - start
    for row in history.records:
        say(f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.4f}  train acc "
            f"{row['train_acc']:.4f}  test errors {row.get('test_errors', '-')}  "
            f"{row['seconds']:.1f} s")
    res = {"world_size": ctx.world_size, "backend": ctx.backend, "device": str(ctx.device),
           "global_batch": profile.batch_size, "per_rank_batch": loader.batch_size,
           "epochs": epochs, "T": args.T, "alpha": args.alpha, "lr": args.lr, "seed": seed,
           "train_size": len(train_set), "test_size": len(test_set),
           "profile": profile.name, "history": history.records, "seconds": seconds}
    if ctx.is_main:
        res["teacher_errors"] = train.evaluate(teacher, test_set, device=ctx.device).errors
        res["student_errors"] = train.evaluate(student.module, test_set, device=ctx.device).errors
        say(f"test errors of {len(test_set):,}: teacher {res['teacher_errors']}, distilled "
            f"student {res['student_errors']}  ({seconds:.1f} s of training)")
        if args.out:
            path = results.write_json(Path(args.out), {"environment": results.provenance(),
                                                       "results": res}, sort_keys=True)
            say(f"wrote {path}")
        if args.checkpoint:
            state = {k: v.detach().cpu() for k, v in student.module.state_dict().items()}
            with atomic_write(args.checkpoint, "wb", fsync=True) as f:
                torch.save(state, f)
            say(f"wrote {args.checkpoint}")
    return res


@record  # torchrun then shows this rank's traceback in its failure summary
def main(argv=None) -> dict:
    args = parse(argv)
    with distributed.process_group(args.device) as ctx:
        return run(args, ctx)


if __name__ == "__main__":
    main()

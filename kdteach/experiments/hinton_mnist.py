"""Hinton, Vinyals & Dean (2015), section 3, at full scale: MNIST, one GPU, a few minutes.

    python -m kdteach.experiments.hinton_mnist                  # full recipe on the GPU
    python -m kdteach.experiments.hinton_mnist --profile quick --device cpu --out NAME
    python -m kdteach.experiments.hinton_mnist --smoke          # seconds; a temporary folder

Trains three networks on all 60,000 MNIST training images and counts their errors on the
10,000 test images, beside the paper's numbers:

=====================================================  =====================
model                                                  paper (test errors)
=====================================================  =====================
teacher 784-1200-1200-10, dropout + ±2-pixel jitter    67
student 784-800-800-10 from scratch, no regularisation 146
the same student distilled at T = 20                   74
=====================================================  =====================

The recipe (our choices where the paper gives none — it does not state optimiser, epochs
or schedule; the teacher's regularisers follow Srivastava et al. 2014, "Dropout", JMLR):

* **teacher** — :func:`kdteach.models.hinton_teacher` (dropout 0.2 on the input, 0.5 after
  each hidden layer), every image shifted by up to ±2 pixels at random each epoch (on the
  device), a max-norm constraint on the incoming weight vector of every hidden unit
  (‖w‖₂ ≤ 3.5, enforced by projection after each step, Srivastava et al. section 5.1),
  Adam with a cosine learning-rate schedule annealed to 0, and many epochs — dropout
  and jitter make each epoch a different, harder task, so the teacher needs far longer
  than the students;
* **student from scratch** — :func:`kdteach.models.hinton_student`, hard labels only, no
  dropout, no jitter, no weight decay, Adam with the same cosine schedule;
* **distilled student** — the same architecture and initialisation (same seed),
  :func:`kdteach.train.distill` with Hinton's loss at T = 20 and a small weight on the
  hard labels (α = 0.1: the paper found a "considerably lower weight" on them best), on
  the un-jittered training images (so the teacher's outputs are computed once and reused).

It prints the table and writes ``notebooks/results/<--out>.json`` through
:func:`kdteach.results.write` (errors, paper numbers, per-epoch test errors, seeds, epochs,
the recipe, per-model and total wall time; device, torch version and commit come from
:func:`kdteach.results.provenance`). Notebook 03 reads ``teacher_errors``,
``student_errors`` and ``distilled_errors``. ``hinton_mnist_full`` is written only by a
full-profile run on CUDA; a CPU or quick run writes nothing unless ``--out`` names a file.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import tempfile
import time
from dataclasses import dataclass

import torch
from torch import nn

from .. import config, data, models, results, train

PAPER = {"teacher_errors": 67, "student_errors": 146, "distilled_errors": 74}
#: What a full run on one GPU should reach: (at least, at most) test errors.
TARGETS = {"teacher_errors": (None, 75), "student_errors": (120, 160),
           "distilled_errors": (None, 85)}
FULL_NAME = "hinton_mnist_full"


@dataclass(frozen=True)
class Recipe:
    """Every setting of one run (all of it goes into the results file)."""

    train_size: int | None  # None: all 60,000 training images
    test_size: int | None  # None: all 10,000 test images
    teacher_epochs: int
    student_epochs: int
    distilled_epochs: int
    batch_size: int = 128
    teacher_lr: float = 1e-3
    student_lr: float = 1e-3
    jitter: int = 2
    max_norm: float | None = 3.5
    T: float = 20.0
    alpha: float = 0.1
    schedule: str = "cosine"


RECIPES = {
    # One H100: about 0.2-0.3 s per teacher epoch, so well under the 5-minute budget.
    "full": Recipe(train_size=None, test_size=None, teacher_epochs=300, student_epochs=60,
                   distilled_epochs=60),
    # A CPU check of the code path at the quick profile's sizes (not the paper's numbers).
    "quick": Recipe(train_size=config.QUICK.train_size, test_size=config.QUICK.test_size,
                    teacher_epochs=config.QUICK.teacher_epochs,
                    student_epochs=config.QUICK.student_epochs,
                    distilled_epochs=config.QUICK.student_epochs),
    # The test: tiny sizes, one epoch each, seconds on a CPU.
    "smoke": Recipe(train_size=500, test_size=500, teacher_epochs=1, student_epochs=1,
                    distilled_epochs=1),
}


@contextlib.contextmanager
def max_norm(model: nn.Module, limit: float | None):
    """Within the block, keep every hidden unit's incoming weights at L2 norm ≤ ``limit``.

    The constraint of Srivastava et al. (2014, section 5.1): after each update, a weight
    vector longer than ``limit`` is scaled back onto the ball. Implemented as a forward
    pre-hook (so it needs no change to the training loop): before every training-mode
    forward pass — i.e. after the previous optimiser step — rows of each hidden ``Linear``
    weight are renormalised in place; once more on leaving, for the last step. The output
    layer (``out``) is left free. ``limit=None`` (or 0) does nothing.
    """
    if not limit:
        yield model
        return
    hidden = [m for name, m in model.named_modules()
              if isinstance(m, nn.Linear) and name.split(".")[-1] != "out"]

    @torch.no_grad()
    def project(*_):
        for layer in hidden:
            layer.weight.renorm_(2, 0, limit)

    def pre_hook(module, args):
        if module.training:
            project()

    handle = model.register_forward_pre_hook(pre_hook)
    try:
        yield model
    finally:
        handle.remove()
        project()


def _errors_per_epoch(history: train.History, n_test: int) -> list[int]:
    return [round((1 - acc) * n_test) for acc in history["eval_acc"]]


def run(recipe: Recipe, *, device=None, seed: int = 0, log=print) -> dict:
    """Train the teacher, the scratch student and the distilled student; return the results."""
    device = torch.device(device) if device is not None else config.device()
    train_set = data.load("mnist", True, n=recipe.train_size, seed=seed, device=device)
    test_set = data.load("mnist", False, n=recipe.test_size, seed=seed, device=device)
    n_test = len(test_set)
    common = {"batch_size": recipe.batch_size, "schedule": recipe.schedule, "device": device,
              "eval_data": test_set, "seed": seed}
    wall, curves, errors = {}, {}, {}

    def report(key: str, model: nn.Module, history: train.History, seconds: float) -> None:
        errors[key] = train.evaluate(model, test_set, device=device).errors
        curves[key] = _errors_per_epoch(history, n_test)
        wall[key] = seconds
        log(f"  {key.replace('_errors', ''):9s} {errors[key]:5d} test errors of {n_test:,} "
            f"(paper {PAPER[key]}) in {seconds:.1f} s")

    log(f"Hinton et al. 2015 on MNIST: {len(train_set):,} training / {n_test:,} test images "
        f"on {device}")
    config.seed_everything(seed)
    teacher = models.hinton_teacher().to(device)
    start = time.perf_counter()
    with max_norm(teacher, recipe.max_norm):
        history = train.fit(teacher, train_set, epochs=recipe.teacher_epochs,
                            lr=recipe.teacher_lr, jitter=recipe.jitter, **common)
    teacher.eval()
    report("teacher_errors", teacher, history, time.perf_counter() - start)

    student_seed = seed + 1
    config.seed_everything(student_seed)
    student = models.hinton_student().to(device)
    start = time.perf_counter()
    history = train.fit(student, train_set, epochs=recipe.student_epochs,
                        lr=recipe.student_lr, **common)
    report("student_errors", student, history, time.perf_counter() - start)

    config.seed_everything(student_seed)  # the same initial weights as the scratch student
    distilled = models.hinton_student().to(device)
    start = time.perf_counter()
    history = train.distill(distilled, teacher, train_set, T=recipe.T, alpha=recipe.alpha,
                            epochs=recipe.distilled_epochs, lr=recipe.student_lr, **common)
    report("distilled_errors", distilled, history, time.perf_counter() - start)

    return {
        **errors,
        "paper": dict(PAPER),
        "targets": {k: list(v) for k, v in TARGETS.items()},
        "test_size": n_test,
        "train_size": len(train_set),
        "seeds": {"teacher": seed, "student": student_seed, "distilled": student_seed,
                  "data": seed},
        "epochs": {"teacher": recipe.teacher_epochs, "student": recipe.student_epochs,
                   "distilled": recipe.distilled_epochs},
        "recipe": dataclasses.asdict(recipe),
        "test_errors_per_epoch": curves,
        "wall_seconds_per_model": wall,
        "device": str(device),
        "torch": torch.__version__,
    }


def format_table(res: dict) -> str:
    """Our test errors beside the paper's, one row per model."""
    rows = [("teacher_errors", "teacher 2x1200, dropout + jitter"),
            ("student_errors", "student 2x800, from scratch"),
            ("distilled_errors", f"student 2x800, distilled T={res['recipe']['T']:g}")]
    lines = [f"{'model':<34} {'ours':>6} {'paper':>6} {'target':>9} {'seconds':>8}",
             "-" * 67]
    for key, label in rows:
        lo, hi = TARGETS[key]
        target = f"{lo or ''}-{hi}" if lo else f"<= {hi}"
        lines.append(f"{label:<34} {res[key]:>6} {res['paper'][key]:>6} {target:>9} "
                     f"{res['wall_seconds_per_model'][key]:>8.1f}")
    lines.append(f"(test errors out of {res['test_size']:,}; the paper's are out of 10,000; "
                 "targets apply to the full profile on one GPU)")
    return "\n".join(lines)


def meets_targets(res: dict) -> dict[str, bool]:
    """Whether each error count is within its target range."""
    return {k: (lo is None or res[k] >= lo) and res[k] <= hi for k, (lo, hi) in TARGETS.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m kdteach.experiments.hinton_mnist",
        description="Hinton et al. 2015's MNIST table: teacher, scratch student, distilled student.")
    parser.add_argument("--profile", choices=("quick", "full"), default=None,
                        help="sizes and epochs (default: KDTEACH_PROFILE, else full on CUDA)")
    parser.add_argument("--epochs", type=int, nargs="+", metavar="N", default=None,
                        help="epochs: one number for all three models, or three "
                             "(teacher, student, distilled)")
    parser.add_argument("--device", default=None, help="e.g. cuda, cpu (default: the fastest)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None,
                        help=f"results name under notebooks/results (default: {FULL_NAME} for a "
                             "full run on CUDA; otherwise nothing is written)")
    parser.add_argument("--results-dir", default=None, help="write the results file here instead")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, one epoch each; results go to a temporary folder")
    parser.add_argument("--max-norm", type=float, default=None,
                        help="teacher max-norm limit (0 turns it off; default 3.5)")
    parser.add_argument("--alpha", type=float, default=None, help="weight of the hard labels (0.1)")
    parser.add_argument("--T", type=float, default=None, help="distillation temperature (20)")
    args = parser.parse_args(argv)

    device = torch.device(args.device) if args.device else config.device()
    profile = "smoke" if args.smoke else (args.profile or config.profile_name())
    recipe = RECIPES[profile]
    changes = {}
    if args.epochs is not None:
        if len(args.epochs) not in (1, 3) or min(args.epochs) < 1:
            parser.error("--epochs takes one or three positive numbers")
        e = args.epochs * 3 if len(args.epochs) == 1 else args.epochs
        changes.update(teacher_epochs=e[0], student_epochs=e[1], distilled_epochs=e[2])
    if args.max_norm is not None:
        changes["max_norm"] = args.max_norm if args.max_norm > 0 else None
    if args.alpha is not None:
        changes["alpha"] = args.alpha
    if args.T is not None:
        changes["T"] = args.T
    recipe = dataclasses.replace(recipe, **changes)

    is_full = profile == "full" and device.type == "cuda"
    out = args.out or (FULL_NAME if is_full else None)
    if out == FULL_NAME and not is_full:
        parser.error(f"{FULL_NAME} holds the full profile's numbers from a GPU; this run is "
                     f"profile={profile} on {device.type}. Pass another --out name.")
    directory = args.results_dir
    tmp = None
    if args.smoke and directory is None:
        tmp = tempfile.TemporaryDirectory(prefix="kdteach-hinton-smoke-")
        directory = tmp.name
        out = out or "hinton_mnist_smoke"

    start = time.perf_counter()
    with config.temporary_env(KDTEACH_DEVICE=str(device),
                            KDTEACH_PROFILE=profile if profile in config.PROFILES else None):
        env = results.provenance()  # the commit that runs, even if the checkout moves meanwhile
        res = run(recipe, device=device, seed=args.seed)
        seconds = time.perf_counter() - start
        res["profile"] = profile
        res["wall_seconds"] = seconds
        res["meets_targets"] = meets_targets(res)
        print(format_table(res))
        print(f"total wall time {seconds:.1f} s")
        if out:
            path = results.write(out, res, seconds=seconds, directory=directory, env=env)
            res["results_path"] = str(path)
            print(f"wrote {path}")
        else:
            print("results not written (pass --out NAME to keep them)")
    if tmp is not None:
        res["results_file"] = results.read(out, directory)
        tmp.cleanup()
    return res


if __name__ == "__main__":
    main()

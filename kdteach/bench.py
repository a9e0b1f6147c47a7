"""Benchmark: one epoch of knowledge distillation, the tutorial way and the kdteach way.

    python -m kdteach.bench                        # batch sizes 64 and 256, the default device
    python -m kdteach.bench --device cpu --json bench.json
    python -m kdteach.bench --smoke                # a few seconds: 2,000 images, batch 64

In one process, on one device, it times the same work two ways:

* **baseline** — the loop most KD tutorials write (a popular PyTorch KD tutorial is one): a
  torchvision ``MNIST`` dataset with ``ToTensor()`` and ``Normalize`` transforms, a shuffled
  ``DataLoader``, each batch copied to the device, the teacher run on every batch under
  ``no_grad``, :func:`kdteach.losses.kd_loss`, ``loss.item()`` for the running loss, Adam;
* **kdteach** — :func:`kdteach.train.distill` (data resident on the device, teacher outputs
  computed once and looked up by index, no per-step ``.item()``, fused Adam and bf16
  autocast on CUDA).

The work is the same: one epoch of Hinton KD (T = 4, α = 0.5, Adam, lr 1e-3, constant) on
all 60,000 MNIST training images, teacher 784-1200-1200-10 (the course's trained
``zoo.mnist_teacher`` of the quick profile, cached), student 784-800-800-10 initialised
from the same seed in both loops. Both loops run a few warm-up steps on a throw-away copy
of the student first; timings cover the training call only (building the dataset objects
is outside the clock, the kdteach teacher pass over the data is inside it). Afterwards
both students are evaluated on the 10,000 test images by the same code, so a speed-up
cannot come from doing less work: the two accuracies must agree within run-to-run noise.

It prints a fixed-width table (seconds per epoch, images per second, peak device and host
memory, test accuracy, speed-up) and can write it as JSON (``--json PATH``, atomic).
``--compile`` adds ``distill(compile=True)``. Other loops can be timed beside these through
``benchmark(variants={name: epoch_function})`` (see :data:`EpochFunction`); the
maintainers' CUDA-graph prototype does that (``python -m tools.cuda_graphs``, from a checkout).
Peak host memory is the process's resident-set high-water mark during each run (Linux
resets it through ``/proc/self/clear_refs``; elsewhere it is the process-lifetime
``ru_maxrss``, marked ``*``).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import torch

from . import config, data, losses, models, results, train

PAPER_T, PAPER_ALPHA, LR = 4.0, 0.5, 1e-3
#: The loops timed: the tutorial baseline, distill, and with ``--compile`` distill(compile=True).
LOOPS = ("baseline", "kdteach", "kdteach+compile")
#: A loop passed in ``benchmark(variants=...)``: called as
#: ``epoch(student, teacher, split, *, batch_size=..., device=..., seed=...)`` with the training
#: :class:`kdteach.data.Split` already on ``device``; trains ``student`` for one epoch of the
#: same KD work (:data:`PAPER_T`, :data:`PAPER_ALPHA`, Adam at :data:`LR`) and returns the
#: mean training loss. The warm-up calls it on a short subset (a few batches) of the split.
EpochFunction = Callable[..., float]
#: How far apart the two students' test accuracies may be and still count as "the same":
#: one epoch from the same initialisation but a different shuffle (measured spread, see README).
ACCURACY_TOLERANCE = 0.005
#: Sizes of ``--smoke``: enough to exercise every code path in a few seconds on a CPU.
SMOKE_IMAGES, SMOKE_TEST, SMOKE_BATCH = 2_000, 1_000, 64


@dataclass
class Run:
    """One timed epoch of one loop at one batch size."""

    loop: str
    batch_size: int
    images: int
    seconds: float
    warmup_seconds: float
    peak_device_bytes: int | None
    peak_host_bytes: int | None
    host_peak_exact: bool
    test_accuracy: float
    train_loss: float
    all_seconds: list[float] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds


# --------------------------------------------------------------------------- memory


def _reset_host_peak() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0); ``False`` where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _host_peak_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class _Timer:
    """Wall time of a block, synchronised with the device at both ends."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        _sync(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        _sync(self.device)
        self.seconds = time.perf_counter() - self.start
        return False


class _PeakMemory:
    """Peak device memory allocated and peak host RSS between entering and leaving."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        _sync(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.host_exact = _reset_host_peak()
        return self

    def __exit__(self, *exc):
        _sync(self.device)
        self.device_bytes = (torch.cuda.max_memory_allocated(self.device)
                             if self.device.type == "cuda" else None)
        self.host_bytes = _host_peak_bytes()
        return False


# --------------------------------------------------------------------------- the two loops


def tutorial_dataset(n: int | None = None, *, seed: int = 0):
    """torchvision's MNIST training set with ``ToTensor`` + ``Normalize``, as tutorials build it.

    Reads the decompressed IDX files that :func:`kdteach.data.prepare` puts in
    ``data/MNIST/raw`` (``download=False``: the course never touches the network).
    ``n`` keeps the same stratified subset :func:`kdteach.data.load` would.
    """
    from torchvision import datasets, transforms

    data.prepare()
    mean, std = data.STATS["mnist"]
    dataset = datasets.MNIST(root=str(config.data_dir()), train=True, download=False,
                             transform=transforms.Compose([transforms.ToTensor(),
                                                           transforms.Normalize((mean,), (std,))]))
    if n is not None:
        index = data.stratified_subset(dataset.targets, n, seed=seed).tolist()
        dataset = torch.utils.data.Subset(dataset, index)
    return dataset


def baseline_epoch(student, teacher, dataset, *, batch_size: int, device: torch.device,
                   T: float = PAPER_T, alpha: float = PAPER_ALPHA, lr: float = LR, seed: int = 0,
                   workers: int = 0, max_steps: int | None = None) -> float:
    """One epoch of the tutorial loop; returns the mean training loss.

    Written the way a popular PyTorch KD tutorial and most KD tutorials write it; nothing here is kdteach's.
    ``max_steps`` stops early (the warm-up).
    """
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         num_workers=workers,
                                         generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    teacher.eval()
    student.train()
    running_loss, steps = 0.0, 0
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        with torch.no_grad():
            teacher_logits = teacher(inputs)
        student_logits = student(inputs)
        loss = losses.kd_loss(student_logits, teacher_logits, targets, T=T, alpha=alpha)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        steps += 1
        if max_steps is not None and steps >= max_steps:
            break
    return running_loss / max(steps, 1)


def kdteach_epoch(student, teacher, split: data.Split, *, batch_size: int, device: torch.device,
                  T: float = PAPER_T, alpha: float = PAPER_ALPHA, lr: float = LR, seed: int = 0,
                  compile: bool = False) -> float:
    """One epoch of :func:`kdteach.train.distill` (constant learning rate); returns its loss.

    Inside ``kdteach.losses.value_checks(False)`` (``--no-value-checks``) distill's losses
    skip their value checks too: its default follows the enclosing setting.
    """
    history = train.distill(student, teacher, split, T=T, alpha=alpha, epochs=1, lr=lr,
                            batch_size=batch_size, optimizer="adam", schedule=None, seed=seed,
                            device=device, compile=compile, progress=False)
    return history.last["train_loss"]


# --------------------------------------------------------------------------- setup


def bench_teacher(device: torch.device, *, smoke: bool, smoke_split: data.Split | None = None):
    """The trained teacher both loops use.

    Normally the course's ``zoo.mnist_teacher`` of the quick profile (trained once, cached).
    In ``--smoke`` mode a teacher fitted for one epoch on the smoke images (a second or two,
    not cached).
    """
    if not smoke:
        from . import zoo

        return zoo.mnist_teacher(profile=config.QUICK).to(device).eval()
    config.seed_everything(0)
    teacher = models.hinton_teacher()
    train.fit(teacher, smoke_split, epochs=1, batch_size=128, lr=2e-3, device=device,
              progress=False)
    return teacher.to(device).eval()


def _student(seed: int, device: torch.device):
    config.seed_everything(seed)
    return models.hinton_student().to(device)


def run_one(loop: str, *, batch_size: int, teacher, test_split: data.Split,
            device: torch.device, images: int | None, seed: int, warmup: int,
            workers: int, repeat: int,
            variants: Mapping[str, EpochFunction] | None = None) -> Run:
    """Build ``loop``'s dataset, warm up, then time ``repeat`` epochs from the same student.

    ``loop`` is one of :data:`LOOPS` or a key of ``variants``. The memory peaks cover all
    of it (the dataset each loop keeps included); the clock covers the training epochs only.
    """
    on_device = {"kdteach": kdteach_epoch,
                 "kdteach+compile": functools.partial(kdteach_epoch, compile=True),
                 **(variants or {})}
    if loop != "baseline" and loop not in on_device:
        raise ValueError(f"loop={loop!r} is unknown; use one of {LOOPS} "
                         f"or a key of variants ({sorted(variants or {})}).")
    with _PeakMemory(device) as mem:
        if loop == "baseline":
            train_set = tutorial_dataset(images, seed=seed)
        else:
            train_set = data.load("mnist", True, n=images, seed=seed, device=device)

        def epoch(student, max_steps=None, seed=seed):
            if loop == "baseline":
                return baseline_epoch(student, teacher, train_set, batch_size=batch_size,
                                      device=device, seed=seed, workers=workers,
                                      max_steps=max_steps)
            one_epoch = on_device[loop]
            subset = train_set
            if max_steps is not None:  # distill runs whole epochs: warm up on a small subset
                # ... whose last batch is as short as the real epoch's (the same shapes).
                n = min(len(train_set), max_steps * batch_size + len(train_set) % batch_size)
                subset = train_set.take(torch.arange(n))
            return one_epoch(student, teacher, subset, batch_size=batch_size, device=device,
                             seed=seed)

        # Warm-up on a throw-away student: allocator, kernels, lazy inits, compilation.
        with _Timer(device) as warm:
            epoch(_student(seed + 1, device), max_steps=warmup, seed=seed + 1)
        times, loss, accuracy = [], None, None
        for _ in range(repeat):
            student = _student(seed, device)
            with _Timer(device) as t:
                value = epoch(student)
            times.append(t.seconds)
            if accuracy is None:
                loss = value
                accuracy = train.evaluate(student, test_split, device=device).accuracy
            del student
    return Run(loop=loop, batch_size=batch_size, images=len(train_set), seconds=min(times),
               warmup_seconds=warm.seconds, peak_device_bytes=mem.device_bytes,
               peak_host_bytes=mem.host_bytes, host_peak_exact=mem.host_exact,
               test_accuracy=accuracy, train_loss=loss, all_seconds=times)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{device.type} ({cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def benchmark(batch_sizes=(64, 256), *, device=None, images: int | None = None,
              test_images: int | None = None, smoke: bool = False, warmup: int = 10,
              compile: bool = False, workers: int = 0, repeat: int = 1, seed: int = 0,
              value_checks: bool = True,
              variants: Mapping[str, EpochFunction] | None = None, log=print) -> dict:
    """Run the benchmark; return a JSON-able dict (``runs``, ``ratios``, ``environment``).

    ``variants`` (name -> :data:`EpochFunction`) are timed after the built-in loops at
    each batch size, on the same teacher, data and initial student. They are experiments:
    one that raises is reported under ``failed`` and the run goes on. ``value_checks=False``
    runs every loop inside ``kdteach.losses.value_checks(False)``.
    """
    variants = dict(variants or {})
    clash = sorted(set(variants) & set(LOOPS))
    if clash:
        raise ValueError(f"variants may not reuse the built-in loop names {clash}.")
    device = torch.device(device) if device is not None else config.device()
    if smoke:
        images = images or SMOKE_IMAGES
        test_images = test_images or SMOKE_TEST
        warmup = min(warmup, 2)
    started = time.perf_counter()
    test_split = data.load("mnist", False, n=test_images, seed=seed, device=device)
    smoke_split = data.load("mnist", True, n=images, seed=seed, device=device) if smoke else None
    teacher = bench_teacher(device, smoke=smoke, smoke_split=smoke_split)
    del smoke_split
    teacher_accuracy = train.evaluate(teacher, test_split, device=device).accuracy

    loops = ("baseline", "kdteach") + (("kdteach+compile",) if compile else ()) + tuple(
        variants)
    failed = {}
    runs: list[Run] = []
    # Off: kd_loss skips its NaN/inf and label-range checks (a host-device sync each) in
    # this block only. On: each loop keeps its own default (distill decides for itself).
    with contextlib.nullcontext() if value_checks else losses.value_checks(False):
        for bs in batch_sizes:
            for loop in loops:
                log(f"… {loop} batch {bs}", file=sys.stderr)
                try:
                    runs.append(run_one(loop, batch_size=bs, teacher=teacher,
                                        test_split=test_split, device=device, images=images,
                                        seed=seed, warmup=warmup, workers=workers,
                                        repeat=repeat, variants=variants))
                except Exception as err:  # only an extra loop may fail without ending the run
                    if loop not in variants:
                        raise
                    failed[f"{loop} batch {bs}"] = f"{type(err).__name__}: {err}"
                    log(f"  {loop} failed: {failed[f'{loop} batch {bs}']}", file=sys.stderr)

    ratios = {}
    for bs in batch_sizes:
        row = {r.loop: r for r in runs if r.batch_size == bs}
        base = row["baseline"]
        ratios[str(bs)] = {
            loop: {"speedup": base.seconds / row[loop].seconds,
                   "accuracy_difference": row[loop].test_accuracy - base.test_accuracy}
            for loop in loops[1:] if loop in row}
    env = results.provenance()
    env.update(device=device_name(device), torchvision=_torchvision_version(),
               python=platform.python_version())
    return {
        "environment": env,
        "settings": {"images": runs[0].images, "test_images": len(test_split),
                     "batch_sizes": list(batch_sizes), "T": PAPER_T, "alpha": PAPER_ALPHA,
                     "lr": LR, "optimizer": "adam", "epochs": 1, "warmup_steps": warmup,
                     "repeat": repeat, "compile": compile, "variants": list(variants),
                     "workers": workers, "seed": seed, "value_checks": value_checks,
                     "smoke": smoke,
                     "teacher": "zoo.mnist_teacher(profile=quick)" if not smoke
                     else "1-epoch smoke teacher", "teacher_accuracy": teacher_accuracy},
        "runs": [{**asdict(r), "images_per_second": r.images_per_second} for r in runs],
        "ratios": ratios,
        "failed": failed,
        "total_seconds": time.perf_counter() - started,
    }


def _torchvision_version() -> str | None:
    try:
        import torchvision
    except ImportError:
        return None
    return torchvision.__version__


# --------------------------------------------------------------------------- report


def _mb(value: int | None, exact: bool = True) -> str:
    if value is None:
        return "—"
    return f"{value / 2**20:.0f}" + ("" if exact else "*")


def format_table(report: dict) -> str:
    """The report as fixed-width text: a header, one row per run, and the ratios."""
    env, s = report["environment"], report["settings"]
    width = max(len(r["loop"]) for r in report["runs"])
    lines = [
        f"kdteach.bench: one epoch of KD (T={s['T']:g}, alpha={s['alpha']:g}, Adam lr {s['lr']:g}) "
        f"on {s['images']:,} MNIST images",
        f"device {env['device']} | torch {env['torch']} | torchvision {env.get('torchvision')} | "
        f"commit {env.get('commit') or '?'}",
        f"teacher 784-1200-1200-10 ({s['teacher']}, test acc {s['teacher_accuracy']:.4f}) -> "
        f"student 784-800-800-10 | warm-up {s['warmup_steps']} steps | best of {s['repeat']} | "
        f"value checks {'on' if s['value_checks'] else 'off'}",
        "",
        f"{'batch':>5}  {'loop':<{width}}  {'s/epoch':>8}  {'img/s':>9}  {'warm-up s':>9}  "
        f"{'dev MB':>7}  {'host MB':>7}  {'test acc':>8}  {'speed-up':>8}",
    ]
    lines.append("-" * len(lines[-1]))
    for r in report["runs"]:
        q = report["ratios"][str(r["batch_size"])].get(r["loop"])
        ratio = f"{q['speedup']:.1f}x" if q else "1.0x"
        lines.append(
            f"{r['batch_size']:>5}  {r['loop']:<{width}}  {r['seconds']:>8.2f}  "
            f"{r['images_per_second']:>9,.0f}  {r['warmup_seconds']:>9.2f}  "
            f"{_mb(r['peak_device_bytes']):>7}  {_mb(r['peak_host_bytes'], r['host_peak_exact']):>7}  "
            f"{r['test_accuracy']:>8.4f}  {ratio:>8}")
    lines.append("")
    for bs, ratio_of in report["ratios"].items():
        for loop, q in ratio_of.items():
            diff = 100 * q["accuracy_difference"]
            if s["smoke"]:  # a few steps on a few images: accuracies are too noisy to compare
                verdict = "not compared in a smoke run"
            else:
                verdict = ("within" if abs(diff) <= 100 * ACCURACY_TOLERANCE else "OUTSIDE"
                           ) + f" the ±{100 * ACCURACY_TOLERANCE:.1f}-point noise band"
            lines.append(f"batch {bs}: {loop} is {q['speedup']:.1f}x faster than the baseline; "
                         f"test accuracy {diff:+.2f} points ({verdict})")
    for what, message in report.get("failed", {}).items():
        lines.append(f"{what} FAILED: {message}")
    if any(not r["host_peak_exact"] for r in report["runs"]):
        lines.append("* host MB is the process-lifetime peak (ru_maxrss), not per run")
    lines.append(f"total {report['total_seconds']:.0f} s (including the teacher, data and warm-ups)")
    return "\n".join(lines)


PROG = "python -m kdteach.bench"


def parse_args(argv=None, *, prog: str = PROG,
               description: str = "Time one epoch of KD on MNIST: a tutorial-style loop vs "
                                  "kdteach.train.distill.") -> argparse.Namespace:
    """The benchmark's command line, checked; ``batch_sizes`` is filled in. Exits (status 2,
    with the reason) on a bad option, and after printing ``--help``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="batch sizes to time (default: 64 256; 64 with --smoke)")
    parser.add_argument("--device", default=None,
                        help="e.g. cpu, cuda, cuda:1 (default: kdteach.config.device())")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the table as JSON")
    parser.add_argument("--smoke", action="store_true",
                        help=f"tiny run for CI: {SMOKE_IMAGES:,} images, batch {SMOKE_BATCH}, "
                             "a one-epoch teacher")
    parser.add_argument("--compile", action="store_true",
                        help="distill(compile=True): torch.compile the student (kdteach loop only)")
    parser.add_argument("--images", type=int, default=None,
                        help="training images (default: all 60,000; a stratified subset otherwise)")
    parser.add_argument("--test-images", type=int, default=None,
                        help="test images for the accuracy check (default: all 10,000)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up steps per loop (default 10)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="timed epochs per loop and batch size; the best is reported")
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader worker processes of the baseline (default 0, as tutorials)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-value-checks", action="store_true",
                        help="time every loop inside kdteach.losses.value_checks(False): kd_loss "
                             "skips its NaN/inf and label-range checks (no host-device sync "
                             "inside kd_loss)")
    args = parser.parse_args(argv)
    for name in ("warmup", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    args.batch_sizes = args.batch_sizes or ([SMOKE_BATCH] if args.smoke else [64, 256])
    if any(b < 1 for b in args.batch_sizes):
        parser.error("--batch-sizes must be positive")
    return args


def run(args: argparse.Namespace, *, variants: Mapping[str, EpochFunction] | None = None,
        command: str = PROG) -> dict:
    """Run the benchmark :func:`parse_args` returned (plus ``variants``), print the table,
    write ``--json`` if given; return the report, with ``command`` recorded in it."""
    report = benchmark(args.batch_sizes, device=args.device, images=args.images,
                       test_images=args.test_images, smoke=args.smoke, warmup=args.warmup,
                       compile=args.compile, workers=args.workers, repeat=args.repeat,
                       seed=args.seed, value_checks=not args.no_value_checks,
                       variants=variants)
    report["command"] = command
    print(format_table(report))
    if args.json:
        print(f"wrote {results.write_json(args.json, report)}")
    return report


def command_line(prog: str, argv=None) -> str:
    """How the benchmark was called, for the report: ``prog`` and its arguments."""
    return f"{prog} " + " ".join(sys.argv[1:] if argv is None else list(argv))


def main(argv=None) -> dict:
    return run(parse_args(argv), command=command_line(PROG, argv))


if __name__ == "__main__":
    main()

"""One training loop for every method of the course.

* :func:`fit` trains a model on labels (cross-entropy, or a loss you pass);
* :func:`distill` trains a student from a teacher with a pluggable loss: Hinton KD by
  default, or any function of the :class:`Outputs` of a step — logits, recorded
  intermediate features and targets — so hints, attention and relations use the same loop;
* :func:`evaluate` and :func:`predict` measure a model on a dataset;
* :func:`run_epochs` is the epoch loop under both: it draws the batches, calls a *step*
  that trains on one batch, and records the epoch. A method with its own update rule
  (mutual learning's peers updated in turn) writes a step and drives the same loop, with
  the building blocks :func:`loader_for`, :func:`make_optimizer`, :func:`make_scheduler`
  and :func:`autocast`.

Why it is fast on a GPU (and not slow on a CPU):

* the dataset lives on the device and batches are drawn by index (:class:`DeviceLoader`);
* the teacher runs in ``eval()`` under ``torch.no_grad()``, and when the inputs are not
  augmented its outputs are computed once, before the first epoch, and looked up by index;
* the loop never calls ``.item()`` inside an epoch (no host-device sync per step): losses
  and accuracies accumulate on the device and are read once per epoch;
* fused optimisers (one kernel per step) on the CPU and CUDA;
* on CUDA: bf16 autocast, and optionally ``torch.compile`` for long runs.
"""
from __future__ import annotations

import math
import numbers
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import checks, config, losses
from .data import DeviceLoader, check_pair, is_pair
from .features import check_names, record, shapes
from .losses import kd_loss
from .models import device_of

#: Teacher features are cached for the whole training set only below this many bytes
#: (on a GPU: this or an eighth of its memory, whichever is larger; see feature_cache_budget).
FEATURE_CACHE_BYTES = 1 << 30


def feature_cache_budget(device: torch.device) -> int:
    """How many bytes of teacher features :func:`distill` may keep for the whole set.

    Host memory is shared with everything else on a laptop, so the CPU gets
    :data:`FEATURE_CACHE_BYTES`; a GPU gets an eighth of its memory if that is more (10 GB on
    an 80 GB H100), so that full-scale feature distillation looks features up by index
    instead of running the teacher every step.
    """
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        return max(FEATURE_CACHE_BYTES, total // 8)
    return FEATURE_CACHE_BYTES


@dataclass
class Outputs:
    """What a distillation loss receives for one batch."""

    student_logits: torch.Tensor
    teacher_logits: torch.Tensor | None
    targets: torch.Tensor
    student_features: dict[str, torch.Tensor] = field(default_factory=dict)
    teacher_features: dict[str, torch.Tensor] = field(default_factory=dict)
    inputs: torch.Tensor | None = None
    # The batch's example indices in the dataset (global under sharding): a loss that looks
    # up precomputed teacher outputs by example (a top-k cache on disk) reads them here.
    indices: torch.Tensor | None = None


@dataclass
class History:
    """Per-epoch records of a run: ``history["train_loss"]`` is a list, one per epoch."""

    records: list[dict] = field(default_factory=list)

    def append(self, **values) -> None:
        self.records.append(values)

    def __getitem__(self, key: str) -> list:
        return [r.get(key) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def last(self) -> dict:
        return self.records[-1] if self.records else {}

    def plot(self, axes=None, title: str | None = None):
        """Loss and accuracy per epoch, side by side (:func:`kdteach.viz.history`)."""
        from . import viz  # matplotlib only when a plot is asked for

        return viz.history(self, axes=axes, title=title)


@dataclass
class Evaluation:
    """Accuracy, error count and mean cross-entropy of a model on a dataset."""

    accuracy: float
    errors: int
    n: int
    loss: float


# ---------------------------------------------------------------------------------------
# Building blocks of a run: the loader, the optimiser, its schedule, mixed precision
# ---------------------------------------------------------------------------------------

def loader_for(data, *, batch_size: int = 128, seed: int = 0, jitter: int = 0,
               device=None) -> DeviceLoader:
    """``data`` as a :class:`DeviceLoader` on ``device`` (a loader passes through as it is).

    ``data`` is a :class:`Split`, an ``(images, labels)`` pair, a :class:`DeviceLoader`,
    or any other *batch source*: an object with ``batches()`` and ``device``, such as
    :class:`kdteach.text.WindowLoader` (token windows) or a source that generates its
    batches, which passes through as it is.
    """
    if isinstance(data, DeviceLoader):
        return data
    if is_batch_source(data):
        if jitter:
            raise ValueError(f"jitter={jitter} shifts images, but data is a "
                             f"{type(data).__name__}, which makes its own batches; use jitter=0.")
        if device is not None and torch.device(device) != torch.device(data.device):
            raise ValueError(f"device={device} but data makes its batches on {data.device}; "
                             "build the batch source on the device you want, or pass device=None.")
        return data
    batch_size = checks.positive_int(batch_size, "batch_size")
    if is_pair(data):
        device = torch.device(device) if device is not None else config.device()
        return DeviceLoader(data, batch_size, seed=seed, jitter=jitter, device=device)
    raise TypeError("data must be a kdteach.data.Split, an (images, labels) pair, a "
                    "DeviceLoader or a batch source (an object with batches() and device, "
                    f"e.g. kdteach.text.WindowLoader), got {type(data).__name__}.")


def is_batch_source(data) -> bool:
    """Whether ``data`` makes its own batches: it has ``batches()`` and a ``device``."""
    return callable(getattr(data, "batches", None)) and hasattr(data, "device")


def per_position(logits: torch.Tensor, targets: torch.Tensor):
    """Logits and targets with one row per prediction: a language model's (B, L, V) logits
    and (B, L) targets become (B·L, V) and (B·L,); an image batch's (B, C) and (B,) are
    returned as they are. Cross-entropy and ``kd_loss`` then average over every position."""
    if targets.dim() > 1:
        return logits.flatten(0, -2), targets.flatten()
    return logits, targets


def make_optimizer(params, name: str, lr: float, weight_decay: float, device: torch.device):
    """Adam, AdamW or SGD (Nesterov momentum 0.9) over the trainable ``params``."""
    params = [p for p in params if p.requires_grad]
    # One fused kernel per step instead of a loop over parameter tensors: on the CPU too it
    # makes the optimiser step ~5x cheaper (measured 2.3 -> 0.47 ms for the 2x800 student),
    # with the same update up to float rounding.
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True,
                               weight_decay=weight_decay, **fused)
    raise ValueError(f"optimizer={name!r} is unknown; use 'adam', 'adamw' or 'sgd'.")


def make_scheduler(optimizer, schedule: str | None, epochs: int):
    """``"cosine"`` anneals the learning rate to 0 over ``epochs``; ``None`` keeps it."""
    if schedule is None:
        return None
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    raise ValueError(f"schedule={schedule!r} is unknown; use 'cosine' or None.")


def autocast(device: torch.device, amp: bool | None = None):
    """bf16 autocast on CUDA (``amp=None``: on by default there); a no-op elsewhere."""
    enabled = device.type == "cuda" if amp is None else bool(amp) and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def check_run(*, epochs, lr, seed) -> tuple[int, float]:
    """Check the arguments every training function shares; return ``(epochs, lr)``."""
    epochs = checks.positive_int(epochs, "epochs")
    lr = checks.positive_number(lr, "lr", example="lr=1e-3")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {seed!r}.")
    return epochs, lr


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    if os.environ.get("KDTEACH_PROGRESS", "").strip() in ("0", "false", "no"):
        return False
    if os.environ.get("CI"):
        return False
    return "ipykernel" in sys.modules or sys.stderr.isatty()


# ---------------------------------------------------------------------------------------
# The epoch loop: every method of the course trains through it
# ---------------------------------------------------------------------------------------

def run_epochs(step: Callable, loader, *, epochs: int, modules: Sequence[nn.Module] = (),
               schedulers: Sequence = (), evaluate: Callable[[], dict] | None = None,
               progress: bool | None = None, desc: str = "train") -> History:
    """Run ``epochs`` epochs of ``step`` over ``loader``'s batches; return the History.

    * ``loader.batches()`` yields ``(inputs, targets, indices)`` for one epoch (a
      :class:`DeviceLoader`, or any object with that method and a ``device``);
    * ``step(x, y, idx)`` trains on one batch — forward, loss, ``backward``, optimiser
      step(s) — and returns what to record as **sums over the batch**, e.g.
      ``{"loss": loss.detach() * len(y), "acc": (logits.argmax(1) == y).sum()}``;
      a value may be a vector (one entry per peer, say);
    * the loop adds the sums up on the device and reads them once per epoch (no host sync
      per step), dividing by the examples seen: ``history["train_loss"]``,
      ``history["train_acc"]``; when the loader is one rank's share of a distributed job
      (``loader.world_size > 1``, :mod:`kdteach.distributed`), the sums and the count are
      first added up over the ranks (one all-reduce each per epoch): the job's history;
    * after each epoch it steps ``schedulers``, then merges ``evaluate()`` (e.g.
      ``{"eval_acc": 0.97}``) and the epoch's ``seconds`` into the record.

    ``modules`` are put in ``train()`` mode at the start of every epoch (an evaluation may
    have switched them to ``eval()``).
    """
    from tqdm.auto import tqdm

    epochs = checks.positive_int(epochs, "epochs")
    history = History()
    bar = tqdm(range(1, epochs + 1), desc=desc, unit="epoch", leave=False,
               disable=not _progress_enabled(progress))
    for epoch in bar:
        start = time.perf_counter()
        for m in modules:
            m.train()
        totals: dict[str, torch.Tensor] = {}
        seen = steps = every = 0
        for x, y, idx in loader.batches():
            for key, value in step(x, y, idx).items():
                totals[key] = totals[key] + value if key in totals else value
            seen += len(y)
            steps += 1
            every = every or finite_check_every(x.device)
            if steps % every == 0:
                _stop_if_not_finite(totals, epoch, steps, every)
        if seen == 0:
            raise ValueError("the loader gave no batches; pass at least one example "
                             "(and with drop_last, at least one full batch).")
        _stop_if_not_finite(totals, epoch, steps, every, last=True)
        totals, seen = _sum_over_ranks(loader, totals, seen)
        for scheduler in schedulers:
            if scheduler is not None:
                scheduler.step()
        row = {"epoch": epoch}
        for key, total in totals.items():
            values = total.tolist()  # the epoch's one read of the device
            row[f"train_{key}"] = ([float(v) / seen for v in values] if isinstance(values, list)
                                   else float(values) / seen)
        if evaluate is not None:
            row.update(evaluate())
        row["seconds"] = time.perf_counter() - start
        history.append(**row)
        if isinstance(row.get("train_loss"), float) and isinstance(row.get("train_acc"), float):
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['train_acc']:.3f}")
    return history


def _sum_over_ranks(loader, totals: dict, seen: int) -> tuple[dict, int]:
    """The epoch's sums over every rank of a distributed job, when ``loader`` draws one
    rank's share of each batch (``loader.world_size > 1``, see :mod:`kdteach.distributed`):
    one all-reduce per recorded quantity per epoch, so the history is the whole job's."""
    import torch.distributed as dist

    if getattr(loader, "world_size", 1) <= 1 or not (dist.is_available() and dist.is_initialized()):
        return totals, seen

    device = next(iter(totals.values())).device
    count = torch.tensor(seen, dtype=torch.long, device=device)
    dist.all_reduce(count)
    summed = {}
    for key, total in totals.items():
        total = total.clone()
        dist.all_reduce(total)
        summed[key] = total
    return summed, int(count)


def finite_check_every(device: torch.device) -> int:
    """How many steps :func:`run_epochs` lets pass between its checks that what a step
    records (the loss) is finite: every step on the CPU, where a check costs nothing;
    every 50 on a GPU, where each check makes the CPU wait for the GPU (and at each
    epoch's end)."""
    return 50 if device.type == "cuda" else 1


def _stop_if_not_finite(totals: dict, epoch: int, steps: int, every: int, last: bool = False):
    bad = [k for k, t in totals.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if not bad:
        return
    if every == 1:
        where = f"step {steps}"
    else:
        first = steps - (steps - 1) % every if last else steps - every + 1
        where = (f"a step between {first} and {steps} (on this device the loop checks every "
                 f"{every} steps, so as not to wait for it at each one)")
    raise FloatingPointError(
        f"Training stopped: the recorded {', '.join(bad)} became NaN or infinite at epoch "
        f"{epoch}, {where}. Likely causes: a learning rate too large (try one 10x smaller), "
        "an extreme temperature T, inputs holding NaN or inf, or a loss function that "
        "returns NaN/inf (call it on one batch to see). The model's weights may now hold "
        "NaN: build it again before retrying.")


def _loss_and_accuracy(loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> dict:
    """A step's record for :func:`run_epochs`: summed loss and number of correct answers.

    For a language model ``y`` is (B, L): an example is a window, and its accuracy the share
    of its L next tokens predicted right, so the epoch's ``train_acc`` is per token too.
    """
    correct = logits.detach().argmax(-1) == y  # (B,) or (B, L)
    if correct.dim() > 1:
        correct = correct.flatten(1).float().mean(1)
    return {"loss": loss.detach().float() * len(y), "acc": correct.sum()}


def _train_step(optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


# ---------------------------------------------------------------------------------------
# Measuring a model
# ---------------------------------------------------------------------------------------

@torch.no_grad()
def predict(model: nn.Module, data, *, batch_size: int = 1000, features: Sequence[str] = (),
            device=None, amp: bool | None = None):
    """The model's logits on every example of ``data`` (in order), in ``eval()`` mode.

    ``data`` is a :class:`Split`, an ``(images, labels)`` pair or an images tensor. With
    ``features``, returns ``(logits, {name: tensor})`` recorded over the whole set.
    """
    checks.model(model, "model")
    batch_size = checks.positive_int(batch_size, "batch_size")
    if isinstance(data, torch.Tensor):
        images = data
    elif is_pair(data) and isinstance(data[0], torch.Tensor):
        images = data[0]
    else:
        raise TypeError("data must be a Split, an (images, labels) pair of tensors or an "
                        f"images tensor, got {type(data).__name__}; convert NumPy arrays with "
                        "torch.from_numpy(...).")
    device = torch.device(device) if device is not None else device_of(model)
    was_training = model.training
    model.eval()
    logits, feats = [], {name: [] for name in features}
    try:
        with record(model, list(features)) as recorded, autocast(device, amp):
            for start in range(0, len(images), batch_size):
                x = images[start:start + batch_size].to(device, non_blocking=True)
                logits.append(model(x).float())
                for name in features:
                    feats[name].append(recorded[name].float())
    finally:
        model.train(was_training)
    out = torch.cat(logits) if logits else torch.empty(0)
    if features:
        return out, {name: torch.cat(v) for name, v in feats.items()}
    return out


def evaluate(model: nn.Module, data, *, batch_size: int = 1000, device=None) -> Evaluation:
    """Accuracy, number of errors and mean cross-entropy of ``model`` on ``data``."""
    _, labels = check_pair(data)
    logits = predict(model, data, batch_size=batch_size, device=device)
    labels = labels.to(logits.device)
    _check_label_range(labels, logits.shape[1], "data")
    correct = int((logits.argmax(1) == labels).sum())
    return Evaluation(accuracy=correct / len(labels), errors=len(labels) - correct,
                      n=len(labels), loss=float(F.cross_entropy(logits, labels)))


def _check_label_range(labels: torch.Tensor, classes: int, name: str) -> None:
    if int(labels.max()) >= classes:
        raise ValueError(f"{name} has labels up to {int(labels.max())}, but the model predicts "
                         f"{classes} classes (0 to {classes - 1}); check the label encoding or "
                         "the model's number of outputs.")


def _eval_accuracy(model: nn.Module, eval_data, device) -> Callable[[], dict]:
    if callable(eval_data):
        return eval_data  # the caller's own measure, e.g. bits per character
    def accuracy() -> dict:
        if eval_data is None:
            return {"eval_acc": None}
        return {"eval_acc": evaluate(model, eval_data, device=device).accuracy}
    return accuracy


def _value_checks(check_values: bool | None, device: torch.device, own_loss: bool) -> bool:
    """Whether a run's losses do their NaN and label-range checks
    (:func:`kdteach.losses.value_checks`, entered around each step's loss).

    They read tensor values: on a GPU, a host-device sync every step. So by default
    (``None``) they follow the caller's setting, except that on CUDA they are skipped for the
    course's own losses, which the loop feeds checked inputs; a loss you pass stays checked
    unless you say ``check_values=False`` (or call from inside ``value_checks(False)``).
    """
    if check_values is None:
        return losses.value_checks_enabled() and (device.type != "cuda" or not own_loss)
    if not isinstance(check_values, bool):
        raise TypeError(f"check_values must be True, False or None, got {check_values!r}.")
    return check_values


# ---------------------------------------------------------------------------------------
# Training on labels, and distillation
# ---------------------------------------------------------------------------------------

def fit(model: nn.Module, data, *, epochs: int = 5, lr: float = 1e-3, batch_size: int = 128,
        optimizer: str = "adam", weight_decay: float = 0.0, schedule: str | None = "cosine",
        jitter: int = 0, loss: Callable | None = None, eval_data=None, seed: int = 0,
        device=None, amp: bool | None = None, compile: bool = False,
        check_values: bool | None = None, progress: bool | None = None) -> History:
    """Train ``model`` on labelled ``data``; return its :class:`History`.

    Args:
        data: a :class:`Split`, an ``(images, labels)`` pair, a :class:`DeviceLoader`, or a
            batch source such as :class:`kdteach.text.WindowLoader` (see :func:`loader_for`).
        loss: ``loss(logits, targets)``; cross-entropy by default (over every position for a
            language model's (B, L, V) logits; a custom loss receives them as they are).
        schedule: ``"cosine"`` anneals the learning rate to 0 over ``epochs``; ``None`` keeps it.
        jitter: random shifts of up to this many pixels (on the device) each epoch.
        eval_data: a held-out set whose accuracy is recorded after every epoch, or a function
            returning a dict of numbers to record instead (e.g. ``{"val_bpc": ...}``).
        compile: ``torch.compile`` the model first (pays off only for long GPU runs).
        check_values: run the losses' NaN/label-range checks (see :func:`_value_checks`).
    """
    checks.model(model, "model")
    epochs, lr = check_run(epochs=epochs, lr=lr, seed=seed)
    torch.manual_seed(seed)  # dropout masks; the loader has its own seeded generator
    loader = loader_for(data, batch_size=batch_size, seed=seed, jitter=jitter, device=device)
    device = loader.device
    model.to(device)
    if isinstance(loader, DeviceLoader):
        _check_label_range(loader.labels, predict(model, loader.images[:1]).shape[1], "data")
    criterion = loss or _cross_entropy
    forward = torch.compile(model) if compile else model
    opt = make_optimizer(model.parameters(), optimizer, lr, weight_decay, device)
    sched = make_scheduler(opt, schedule, epochs)
    checked = _value_checks(check_values, device, own_loss=loss is None)

    def step(x, y, idx):
        with autocast(device, amp):
            logits = forward(x)
        with losses.value_checks(checked):
            value = criterion(logits.float(), y)
        _train_step(opt, value)
        return _loss_and_accuracy(value, logits, y)

    return run_epochs(step, loader, epochs=epochs, modules=[model], schedulers=[sched],
                      evaluate=_eval_accuracy(model, eval_data, device), progress=progress,
                      desc=f"fit {type(model).__name__}")


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(*per_position(logits, targets))


def _shares_parameters(a: nn.Module, b: nn.Module) -> bool:
    """Whether two models hold the same parameter objects or the same memory."""
    def storages(m):
        return {p.untyped_storage().data_ptr() for p in m.parameters()
                if p.device.type != "meta" and p.numel() > 0}
    ids = {id(p) for p in a.parameters()}
    return bool(ids & {id(p) for p in b.parameters()}) or bool(storages(a) & storages(b))


class _TeacherOutputs:
    """The teacher's logits (and requested features) for a batch, computed under
    ``no_grad`` in ``eval()``; precomputed once for the whole set when the inputs
    never change, then looked up by index."""

    def __init__(self, teacher, loader: DeviceLoader, features: Sequence[str], amp):
        self.teacher, self.features, self.amp = teacher, list(features), amp
        self.device = loader.device
        self.cached_logits, self.cached_features = None, {}
        if not isinstance(loader, DeviceLoader) or loader.augmented:
            return  # new inputs every epoch (or every batch): the teacher runs on every batch
        if self.features:
            # Sized from one example before anything is stored: float32 after predict().
            per_example = sum(4 * math.prod(shape[1:]) for shape in
                              shapes(teacher, self.features, loader.images[:1]).values())
            if per_example * len(loader.images) > feature_cache_budget(self.device):
                return  # too big to keep: logits and features are computed per batch
            self.cached_logits, self.cached_features = predict(
                teacher, loader.images, features=self.features, device=self.device, amp=amp)
        else:
            self.cached_logits = predict(teacher, loader.images, device=self.device, amp=amp)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, idx: torch.Tensor):
        if self.cached_logits is not None:
            return self.cached_logits[idx], {n: f[idx] for n, f in self.cached_features.items()}
        self.teacher.eval()
        with record(self.teacher, self.features) as feats, autocast(self.device, self.amp):
            logits = self.teacher(x).float()
        return logits, {n: f.float() for n, f in feats.items()}


def distill(student: nn.Module, teacher: nn.Module, data, loss: Callable | None = None, *,
            T: float = 4.0, alpha: float = 0.5, student_features: Sequence[str] = (),
            teacher_features: Sequence[str] = (), extra_modules: Iterable[nn.Module] = (),
            epochs: int = 5, lr: float = 1e-3, batch_size: int = 128, optimizer: str = "adam",
            weight_decay: float = 0.0, schedule: str | None = "cosine", jitter: int = 0,
            eval_data=None, seed: int = 0, device=None, amp: bool | None = None,
            compile: bool = False, check_values: bool | None = None,
            progress: bool | None = None) -> History:
    """Train ``student`` to match ``teacher`` on ``data``; return its :class:`History`.

    ``loss(outputs)`` receives an :class:`Outputs` (student and teacher logits, the
    requested ``student_features`` / ``teacher_features`` recorded by name, the targets)
    and returns a scalar. By default it is Hinton's
    ``kd_loss(student_logits, teacher_logits, targets, T=T, alpha=alpha)``.

    ``extra_modules`` (e.g. a FitNets connector) are trained with the student: their
    parameters join the optimizer. The teacher is never updated: it stays in ``eval()``
    and runs under ``torch.no_grad()``. ``check_values``: as in :func:`fit`.
    """
    checks.model(teacher, "teacher")
    if teacher is student:
        raise ValueError("teacher and student are the same object; pass a separate model "
                         "(e.g. a copy.deepcopy) to distil a network into itself.")
    checks.model(student, "student")
    if _shares_parameters(teacher, student):
        raise ValueError("teacher and student share parameters (e.g. copy.copy(student) or "
                         "a layer used in both): training the student would change the "
                         "teacher. Give the student its own weights, e.g. copy.deepcopy(teacher).")
    epochs, lr = check_run(epochs=epochs, lr=lr, seed=seed)
    torch.manual_seed(seed)  # dropout masks; the loader has its own seeded generator
    loader = loader_for(data, batch_size=batch_size, seed=seed, jitter=jitter, device=device)
    device = loader.device
    student_features = check_names(student, student_features)
    teacher_features = check_names(teacher, teacher_features)
    extra_modules = list(extra_modules)
    for m in (student, teacher, *extra_modules):
        m.to(device)
    teacher.eval()
    teacher_out = _TeacherOutputs(teacher, loader, teacher_features, amp)
    checked = _value_checks(check_values, device, own_loss=loss is None)
    if loss is None:
        def loss(o: Outputs) -> torch.Tensor:
            s_logits, targets = per_position(o.student_logits, o.targets)
            t_logits, _ = per_position(o.teacher_logits, o.targets)
            return kd_loss(s_logits, t_logits, targets, T=T, alpha=alpha)
    forward = torch.compile(student) if compile else student
    params = [p for m in (student, *extra_modules) for p in m.parameters()]
    opt = make_optimizer(params, optimizer, lr, weight_decay, device)
    sched = make_scheduler(opt, schedule, epochs)

    def step(x, y, idx):
        t_logits, t_feats = teacher_out(x, idx)
        with record(student, student_features) as s_feats, autocast(device, amp), \
                losses.value_checks(checked):
            s_logits = forward(x)
            value = loss(Outputs(s_logits.float(), t_logits, y, dict(s_feats), t_feats, x, idx))
        _train_step(opt, value)
        return _loss_and_accuracy(value, s_logits, y)

    return run_epochs(step, loader, epochs=epochs, modules=[student, *extra_modules],
                      schedulers=[sched], evaluate=_eval_accuracy(student, eval_data, device),
                      progress=progress, desc=f"distill {type(student).__name__}")

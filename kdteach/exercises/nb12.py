"""Self-checks for notebook 12, distillation at scale: looking cached teacher outputs up by
example index in a shuffled, sharded order (12.1), the bytes a top-k cache takes per example
(12.2), and counting the teacher forward passes a cache saves (12.3).
"""
from __future__ import annotations

import numbers

import torch

from .feedback import feedback, is_unanswered, not_attempted

#: Exercise 12.2: the k and the two vocabularies asked about.
TOPK_K = 20
TOPK_VOCABS = (32_000, 128_000)


def _topk_bytes(classes: int, k: int, *, value=2, index=None, rest=4, example_index=0) -> int:
    if index is None:
        index = 2 if classes <= 32_767 else 4
    return k * (value + index) + rest + example_index


def _whole_number(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, numbers.Integral):
        return True
    return isinstance(value, numbers.Real) and float(value).is_integer()


def _topk_bytes_hint(given: int, classes: int, k: int) -> str:
    """What a wrong number of bytes for one vocabulary most likely counted."""
    right = _topk_bytes(classes, k)
    small = classes <= 32_767
    candidates = [
        (_topk_bytes(classes, k, index=8), "you counted the class indices as int64 (8 bytes); "
         "the cache stores int16 for up to 32,767 classes and int32 above"),
        (_topk_bytes(classes, k, index=4) if small else None,
         f"{classes:,} classes fit in int16 (at most 32,767): 2 bytes per index, not 4 (and "
         "if it was the values you counted as 4 bytes: they are float16, 2 bytes)"),
        (_topk_bytes(classes, k, index=2) if not small else None,
         f"{classes:,} classes do not fit in int16 (at most 32,767): the indices are int32, "
         "4 bytes each"),
        (_topk_bytes(classes, k, value=4), "the values are half precision (float16): 2 bytes "
         "each, not 4"),
        (_topk_bytes(classes, k, rest=0), "add the 4-byte float32 'rest' (the probability "
         "mass outside the top k), stored once per example"),
        (_topk_bytes(classes, k, example_index=8), "leave out the 8-byte example index "
         "(the question counts values, class indices and the rest)"),
        (k * 2 + 4, "each of the k entries has a class index as well as a value"),
        (2 * classes, "that is a full-logit row (2 bytes per class); a top-k cache keeps only k "
         "entries per example"),
        (4 * classes, "that is a full-logit row in float32; a top-k cache keeps only k entries"),
    ]
    for value, hint in candidates:
        if value is not None and given == value and value != right:
            return hint
    return (f"expected k·(value bytes + index bytes) + rest bytes, with float16 values, int16 "
            f"or int32 indices and a float32 rest; got {given:,}")


def check_topk_bytes(answer) -> bool:
    """Exercise 12.2: the bytes one example takes in a top-k cache with ``k = 20`` (values,
    class indices and the rest; not the int64 example index), for a 32,000-token and a
    128,000-token vocabulary: ``answer = (bytes_at_32000, bytes_at_128000)``."""
    if is_unanswered(answer):
        return not_attempted("set `answer = (bytes per example at V = 32,000, at V = 128,000)`, "
                             "two whole numbers.")
    if isinstance(answer, dict):
        answer = tuple(answer.get(v) for v in TOPK_VOCABS)
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return feedback(False, "answer must be a pair of numbers: (bytes at V = 32,000, bytes at "
                        f"V = 128,000), got {type(answer).__name__}.")
    if not all(_whole_number(a) for a in answer):
        return feedback(False, f"both entries must be whole numbers of bytes, got {answer!r}.")
    given = [int(float(a.item() if isinstance(a, torch.Tensor) else a)) for a in answer]
    right = [_topk_bytes(v, TOPK_K) for v in TOPK_VOCABS]
    if given == right:
        return feedback(True, f"Right: {right[0]} and {right[1]} bytes — 20 × (2 + 2) + 4 with "
                        "int16 class indices, 20 × (2 + 4) + 4 once the vocabulary outgrows "
                        "int16. Full logits would take 64,000 and 256,000.")
    if given == right[::-1]:
        return feedback(False, "Swapped: the first entry is V = 32,000 (int16 indices), the "
                        "second V = 128,000 (int32 indices).")
    for value, classes, ok in zip(given, TOPK_VOCABS, right):
        if value != ok:
            return feedback(False, f"V = {classes:,}: {_topk_bytes_hint(value, classes, TOPK_K)}.")
    return feedback(False, "Not quite.")  # unreachable: some entry differs


def _probe_loader():
    """A tiny shuffled, sharded order (rank 1 of 2) and a table of 'teacher outputs' whose
    row i holds i in every column, so a row tells which example it belongs to."""
    from ..data import DeviceLoader, Split

    n, v, batch = 40, 5, 4
    images = torch.zeros(n, 1, 2, 2)
    labels = torch.arange(n) % 3
    loader = DeviceLoader(Split(images, labels), batch, seed=3, rank=1, world_size=2)
    cached = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, v) + torch.arange(v) / 10
    return loader, cached, batch


def check_cache_lookup(fn) -> bool:
    """Exercise 12.1: ``fn(cached, idx, step, batch_size)`` returns the rows of ``cached``
    (N, V) — teacher outputs stored in dataset order — that belong to the batch a shuffled,
    sharded loader yielded at step ``step`` (0-based) with example indices ``idx``."""
    if is_unanswered(fn):
        return not_attempted("define `teacher_rows(cached, idx, step, batch_size)` and set "
                             "`answer = teacher_rows`.")
    if not callable(fn):
        return feedback(False, f"answer must be a function teacher_rows(cached, idx, step, "
                        f"batch_size), got {type(fn).__name__}.")
    loader, cached, batch = _probe_loader()
    for step, (_, _, idx) in enumerate(loader.batches()):
        try:
            rows = fn(cached.clone(), idx.clone(), step, batch)
        except Exception as err:  # noqa: BLE001 — a learner's bug is reported, not raised
            return feedback(False, f"teacher_rows raised {type(err).__name__}: {err}")
        try:
            rows = torch.as_tensor(rows, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            return feedback(False, f"teacher_rows must return a tensor of rows, got "
                            f"{type(rows).__name__}.")
        right = cached[idx]
        if rows.shape != right.shape:
            return feedback(False, f"step {step}: expected {tuple(right.shape)} (one row per "
                            f"example of the batch), got {tuple(rows.shape)}.")
        if torch.equal(rows, right):
            continue
        if torch.equal(rows, cached[step * batch:(step + 1) * batch]):
            return feedback(False, "You took the rows by the batch's position in the epoch. The "
                            "loader shuffles every epoch and this rank sees only its share of "
                            "each global batch, so position says nothing about which examples "
                            "came: look them up by the example indices `idx`.")
        if torch.equal(rows.sort(0).values, right.sort(0).values):
            return feedback(False, "The right rows in the wrong order: keep the order of `idx`, "
                            "so row j pairs with the student's output for example idx[j].")
        return feedback(False, f"step {step}: these are not the batch's rows; row j must be "
                        "cached[idx[j]].")
    return feedback(True, "Right: cached[idx] — looked up by example index, the batch's rows "
                    "stay aligned whatever the shuffle and whichever rank draws them.")


#: Exercise 12.3's sweep: examples, epochs, runs (arms × seeds); inputs are not augmented.
SWEEP = {"examples": 60_000, "epochs": 30, "runs": 12}


def check_teacher_passes(answer) -> bool:
    """Exercise 12.3: teacher forward passes (one per example) of :data:`SWEEP`'s runs
    ``(a, b, c)``: (a) the teacher run on every batch, (b) its outputs computed once per
    run and kept in memory, (c) a cache on disk written once and read by every run."""
    if is_unanswered(answer):
        return not_attempted("set `answer = (every batch, once per run, once on disk)`, three "
                             "numbers of teacher forward passes.")
    if not isinstance(answer, (tuple, list)) or len(answer) != 3:
        return feedback(False, "answer must be three numbers: (every batch, once per run, once "
                        f"on disk), got {type(answer).__name__}.")
    if not all(_whole_number(a) for a in answer):
        return feedback(False, f"all three must be whole numbers of forward passes, got "
                        f"{answer!r}.")
    a, b, c = (int(float(x.item() if isinstance(x, torch.Tensor) else x)) for x in answer)
    n, e, r = SWEEP["examples"], SWEEP["epochs"], SWEEP["runs"]
    right = (n * e * r, n * r, n)
    if (a, b, c) == right:
        return feedback(True, f"Right: {right[0]:,}, {right[1]:,} and {right[2]:,} — the disk "
                        f"cache runs the teacher {right[0] // right[2]:,} times less than running "
                        "it on every batch, and the saving grows with every run that reads it.")
    if a != right[0]:
        if a == n * e:
            return feedback(False, "(a) counts one run only; the sweep has "
                            f"{r} runs, each running the teacher on every batch of every epoch.")
        if a == n * r:
            return feedback(False, "(a): on every batch means once per example per epoch, "
                            f"in each of the {r} runs.")
        return feedback(False, "(a): examples × epochs × runs.")
    if b != right[1]:
        if b == n * e:
            return feedback(False, "(b): kept in memory, the outputs are computed once per run "
                            "(before the first epoch), not once per epoch.")
        if b == n:
            return feedback(False, "(b): memory does not outlive a run; each of the runs "
                            "computes the outputs again.")
        return feedback(False, "(b): examples × runs.")
    if c == n * r:
        return feedback(False, "(c): the file is written once and every run reads it: the "
                        "teacher runs once per example in all.")
    return feedback(False, "(c): once per example, whatever the epochs and runs.")

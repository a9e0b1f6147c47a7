"""Self-checks of notebook 12 (distillation at scale): right answers pass, the usual mistakes
get their hint, and the answers agree with the library."""
from __future__ import annotations

import pytest
import torch

from kdteach import teacher_cache
from kdteach.exercises import nb12 as exercises


# --- 12.2 bytes per example of a top-k cache ---------------------------------------------------

def test_topk_bytes_right(says):
    says(exercises.check_topk_bytes((84, 124)), True, "84", "124")


def test_topk_bytes_right_answer_is_the_librarys():
    assert [teacher_cache.bytes_per_example("topk", v, exercises.TOPK_K)
            for v in exercises.TOPK_VOCABS] == [84, 124]


@pytest.mark.parametrize("answer, hint", [
    ((204, 204), "int64"), ((124, 124), "fit in int16"), ((84, 84), "do not fit in int16"),
    ((80, 120), "rest"), ((92, 132), "example index"), ((84, 164), "float16"),
    ((44, 44), "class index as well"), ((64_000, 256_000), "full-logit"),
    ((128_000, 512_000), "float32"), ((124, 84), "swapped"), ((85, 124), "expected k"),
    ((84.5, 124), "whole numbers"), (("84", 124), "whole numbers"), (84, "pair"),
    ((1, 2, 3), "pair"), (None, "not answered"),
])
def test_topk_bytes_mistakes(says, answer, hint):
    says(exercises.check_topk_bytes(answer), False, hint)


def test_topk_bytes_accepts_tensors_floats_and_a_dict(says):
    says(exercises.check_topk_bytes((torch.tensor(84), 124.0)), True, "right")
    says(exercises.check_topk_bytes({32_000: 84, 128_000: 124}), True, "right")


# --- 12.1 looking cached outputs up by example index -------------------------------------------

def test_cache_lookup_right(says):
    says(exercises.check_cache_lookup(lambda cached, idx, step, b: cached[idx]), True, "index")


@pytest.mark.parametrize("fn, hint", [
    (lambda cached, idx, step, b: cached[step * b:(step + 1) * b], "position in the epoch"),
    (lambda cached, idx, step, b: cached[idx.sort().values], "wrong order"),
    (lambda cached, idx, step, b: cached[idx + 1], "not the batch's rows"),
    (lambda cached, idx, step, b: cached[idx][:, :2], "expected"),
    (lambda cached, idx, step, b: 1 / 0, "ZeroDivisionError"),
    (lambda cached, idx, step, b: "rows", "tensor"),
    (42, "function"), (None, "not answered"),
])
def test_cache_lookup_mistakes(says, fn, hint):
    says(exercises.check_cache_lookup(fn), False, hint)


def test_cache_lookup_probe_is_shuffled_so_position_differs_from_index():
    loader, cached, batch = exercises._probe_loader()
    _, _, idx = next(iter(loader.batches()))
    assert not torch.equal(idx, torch.arange(batch))


def test_cache_lookup_numpy_rows_are_accepted(says):
    says(exercises.check_cache_lookup(lambda cached, idx, step, b: cached.numpy()[idx.numpy()]),
         True, "right")


# --- 12.3 teacher forward passes --------------------------------------------------------------

N, E, R = (exercises.SWEEP[k] for k in ("examples", "epochs", "runs"))


def test_teacher_passes_right(says):
    says(exercises.check_teacher_passes((N * E * R, N * R, N)), True, "21,600,000")


@pytest.mark.parametrize("answer, hint", [
    ((N * E, N * R, N), "one run only"), ((N * R, N * R, N), "once per example per epoch"),
    ((N * E * R + 1, N * R, N), "examples × epochs × runs"),
    ((N * E * R, N * E, N), "once per run"), ((N * E * R, N, N), "does not outlive"),
    ((N * E * R, N * R + 1, N), "examples × runs"), ((N * E * R, N * R, N * R), "written once"),
    ((N * E * R, N * R, N + 1), "once per example"), ((1.5, 2, 3), "whole numbers"),
    ((1, 2), "three numbers"), ("many", "three numbers"), (None, "not answered"),
])
def test_teacher_passes_mistakes(says, answer, hint):
    says(exercises.check_teacher_passes(answer), False, hint)

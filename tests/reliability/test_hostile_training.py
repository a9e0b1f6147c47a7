"""Careless use of the training API: nothing runs on silently as NaN, bad sizes and types get
a message that names the argument and the fix, and a teacher never shares the student's
weights."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from kdteach import models, online, train
from kdteach.data import DeviceLoader, Split

CPU = torch.device("cpu")


def tiny(n: int = 64, seed: int = 0) -> Split:
    gen = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen))


def mlp():
    return models.MLP((784, 8, 10))


# -- non-finite training stops at once, naming the epoch and the step ---------------------

def test_a_loss_that_returns_nan_stops_fit_at_the_first_step():
    calls = []

    def nan_loss(logits, targets):
        calls.append(1)
        return (logits * float("nan")).mean()

    with pytest.raises(FloatingPointError, match=r"epoch 1, step 1\b.*learning rate"):
        train.fit(mlp(), tiny(), loss=nan_loss, epochs=3, batch_size=16, device=CPU, progress=False)
    assert len(calls) == 1  # it did not run on through the other steps and epochs


def test_a_loss_that_turns_nan_later_names_that_step():
    steps = []

    def late_nan(o):
        steps.append(1)
        value = o.student_logits.logsumexp(1).mean()
        return value * float("inf") if len(steps) == 6 else value

    teacher = mlp()
    with pytest.raises(FloatingPointError, match=r"epoch 2, step 2\b"):
        train.distill(mlp(), teacher, tiny(), late_nan, epochs=3, batch_size=16, device=CPU,
                      progress=False)


def test_nan_images_are_refused_before_training():
    data = tiny()
    data.images[3, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="images contain 1 NaN or infinite"):
        train.fit(mlp(), data, epochs=1, device=CPU, progress=False)


@pytest.mark.parametrize("lr, error", [(float("inf"), ValueError), (float("nan"), ValueError),
                                       (True, TypeError), ("1e-3", TypeError)])
def test_learning_rates_that_are_not_finite_positive_numbers_are_refused(lr, error):
    with pytest.raises(error, match=r"\blr must be"):
        train.fit(mlp(), tiny(), lr=lr, epochs=1, device=CPU, progress=False)


def test_mutual_learning_stops_on_nan_too():
    data = tiny()
    data.images[:] = 1e30  # finite inputs whose activations overflow
    peers = [mlp(), mlp()]
    with torch.no_grad():
        for p in peers:
            p.fc1.weight.fill_(1e30)
    # dml_loss's own value check (on by default) or the loop's, whichever sees it first
    with pytest.raises((FloatingPointError, ValueError), match="NaN"):
        online.mutual_learning(peers, data, epochs=2, batch_size=16, device=CPU, progress=False)
    with pytest.raises(ValueError, match=r"\blr must be"):
        online.mutual_learning([mlp(), mlp()], tiny(), lr=float("inf"), epochs=1, device=CPU,
                               progress=False)


# -- sizes and types --------------------------------------------------------------------

def test_an_empty_dataset_is_refused():
    empty = Split(torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="data is empty"):
        train.fit(mlp(), empty, epochs=1, device=CPU, progress=False)


def test_drop_last_with_a_batch_larger_than_the_data_is_refused():
    with pytest.raises(ValueError, match="batch_size=128 is larger than the 64 examples"):
        DeviceLoader(tiny(), 128, drop_last=True)


@pytest.mark.parametrize("batch_size", [0, -5, 2.5])
@pytest.mark.parametrize("function", [train.evaluate, train.predict])
def test_evaluate_and_predict_refuse_bad_batch_sizes(function, batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        function(mlp(), tiny(), batch_size=batch_size)


def test_numpy_pairs_get_a_message_with_the_conversion():
    data = tiny()
    pair = (data.images.numpy(), data.labels.numpy())
    with pytest.raises(TypeError, match=r"images must be a torch.Tensor.*torch.from_numpy"):
        train.fit(mlp(), pair, epochs=1, device=CPU, progress=False)
    with pytest.raises(TypeError, match=r"torch.from_numpy"):
        train.evaluate(mlp(), pair)


def test_numpy_scalars_are_accepted_as_the_numbers_they_are():
    history = train.fit(mlp(), tiny(), epochs=np.int64(1), lr=np.float64(1e-3),
                        batch_size=np.int32(16), device=CPU, progress=False)
    assert len(history) == 1


@pytest.mark.parametrize("bad_label", [10, 255])
def test_labels_out_of_range_are_explained_by_fit_and_evaluate(bad_label):
    data = tiny()
    data.labels[7] = bad_label
    with pytest.raises(ValueError, match=rf"labels up to {bad_label}.*10 classes"):
        train.fit(mlp(), data, epochs=1, device=CPU, progress=False)
    with pytest.raises(ValueError, match=rf"labels up to {bad_label}"):
        train.evaluate(mlp(), data)


def test_negative_labels_are_refused():
    data = tiny()
    data.labels[0] = -1
    with pytest.raises(ValueError, match="class indices >= 0"):
        train.fit(mlp(), data, epochs=1, device=CPU, progress=False)


# -- a teacher that shares the student's weights --------------------------------------------

def test_a_shallow_copy_of_the_student_is_refused_as_teacher():
    student = mlp()
    teacher = copy.copy(student)
    before = student.fc1.weight.detach().clone()
    with pytest.raises(ValueError, match="share parameters"):
        train.distill(student, teacher, tiny(), epochs=1, device=CPU, progress=False)
    assert torch.equal(student.fc1.weight, before)  # refused before any step


def test_a_teacher_with_a_tied_layer_is_refused():
    student, teacher = mlp(), mlp()
    teacher.fc1.weight = student.fc1.weight
    with pytest.raises(ValueError, match="share parameters"):
        train.distill(student, teacher, tiny(), epochs=1, device=CPU, progress=False)


def test_a_deep_copy_is_a_valid_teacher():
    student = mlp()
    history = train.distill(student, copy.deepcopy(student), tiny(), epochs=1, device=CPU,
                            progress=False)
    assert len(history) == 1

"""kdteach.zoo: profile-sized datasets and the cached MNIST teacher."""
from __future__ import annotations

import pytest
import torch

from kdteach import config, train, zoo

# A smaller profile than "quick", so the real teacher trains in seconds on a CPU.
TINY = config.Profile("tiny", train_size=2000, test_size=1000, teacher_epochs=1,
                      student_epochs=1, batch_size=128, seeds=1)


@pytest.fixture(autouse=True)
def on_cpu(monkeypatch):
    monkeypatch.setenv("KDTEACH_DEVICE", "cpu")


def _check_split(split, n):
    assert len(split) == n == len(split.images)
    assert split.images.shape == (n, 1, 28, 28) and split.images.dtype == torch.float32
    assert split.labels.dtype == torch.int64
    assert split.images.device.type == "cpu" and split.labels.device.type == "cpu"
    counts = torch.bincount(split.labels, minlength=10)
    assert len(counts) == 10 and counts.min() >= n // 10 - n // 20  # stratified: every digit


def test_dataset_follows_the_active_profile(monkeypatch):
    monkeypatch.setenv("KDTEACH_PROFILE", "quick")
    train_set, test_set = zoo.dataset("mnist")
    _check_split(train_set, config.QUICK.train_size)
    _check_split(test_set, config.QUICK.test_size)


@pytest.fixture(scope="module")
def tiny_mnist():
    return zoo.dataset("mnist", TINY, device="cpu")


def test_dataset_with_an_explicit_profile(tiny_mnist):
    train_set, test_set = tiny_mnist
    _check_split(train_set, TINY.train_size)
    _check_split(test_set, TINY.test_size)
    # The two splits are different images.
    assert not torch.equal(train_set.images[:10], test_set.images[:10])


def test_fashion_dataset():
    train_set, test_set = zoo.dataset("fashion", TINY)
    _check_split(train_set, TINY.train_size)
    _check_split(test_set, TINY.test_size)


def test_dataset_seed_picks_the_subset(tiny_mnist):
    other, _ = zoo.dataset("mnist", TINY, seed=1)
    assert not torch.equal(tiny_mnist[0].images, other.images)


def test_mnist_teacher_trains_once_then_loads(monkeypatch, tmp_path, capsys, tiny_mnist):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path))
    teacher = zoo.mnist_teacher(profile=TINY)
    assert "Training mnist_teacher-tiny-seed0" in capsys.readouterr().out
    assert len(list(tmp_path.glob("mnist_teacher-tiny-seed0-*.pt"))) == 1
    assert not teacher.training
    assert teacher.sizes == (784, 1200, 1200, 10)

    def no_training(*args, **kwargs):
        raise AssertionError("the cached teacher must not be trained again")

    monkeypatch.setattr(train, "fit", no_training)
    again = zoo.mnist_teacher(profile=TINY)
    assert "Loaded mnist_teacher-tiny-seed0" in capsys.readouterr().out
    for (k, v), (k2, v2) in zip(teacher.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)

    # One epoch on 2,000 images: far above chance (0.1) on held-out test images, though
    # short of the > 0.9 of the quick profile's teacher (minutes to train on a CPU).
    assert train.evaluate(again, tiny_mnist[1]).accuracy > 0.6

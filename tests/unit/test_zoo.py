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


# -- the shipped language-model teacher --------------------------------------------------

@pytest.fixture
def tiny_shakespeare(tmp_path, monkeypatch):
    """A data folder holding the text only, a fresh cache, and a recipe that trains in a second."""
    import shutil
    (tmp_path / "data" / "TinyShakespeare").mkdir(parents=True)
    shutil.copy(config.project_root() / "data" / "TinyShakespeare" / "input.txt",
                tmp_path / "data" / "TinyShakespeare" / "input.txt")
    monkeypatch.setenv("KDTEACH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_PROFILE", "quick")
    tiny = {**zoo.SHAKESPEARE_RECIPES["quick"], "n_layer": 1, "n_head": 2, "n_embd": 16,
            "block_size": 16, "batch_size": 4, "steps_per_epoch": 2, "epochs": 1}
    monkeypatch.setitem(zoo.SHAKESPEARE_RECIPES, "quick", tiny)
    return tmp_path


def _ship(model, recipe):
    import json
    from kdteach import cache, data
    path = zoo.shipped_teacher_path("quick")
    cache.save(model, path, recipe)
    path.with_suffix(".json").write_text(json.dumps({"sha256": data.file_sha256(path)}))
    return path


def test_shipped_teacher_is_loaded_when_its_sha256_matches(tiny_shakespeare, recwarn):
    from kdteach import text
    vocab, _, _ = text.corpus("cpu")
    made = zoo.build_shakespeare_teacher(len(vocab))
    with torch.no_grad():
        made.head.weight.add_(1.0)  # weights no fresh build has: they must come from the file
    _ship(made, zoo.SHAKESPEARE_RECIPES["quick"])
    got = zoo.shakespeare_teacher()
    assert not got.training and not [w for w in recwarn if "teacher" in str(w.message)]
    assert all(torch.equal(a, b) for a, b in zip(got.state_dict().values(), made.state_dict().values()))


def test_missing_or_corrupt_shipped_teacher_is_retrained_with_a_warning(tiny_shakespeare):
    from kdteach import text
    with pytest.warns(UserWarning, match="missing or unreadable.*git checkout"):
        zoo.shakespeare_teacher()
    vocab, _, _ = text.corpus("cpu")
    path = _ship(zoo.build_shakespeare_teacher(len(vocab)), zoo.SHAKESPEARE_RECIPES["quick"])
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="does not match the sha256"):
        model = zoo.shakespeare_teacher()
    assert not model.training


def test_shipped_teacher_of_another_recipe_is_not_loaded(tiny_shakespeare):
    from kdteach import text
    vocab, _, _ = text.corpus("cpu")
    _ship(zoo.build_shakespeare_teacher(len(vocab)), {**zoo.SHAKESPEARE_RECIPES["quick"], "lr": 1.0})
    with pytest.warns(UserWarning, match="another recipe"):
        zoo.shakespeare_teacher()

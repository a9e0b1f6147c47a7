"""kdteach.cache: round trips, keys, corrupt / stale / unsafe files, atomic saves (concurrent writers: tests/reliability)."""
from __future__ import annotations

import json
import multiprocessing
import warnings

import pytest
import torch
from torch import nn

from kdteach import cache

RECIPE = {"data": "synthetic", "epochs": 1, "seed": 0}


def build() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


class Trainer:
    """A stand-in for training: counts calls and moves every weight by +1."""

    def __init__(self):
        self.calls = 0
        self.received: list[dict] = []

    def __call__(self, model: nn.Module) -> None:
        self.calls += 1
        self.received.append({k: v.clone() for k, v in model.state_dict().items()})
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def temp_files(directory) -> list:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def trained_expected() -> dict:
    model = build()
    Trainer()(model)
    return weights(model)


# -- round trip and keys -------------------------------------------------------------

def test_round_trip_trains_once_then_loads(tmp_path, capsys):
    first = Trainer()
    a = cache.trained("toy", RECIPE, build, first, directory=tmp_path)
    assert first.calls == 1
    assert "Training toy" in capsys.readouterr().out
    assert cache.path_for("toy", RECIPE, tmp_path).is_file()

    second = Trainer()
    b = cache.trained("toy", RECIPE, build, second, directory=tmp_path)
    assert second.calls == 0
    assert "Loaded toy" in capsys.readouterr().out
    assert same(weights(a), weights(b))
    assert same(weights(b), trained_expected())  # the trained weights, not a fresh build
    assert not a.training and not b.training  # returned in eval() mode


def test_uses_the_configured_cache_dir_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "elsewhere"))
    path = cache.path_for("toy", RECIPE)
    assert path.parent == tmp_path / "elsewhere"
    cache.trained("toy", RECIPE, build, Trainer(), verbose=False)
    assert path.is_file()


def test_verbose_false_prints_nothing(tmp_path, capsys):
    cache.trained("toy", RECIPE, build, Trainer(), directory=tmp_path, verbose=False)
    cache.trained("toy", RECIPE, build, Trainer(), directory=tmp_path, verbose=False)
    assert capsys.readouterr().out == ""


def test_recipe_change_gives_a_different_path(tmp_path):
    base = cache.path_for("toy", RECIPE, tmp_path)
    assert cache.path_for("toy", {**RECIPE, "epochs": 2}, tmp_path) != base
    assert cache.path_for("toy", {**RECIPE, "extra": None}, tmp_path) != base
    assert cache.path_for("other", RECIPE, tmp_path) != base
    # Key order does not matter.
    assert cache.path_for("toy", dict(reversed(list(RECIPE.items()))), tmp_path) == base
    assert base.name.startswith("toy-") and base.suffix == ".pt"


def test_recipe_change_retrains(tmp_path):
    cache.trained("toy", RECIPE, build, Trainer(), directory=tmp_path)
    again = Trainer()
    cache.trained("toy", {**RECIPE, "epochs": 2}, build, again, directory=tmp_path)
    assert again.calls == 1
    assert len(list(tmp_path.glob("toy-*.pt"))) == 2


def test_unserialisable_recipe_raises():
    with pytest.raises(TypeError, match="JSON"):
        cache.recipe_key({"device": torch.device("cpu")})


# -- bad files are retrained ------------------------------------------------------------

def test_corrupt_file_warns_and_retrains(tmp_path):
    path = cache.path_for("toy", RECIPE, tmp_path)
    path.write_bytes(b"\x00garbage, not a torch file\xff" * 10)
    trainer = Trainer()
    with pytest.warns(UserWarning, match="Ignoring cached model"):
        model = cache.trained("toy", RECIPE, build, trainer, directory=tmp_path)
    assert trainer.calls == 1
    assert same(weights(model), trained_expected())
    assert cache.load_into(build(), path, RECIPE)  # replaced by a good file


def test_truncated_file_warns_and_retrains(tmp_path):
    path = cache.save(build(), cache.path_for("toy", RECIPE, tmp_path), RECIPE)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    trainer = Trainer()
    with pytest.warns(UserWarning, match="Ignoring"):
        cache.trained("toy", RECIPE, build, trainer, directory=tmp_path)
    assert trainer.calls == 1


def test_stale_recipe_warns_and_retrains(tmp_path):
    path = cache.path_for("toy", RECIPE, tmp_path)
    old = build()
    with torch.no_grad():
        old[0].weight.fill_(7.0)
    cache.save(old, path, {**RECIPE, "epochs": 99})  # right path, someone else's recipe
    trainer = Trainer()
    with pytest.warns(UserWarning, match="different recipe"):
        model = cache.trained("toy", RECIPE, build, trainer, directory=tmp_path)
    assert trainer.calls == 1
    assert same(weights(model), trained_expected())


def test_file_for_another_architecture_retrains_from_a_fresh_model(tmp_path):
    """Same recipe, weights that do not fit: nothing of them may leak into the model."""
    path = cache.path_for("toy", RECIPE, tmp_path)
    other = nn.Sequential(nn.Linear(4, 3))  # shares the keys 0.weight / 0.bias only
    with torch.no_grad():
        other[0].weight.fill_(5.0)
        other[0].bias.fill_(5.0)
    cache.save(other, path, RECIPE)
    trainer = Trainer()
    with pytest.warns(UserWarning, match="Ignoring"):
        cache.trained("toy", RECIPE, build, trainer, directory=tmp_path)
    assert trainer.calls == 1
    assert same(trainer.received[0], weights(build()))


def test_missing_file_is_not_loaded(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load_into(build(), tmp_path / "absent.pt", RECIPE) is False


class _Payload:
    """Runs ``_mark`` if anyone unpickles it: weights_only loading must refuse it."""

    def __reduce__(self):
        return (_mark, ())


UNPICKLED: list[int] = []


def _mark():
    UNPICKLED.append(1)
    return "ran"


def test_arbitrary_pickled_objects_are_refused(tmp_path):
    path = cache.path_for("toy", RECIPE, tmp_path)
    good = build()
    torch.save({"recipe": json.dumps(RECIPE, sort_keys=True),
                "state_dict": good.state_dict(), "payload": _Payload()}, path)
    trainer = Trainer()
    with pytest.warns(UserWarning, match="Ignoring cached model"):
        cache.trained("toy", RECIPE, build, trainer, directory=tmp_path)
    assert UNPICKLED == []  # never executed
    assert trainer.calls == 1


# -- atomic saves ------------------------------------------------------------------------

def test_save_leaves_no_temp_files(tmp_path):
    path = cache.save(build(), tmp_path / "sub" / "m.pt", RECIPE)
    assert path == tmp_path / "sub" / "m.pt"
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]
    blob = torch.load(path, weights_only=True)
    assert json.loads(blob["recipe"]) == RECIPE
    assert same(blob["state_dict"], weights(build()))


def test_crash_during_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    cache.save(build(), path, RECIPE)
    before = path.read_bytes()

    def crash(obj, f, *args, **kwargs):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    newer = build()
    with torch.no_grad():
        newer[0].weight.fill_(3.0)
    with pytest.raises(OSError, match="disk full"):
        cache.save(newer, path, RECIPE)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert cache.load_into(model, path, RECIPE)
    assert same(weights(model), weights(build()))

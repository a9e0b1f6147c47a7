"""A trained teacher is never thrown away because the cache cannot be written, and
processes writing one cache file at once never leave a torn file for a reader."""
from __future__ import annotations

import multiprocessing
import os
import time
import warnings

import pytest
import torch
from torch import nn

from kdteach import cache

RECIPE = {"what": "reliability test", "seed": 0}


def build() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def trainer(calls: list):
    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.weight.fill_(0.5)  # "minutes of training"
    return train


def test_a_cache_folder_that_is_a_file_keeps_the_model_and_warns_once(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    calls = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = cache.trained("m", RECIPE, build, trainer(calls), directory=blocker, verbose=False)
        second = cache.trained("n", RECIPE, build, trainer(calls), directory=blocker, verbose=False)
    assert torch.all(first.weight == 0.5) and torch.all(second.weight == 0.5)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "KDTEACH_CACHE" in messages[0] and str(blocker) in messages[0]
    assert blocker.read_text() == "not a folder"


def test_a_failing_save_keeps_the_model(tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "save", full_disk)
    with pytest.warns(UserWarning, match="No space left on device.*KDTEACH_CACHE"):
        model = cache.trained("m", RECIPE, build, trainer([]), directory=tmp_path / "c2",
                              verbose=False)
    assert torch.all(model.weight == 0.5)


def test_an_interrupted_save_leaves_no_temporary_for_long(tmp_path):
    path = cache.path_for("m", RECIPE, tmp_path)
    tmp_path.mkdir(exist_ok=True)
    stale = path.with_name(path.name + ".k3j4h5g6.tmp")
    stale.write_bytes(b"half a model")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    cache.save(build(), path, RECIPE)
    assert path.is_file() and not stale.exists()


def temp_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _writer(path: str, value: float, times: int, start=None) -> None:
    """Child process: save a model filled with ``value`` to ``path`` many times."""
    model = nn.Linear(256, 256)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    if start is not None:
        start.wait(timeout=60)  # begin together with the reader (after the slow imports)
    for _ in range(times):
        cache.save(model, path, RECIPE)


def test_concurrent_writers_never_show_a_torn_file(tmp_path):
    path = tmp_path / "shared.pt"
    _writer(str(path), 0.0, 1)  # so the reader always has a file
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(3)
    procs = [ctx.Process(target=_writer, args=(str(path), float(v), 20, start))
             for v in (1, 2)]
    for p in procs:
        p.start()
    seen, reads = set(), 0
    model = nn.Linear(256, 256)
    try:
        start.wait(timeout=60)
        while reads < 20 or any(p.is_alive() for p in procs):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a warning means an unreadable file
                assert cache.load_into(model, path, RECIPE)
            values = model.weight.detach().unique()
            assert len(values) == 1 and torch.equal(model.bias.detach().unique(), values)
            seen.add(float(values))
            reads += 1
    finally:
        for p in procs:
            p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert seen <= {0.0, 1.0, 2.0} and reads >= 20
    assert cache.load_into(model, path, RECIPE) and float(model.weight.detach()[0, 0]) in (1.0, 2.0)
    assert temp_files(tmp_path) == []

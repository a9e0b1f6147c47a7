"""kdteach.text: the shipped Tiny Shakespeare, its vocabulary, split and token windows."""
from __future__ import annotations

import os
import shutil

import pytest
import torch

from kdteach import config, text, train
from kdteach.data import DataFileError
from kdteach.text import Vocabulary, WindowLoader

N_CHARS = 1_115_394


@pytest.fixture(scope="module")
def corpus():
    return text.corpus("cpu")


@pytest.fixture
def text_copy(tmp_path):
    """A private copy of data/TinyShakespeare to damage freely; returns the data root."""
    (tmp_path / "TinyShakespeare").mkdir()
    shutil.copyfile(text.path(), tmp_path / text.FILE)  # not copy2: the original may be read-only
    return tmp_path


# -- the shipped file ---------------------------------------------------------------

def test_shipped_text_passes_its_checksum():
    s = text.load_text()
    assert len(s) == N_CHARS and s.startswith("First Citizen:\n")
    assert text.path() == config.data_dir() / "TinyShakespeare" / "input.txt"


def test_corrupt_file_is_named_with_the_fix(text_copy):
    file = text_copy / text.FILE
    raw = bytearray(file.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    file.write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match="corrupt") as info:
        text.load_text(text_copy)
    assert str(file) in str(info.value) and "git checkout -- data/TinyShakespeare/input.txt" \
        in str(info.value)


def test_missing_file_is_named_with_the_fix(tmp_path):
    with pytest.raises(DataFileError, match="missing") as info:
        text.load_text(tmp_path)
    assert str(tmp_path / text.FILE) in str(info.value) and "git checkout" in str(info.value)


def test_a_file_that_changes_after_passing_is_checked_again(text_copy):
    file = text_copy / text.FILE
    assert len(text.load_text(text_copy)) == N_CHARS  # passes, and is remembered
    raw = bytearray(file.read_bytes())
    raw[0] ^= 0x01  # same size, new contents
    file.write_bytes(bytes(raw))
    st = file.stat()
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(DataFileError, match="corrupt"):
        text.load_text(text_copy)


# -- the vocabulary -----------------------------------------------------------------

def test_vocabulary_has_65_sorted_characters(corpus):
    vocab, _, _ = corpus
    assert len(vocab) == 65
    assert vocab.chars == tuple(sorted(vocab.chars)) and vocab.chars[0] == "\n"
    assert "65 characters" in repr(vocab)


def test_encode_decode_round_trip(corpus):
    vocab, train_ids, val_ids = corpus
    s = text.load_text()
    ids = vocab.encode(s)
    assert ids.dtype == torch.long and ids.shape == (N_CHARS,)
    assert torch.equal(ids, torch.cat([train_ids, val_ids]))
    assert vocab.decode(ids) == s
    assert vocab.decode(ids[:20].tolist()) == s[:20]  # a list works too
    assert vocab.encode("").shape == (0,) and vocab.decode([]) == ""
    assert vocab.encode("aA\n").tolist() == [vocab.chars.index(c) for c in "aA\n"]


def test_unknown_characters_are_named():
    vocab = Vocabulary("hello world")
    assert len(vocab) == 8
    with pytest.raises(ValueError, match=r"'é'.*'ü'|'ü'.*'é'"):
        vocab.encode("hello wörld é ü")
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        vocab.decode([0, 8])
    with pytest.raises(TypeError):
        vocab.decode(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="1-D"):
        vocab.decode(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError):
        vocab.encode(b"hello")


# -- the split ----------------------------------------------------------------------

def test_split_is_the_first_90_and_last_10_percent(corpus):
    _, train_ids, val_ids = corpus
    n_train = N_CHARS * 9 // 10
    assert (len(train_ids), len(val_ids)) == (n_train, N_CHARS - n_train) == (1_003_854, 111_540)
    assert train_ids.dtype == val_ids.dtype == torch.long
    assert train_ids.device.type == "cpu" and train_ids.dim() == 1


# -- the windows --------------------------------------------------------------------

def test_targets_are_the_windows_shifted_by_one(corpus):
    _, train_ids, _ = corpus
    loader = WindowLoader(train_ids, 16, 8, seed=3, windows_per_epoch=40)
    assert len(loader) == 5 and loader.device == train_ids.device
    batches = list(loader.batches())
    assert len(batches) == 5 and batches[-1][0].shape == (8, 16)
    for x, y, starts in batches:
        assert x.shape == y.shape == (len(starts), 16) and x.dtype == torch.long
        for row, s in enumerate(starts.tolist()):
            assert torch.equal(x[row], train_ids[s:s + 16])
            assert torch.equal(y[row], train_ids[s + 1:s + 17])
        assert torch.equal(x[:, 1:], y[:, :-1])


def test_windows_reach_the_last_target_and_no_further():
    ids = torch.arange(10)
    loader = WindowLoader(ids, 9, 4, windows_per_epoch=6)  # the only start is 0
    x, y, starts = next(loader.batches())
    assert starts.tolist() == [0, 0, 0, 0]
    assert x[0].tolist() == list(range(9)) and y[0].tolist() == list(range(1, 10))


def test_same_seed_same_batches_and_epochs_differ():
    ids = torch.arange(1000)
    a = WindowLoader(ids, 8, 4, seed=1, windows_per_epoch=12)
    b = WindowLoader(ids, 8, 4, seed=1, windows_per_epoch=12)
    first_a = [s for _, _, s in a.batches()]
    assert all(torch.equal(p, q) for p, q in zip(first_a, [s for _, _, s in b.batches()]))
    second_a = torch.cat([s for _, _, s in a.batches()])
    assert not torch.equal(torch.cat(first_a), second_a)
    other = torch.cat([s for _, _, s in WindowLoader(ids, 8, 4, seed=2,
                                                     windows_per_epoch=12).batches()])
    assert not torch.equal(torch.cat(first_a), other)


def test_unshuffled_windows_are_spread_in_order_and_repeat():
    ids = torch.arange(101)
    loader = WindowLoader(ids, 10, 4, shuffle=False)  # 10 windows, starts 0 .. 90
    first = torch.cat([s for _, _, s in loader.batches()])
    assert first.tolist() == [0, 9, 18, 27, 36, 45, 54, 63, 72, 81]
    assert torch.equal(first, torch.cat([s for _, _, s in loader.batches()]))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"block_size": 0}, ValueError, "block_size"),
    ({"block_size": 20}, ValueError, "at least 21"),
    ({"block_size": 2.0}, ValueError, "block_size"),
    ({"batch_size": True}, ValueError, "batch_size"),
    ({"windows_per_epoch": 0}, ValueError, "windows_per_epoch"),
    ({"seed": 1.5}, TypeError, "seed"),
])
def test_bad_window_arguments(kwargs, error, match):
    args = {"block_size": 4, "batch_size": 2, **kwargs}
    with pytest.raises(error, match=match):
        WindowLoader(torch.arange(20), args.pop("block_size"), args.pop("batch_size"), **args)


@pytest.mark.parametrize("ids", [torch.arange(20.0), torch.zeros(4, 5, dtype=torch.long),
                                 list(range(20))])
def test_ids_must_be_a_1d_integer_tensor(ids):
    with pytest.raises(TypeError, match="ids"):
        WindowLoader(ids, 4, 2)


def test_run_epochs_drives_a_window_loader():
    ids = torch.arange(500) % 7
    loader = WindowLoader(ids, 8, 5, windows_per_epoch=23)
    seen = []

    def step(x, y, starts):
        seen.append(len(starts))
        agree = (y[:, :-1] == x[:, 1:]).all(dim=1).sum()  # per-window sums, as the loop wants
        return {"loss": torch.ones(()) * len(y), "acc": agree}

    history = train.run_epochs(step, loader, epochs=2, progress=False)
    assert len(history) == 2 and sum(seen) == 46 and len(seen) == 2 * len(loader)
    assert history["train_loss"] == [1.0, 1.0] and history["train_acc"] == [1.0, 1.0]
    assert loader.epoch == 2

"""Tiny Shakespeare as a character-level corpus, held on the device in token windows.

The repository ships ``data/TinyShakespeare/input.txt``: 1,115,394 characters of
Shakespeare's plays, 65 distinct, compiled by A. Karpathy for char-rnn (see
``data/README.md``). :func:`load_text` checks its sha256 and returns the text;
:class:`Vocabulary` maps its characters to integer ids and back; :func:`corpus` gives the
fixed split (first 90 % train, last 10 % validation, as char-rnn and nanoGPT split it).

A language model reads windows of ``L`` consecutive characters and learns to predict, at
every position, the character that comes next. :class:`WindowLoader` keeps the whole
encoded corpus on the device (about 9 MB of int64 ids) and cuts the windows out of it by
index, like :class:`kdteach.data.DeviceLoader` does for images: one
gather per batch, no host-device copy per step, no Python loop over characters.
"""
from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from . import checks, config
from .data import DataFileError, file_sha256, restore_hint

#: The shipped file (relative to the data folder) and its sha256, as in ``data/README.md``.
SHA256 = {"TinyShakespeare/input.txt":
          "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"}
FILE = "TinyShakespeare/input.txt"

def path(root: str | os.PathLike | None = None) -> Path:
    """Where the corpus lives: ``<root>/TinyShakespeare/input.txt`` (root: the data folder)."""
    return (Path(root) if root is not None else config.data_dir()) / FILE


def load_text(root: str | os.PathLike | None = None) -> str:
    """The text of Tiny Shakespeare, its sha256 checked (once per process unless the file
    changes: the check is remembered by path, size and modification time).

    Raises :class:`kdteach.data.DataFileError` naming the file and the fix when it is
    missing or corrupt.
    """
    file = path(root)
    if not file.is_file():
        raise DataFileError(f"Data file {file} is missing. {restore_hint(FILE)}")
    actual, expected = file_sha256(file), SHA256[FILE]
    if actual != expected:
        raise DataFileError(f"Data file {file} is corrupt (sha256 {actual[:12]}…, expected "
                            f"{expected[:12]}…). {restore_hint(FILE)}")
    return file.read_text(encoding="utf-8")


class Vocabulary:
    """The sorted set of characters of a text, each given an id: its rank in that order.

    ``Vocabulary(text)`` collects the characters; :meth:`encode` turns a string into a
    ``LongTensor`` of ids, :meth:`decode` turns ids back into the string, and ``len(vocab)``
    is the number of characters (the size of a language model's output layer). Both
    directions are vectorised with NumPy (a character is its Unicode code point; sorted
    characters are sorted code points, so an id is found by binary search).
    """

    def __init__(self, chars: Iterable[str]):
        chars = set(chars)
        wrong = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if wrong:
            raise TypeError("a Vocabulary is built from a text (or single characters), got "
                            f"items such as {wrong[0]!r}.")
        if not chars:
            raise ValueError("a Vocabulary needs at least one character; pass a non-empty text.")
        chars = sorted(chars)
        self.chars: tuple[str, ...] = tuple(chars)
        self._codes = np.array([ord(c) for c in chars], dtype=np.uint32)  # (V,) sorted

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} characters: {''.join(self.chars)!r})"

    def encode(self, s: str) -> torch.Tensor:
        """The ids of the characters of ``s``: a 1-D ``LongTensor`` of ``len(s)`` ids.

        Raises ``ValueError`` naming the characters of ``s`` that are not in the vocabulary.
        """
        if not isinstance(s, str):
            raise TypeError(f"encode takes a str, got {type(s).__name__}.")
        codes = np.frombuffer(s.encode("utf-32-le", "surrogatepass"), dtype="<u4")  # (N,)
        ids = np.minimum(np.searchsorted(self._codes, codes), len(self) - 1)
        unknown = self._codes[ids] != codes
        if unknown.any():
            bad = sorted({chr(c) for c in codes[unknown].tolist()})
            shown = ", ".join(repr(c) for c in bad[:10]) + (" …" if len(bad) > 10 else "")
            raise ValueError(f"{len(bad)} character(s) of the text are not in the vocabulary: "
                             f"{shown} ({int(unknown.sum())} occurrence(s)). The vocabulary has "
                             f"{len(self)} characters ({''.join(self.chars)!r}); remove or "
                             "replace the others before encoding.")
        return torch.from_numpy(ids.astype(np.int64))

    def decode(self, ids) -> str:
        """The string whose characters have these ids (a 1-D tensor or a list of ints)."""
        if isinstance(ids, torch.Tensor):
            if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
                raise TypeError(f"decode takes integer ids, got a tensor of {ids.dtype}; "
                                "pass e.g. logits.argmax(-1).")
            ids = ids.detach().cpu().numpy()
        array = np.asarray(ids)
        if array.ndim != 1:
            raise ValueError(f"decode takes one sequence of ids (1-D), got shape "
                             f"{array.shape}; decode each row separately.")
        if array.size == 0:
            return ""
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"decode takes integer ids, got {array.dtype} values.")
        bad = (array < 0) | (array >= len(self))
        if bad.any():
            raise ValueError(f"ids must be in [0, {len(self)}) for this vocabulary of "
                             f"{len(self)} characters, got {array[bad][:5].tolist()}.")
        return self._codes[array].astype("<u4").tobytes().decode("utf-32-le")


def corpus(device=None, *, root: str | os.PathLike | None = None
           ) -> tuple[Vocabulary, torch.Tensor, torch.Tensor]:
    """``(vocab, train_ids, val_ids)``: the encoded Tiny Shakespeare, split in a fixed place.

    The first 90 % of the characters (``n * 9 // 10`` of ``n``) train, the last 10 %
    validate; both are 1-D ``LongTensor`` on ``device`` (default: ``kdteach.config.device()``).
    The vocabulary is that of the whole text, so the validation set has no unknown
    characters. The validation text is the end of the file (the last plays), not a random
    sample: a model is judged on text it has not seen, not on interleaved neighbours of it.
    """
    text = load_text(root)
    vocab = Vocabulary(text)
    ids = vocab.encode(text)  # (n,)
    n_train = len(ids) * 9 // 10
    device = torch.device(device) if device is not None else config.device()
    return vocab, ids[:n_train].to(device), ids[n_train:].to(device)


def check_ids(ids, name: str = "ids") -> torch.Tensor:
    """``ids`` must be a 1-D tensor of integer token ids; returns it."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a 1-D tensor of token ids, got {type(ids).__name__}; "
                        "encode a text with Vocabulary.encode.")
    if ids.dim() != 1 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"{name} must be a 1-D tensor of integer token ids, got shape "
                        f"{tuple(ids.shape)} and dtype {ids.dtype}.")
    return ids


class WindowLoader:
    """Batches of token windows cut from a corpus that lives on one device.

    An epoch is ``windows_per_epoch`` windows (default ``len(ids) // block_size``, about
    one pass over the text). With ``shuffle=True`` their start positions are drawn
    uniformly, with replacement, from a generator seeded with ``seed`` and the epoch number
    (as nanoGPT's ``get_batch`` draws them, and as :class:`kdteach.data.DeviceLoader` seeds
    its order): the same seed gives the same batches, and every epoch different ones. With
    ``shuffle=False`` the starts are spread evenly over the text, in order, the same each
    epoch.

    :meth:`batches` yields ``(x, y, starts)``: ``x`` (B, L) the windows
    ``ids[s : s + L]``, ``y`` (B, L) the characters that follow each position,
    ``ids[s + 1 : s + L + 1]``, and ``starts`` (B,) the positions ``s``. The last batch of
    an epoch may be smaller. With ``.device`` and ``len()`` this is all
    :func:`kdteach.train.run_epochs` needs; its step receives ``(x, y, starts)``, and since
    the loop divides the sums a step returns by ``len(y)`` (the number of windows), return
    ``loss * len(y)`` for a per-token mean ``loss`` to read the per-token loss per epoch.
    """

    def __init__(self, ids: torch.Tensor, block_size: int, batch_size: int, *, seed: int = 0,
                 device=None, shuffle: bool = True, windows_per_epoch: int | None = None):
        ids = check_ids(ids)
        block_size = checks.positive_int(block_size, "block_size", "characters per window")
        batch_size = checks.positive_int(batch_size, "batch_size", "windows per batch")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed must be an int, got {seed!r}.")
        if len(ids) <= block_size:
            raise ValueError(f"ids has {len(ids)} tokens, but a window of block_size="
                             f"{block_size} and its next-token targets need at least "
                             f"{block_size + 1}; use a smaller block_size or more text.")
        if windows_per_epoch is None:
            windows_per_epoch = len(ids) // block_size
        windows_per_epoch = checks.positive_int(windows_per_epoch, "windows_per_epoch")
        self.device = torch.device(device) if device is not None else ids.device
        self.ids = ids.to(self.device)
        self.block_size, self.batch_size = block_size, batch_size
        self.seed, self.shuffle, self.windows_per_epoch = int(seed), bool(shuffle), windows_per_epoch
        self.n_starts = len(ids) - block_size  # valid starts: 0 .. len(ids) - L - 1
        self.offsets = torch.arange(block_size, device=self.device)  # (L,)
        self.epoch = 0

    def __len__(self) -> int:
        return -(-self.windows_per_epoch // self.batch_size)

    def starts(self, epoch: int) -> torch.Tensor:
        """The start positions of every window of epoch ``epoch`` (0-based), on the CPU."""
        w = self.windows_per_epoch
        if not self.shuffle:
            return torch.arange(w) * self.n_starts // w  # (W,) evenly spread, in order
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randint(0, self.n_starts, (w,), generator=gen)  # (W,)

    def windows(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The windows ``x`` (B, L) at ``starts`` (B,) and their targets ``y`` (B, L)."""
        pos = starts[:, None] + self.offsets  # (B, L): one row of positions per window
        return self.ids[pos], self.ids[pos + 1]

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One epoch of ``(x, y, starts)``; each call advances the epoch."""
        starts = self.starts(self.epoch).to(self.device)  # one copy per epoch, not per step
        self.epoch += 1
        for i in range(0, self.windows_per_epoch, self.batch_size):
            s = starts[i:i + self.batch_size]  # (B,)
            x, y = self.windows(s)
            yield x, y, s

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y, _ in self.batches():
            yield x, y


if __name__ == "__main__":  # python -m kdteach.text: verify the corpus, show the split
    vocab, train_ids, val_ids = corpus("cpu")
    print(f"{path()} verified: {len(train_ids) + len(val_ids):,} characters, {len(vocab)} "
          f"distinct; {len(train_ids):,} train / {len(val_ids):,} validation.")

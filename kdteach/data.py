"""The course's data: MNIST and Fashion-MNIST shipped in ``data/``, held on the device.

The repository ships the original IDX files, gzip-compressed, in torchvision's layout
(``data/<Name>/raw/*.gz``). :func:`load` checks each file's sha256, decompresses it next to
the archive (atomically: a temp file, then a rename), and returns tensors.

Small datasets fit in any GPU's memory, so :class:`DeviceLoader` keeps the whole set on the
device and draws batches by shuffled index: no worker processes, no per-sample PIL
transforms, no host-to-device copy per step. Optional augmentation (random shifts of up to
``jitter`` pixels, the "jitter" of Hinton et al. 2015, section 3) also runs on the device.
"""
from __future__ import annotations

import gzip
import hashlib
import numbers
import os
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch

from . import checks, config
from .files import atomic_write, remove_stale_temporaries

#: sha256 of each shipped file (the same as ``data/README.md``).
SHA256 = {
    "FashionMNIST/raw/t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "FashionMNIST/raw/t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    "FashionMNIST/raw/train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "FashionMNIST/raw/train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "MNIST/raw/t10k-images-idx3-ubyte.gz": "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
    "MNIST/raw/t10k-labels-idx1-ubyte.gz": "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
    "MNIST/raw/train-images-idx3-ubyte.gz": "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
    "MNIST/raw/train-labels-idx1-ubyte.gz": "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
}

#: sha256 of each file as decompressed from its archive: what :func:`load` actually reads
#: is checked against these, so an edited, swapped or half-written file is never used.
RAW_SHA256 = {
    "FashionMNIST/raw/t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "FashionMNIST/raw/t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    "FashionMNIST/raw/train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "FashionMNIST/raw/train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "MNIST/raw/t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "MNIST/raw/t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "MNIST/raw/train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "MNIST/raw/train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
}

#: Dataset name -> folder name in ``data/``.
FOLDERS = {"mnist": "MNIST", "fashion": "FashionMNIST"}

CLASSES = {
    "mnist": [str(d) for d in range(10)],
    "fashion": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}

#: Per-dataset pixel mean and std (of the training images scaled to [0, 1]).
STATS = {"mnist": (0.1307, 0.3081), "fashion": (0.2860, 0.3530)}


class DataFileError(RuntimeError):
    """A shipped data file is missing or corrupt. The message says how to restore it."""


class Split(NamedTuple):
    """Images ``(N, 1, 28, 28)`` float32 and labels ``(N,)`` int64 of one dataset split."""

    images: torch.Tensor
    labels: torch.Tensor

    def to(self, device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))

    def __len__(self) -> int:  # type: ignore[override]
        return len(self.labels)

    def take(self, index) -> "Split":
        """The examples at ``index`` (a tensor or sequence of positions)."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.labels.device)
        return Split(self.images[index], self.labels[index])


def is_pair(data) -> bool:
    """Whether ``data`` is a :class:`Split` or an ``(images, labels)`` pair."""
    return isinstance(data, Split) or (isinstance(data, (tuple, list)) and len(data) == 2)


def check_pair(data) -> tuple[torch.Tensor, torch.Tensor]:
    """``data`` as ``(images, labels)`` tensors fit to train on, or a clear error: tensors
    (not NumPy arrays), at least one example, as many labels as images, integer class
    labels >= 0, and images free of NaN and inf. Reads the values once (one sync)."""
    if not is_pair(data):
        raise TypeError("data must be a kdteach.data.Split or an (images, labels) pair, got "
                        f"{type(data).__name__}.")
    images, labels = data
    for name, value, fix in (("images", images, "torch.from_numpy(images).float()"),
                             ("labels", labels, "torch.from_numpy(labels).long()")):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}; "
                            f"convert it with {fix}.")
    if len(images) == 0:
        raise ValueError("data is empty (0 examples); pass at least one (image, label) pair.")
    if len(images) != len(labels):
        raise ValueError(f"images ({len(images)}) and labels ({len(labels)}) differ in length.")
    if labels.dim() != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be a 1-D tensor of integer class indices, got shape "
                        f"{tuple(labels.shape)} and dtype {labels.dtype}; use labels.long().")
    if int(labels.min()) < 0:
        raise ValueError(f"labels must be class indices >= 0, got {int(labels.min())}; "
                         "check the label encoding.")
    if images.is_floating_point() and not bool(torch.isfinite(images).all()):
        bad = int((~torch.isfinite(images)).sum())
        raise ValueError(f"images contain {bad} NaN or infinite values; clean or re-load "
                         "the data before training.")
    return images, labels


def _dataset_name(name: str) -> str:
    key = str(name).lower().replace("-", "").replace("_", "")
    key = {"mnist": "mnist", "fashion": "fashion", "fashionmnist": "fashion"}.get(key)
    if key is None:
        raise ValueError(f"name={name!r} is not a shipped dataset; use 'mnist' or 'fashion'.")
    return key


def restore_hint(rel: str) -> str:
    return (f"Restore it with `git checkout -- data/{rel}` (the file ships with the "
            "repository), or copy it from a fresh clone of the course.")


_hashed: dict[tuple[str, int, int], str] = {}


def verify(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """Check the sha256 of each shipped file of ``name``; return their paths.

    Raises :class:`DataFileError` naming the file and the fix when one is missing or
    corrupt. A file that passed is not hashed again in this process unless it changed.
    """
    key = _dataset_name(name)
    root = Path(root) if root is not None else config.data_dir()
    paths = []
    for rel, digest in SHA256.items():
        if not rel.startswith(FOLDERS[key] + "/"):
            continue
        path = root / rel
        if not path.is_file():
            raise DataFileError(f"Data file {path} is missing. {restore_hint(rel)}")
        actual = file_sha256(path)
        if actual != digest:
            raise DataFileError(
                f"Data file {path} is corrupt (sha256 {actual[:12]}…, expected "
                f"{digest[:12]}…). {restore_hint(rel)}")
        paths.append(path)
    return paths


def file_sha256(path: Path) -> str:
    """The file's sha256, hashed once per process unless the file changed (size, mtime)."""
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _hashed:
        _hashed[memo] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _hashed[memo]


def _idx_dims(raw: bytes) -> list[int]:
    """The sizes in an IDX header: 2 zero bytes, a type byte, the number of dimensions,
    then each size as a big-endian 4-byte integer."""
    ndim = raw[3]
    return [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]


def _extract(gz_path: Path) -> Path:
    """Decompress ``<Name>/raw/x.gz`` to ``x`` beside it, atomically; reuse an earlier copy
    only if its sha256 is that of the archive's contents (``RAW_SHA256``)."""
    out = gz_path.with_suffix("")
    rel = f"{gz_path.parent.parent.name}/raw/{out.name}"
    remove_stale_temporaries(out)  # left by an extraction that was killed midway
    expected = RAW_SHA256[rel]
    if out.is_file() and file_sha256(out) == expected:
        return out
    try:
        with atomic_write(out, "wb", fsync=True) as f, gzip.open(gz_path, "rb") as src:
            while chunk := src.read(1 << 20):
                f.write(chunk)
    except PermissionError as err:
        raise DataFileError(
            f"Cannot write the decompressed data file {out} ({err.strerror}). Run "
            "`python -m kdteach.data` once as a user who can write there, or copy data/ "
            "somewhere writable and point KDTEACH_DATA at the copy.") from err
    if file_sha256(out) != expected:
        raise DataFileError(f"Decompressing {gz_path} gave unexpected contents. "
                            f"{restore_hint(rel + '.gz')}")
    return out


def _read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DataFileError(f"{path} is not an IDX file of unsigned bytes; delete it and load again.")
    dims = _idx_dims(raw)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def prepare(root: str | os.PathLike | None = None) -> dict[str, int]:
    """Verify and decompress every shipped dataset; return the number of files per set."""
    done = {}
    for name in FOLDERS:
        done[name] = len([_extract(p) for p in verify(name, root)])
    return done


def load(name: str, train: bool = True, *, n: int | None = None, seed: int = 0,
         normalize: bool = True, device=None, root=None) -> Split:
    """Load a shipped dataset as tensors.

    Args:
        name: ``"mnist"`` or ``"fashion"``.
        train: the 60,000-image training split, else the 10,000-image test split.
        n: keep a stratified subset of ``n`` examples (see :func:`stratified_subset`).
        seed: seed of that subset.
        normalize: standardise pixels with the dataset's mean and std (``STATS``);
            otherwise pixels are in [0, 1].
        device: where the tensors live (default: the CPU).
    """
    key = _dataset_name(name)
    stem = "train" if train else "t10k"
    paths = {p.name: p for p in verify(key, root)}
    images = _read_idx(_extract(paths[f"{stem}-images-idx3-ubyte.gz"]))
    labels = _read_idx(_extract(paths[f"{stem}-labels-idx1-ubyte.gz"]))
    x = torch.from_numpy(images.copy()).to(torch.float32).div_(255.0).unsqueeze(1)
    if normalize:
        mean, std = STATS[key]
        x = (x - mean) / std
    split = Split(x, torch.from_numpy(labels.astype(np.int64)))
    if n is not None:
        split = split.take(stratified_subset(split.labels, n, seed=seed))
    return split.to(device) if device is not None else split


def stratified_subset(labels: torch.Tensor, n: int, *, seed: int = 0) -> torch.Tensor:
    """Indices of ``n`` examples whose class proportions match ``labels``' (sorted)."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    total = len(labels)
    if not 0 < n <= total:
        raise ValueError(f"n={n} must be between 1 and the number of examples ({total}).")
    labels = labels.cpu()
    gen = torch.Generator().manual_seed(seed)
    classes, counts = labels.unique(return_counts=True)
    exact = counts.double() * n / total
    take = exact.floor().long()
    # Largest remainders get the examples that rounding down left over.
    for i in torch.argsort(exact - take, descending=True)[: n - int(take.sum())]:
        take[i] += 1
    picked = []
    for c, k in zip(classes.tolist(), take.tolist()):
        members = torch.nonzero(labels == c).flatten()
        picked.append(members[torch.randperm(len(members), generator=gen)[:k]])
    return torch.cat(picked).sort().values


def without_classes(split: Split, classes: Sequence[int]) -> Split:
    """The examples of ``split`` whose label is not in ``classes`` (a transfer set)."""
    if isinstance(classes, int):
        classes = [classes]
    drop = torch.as_tensor(list(classes), dtype=split.labels.dtype, device=split.labels.device)
    if drop.numel() == 0:
        raise ValueError("classes is empty; name at least one class to remove.")
    keep = ~torch.isin(split.labels, drop)
    return Split(split.images[keep], split.labels[keep])


def holdout(split: Split, n_val: int, *, seed: int = 0) -> tuple[Split, Split]:
    """Split off a stratified validation set of ``n_val`` examples: ``(train, val)``."""
    val_idx = stratified_subset(split.labels, n_val, seed=seed).to(split.labels.device)
    mask = torch.ones(len(split), dtype=torch.bool, device=split.labels.device)
    mask[val_idx] = False
    return Split(split.images[mask], split.labels[mask]), split.take(val_idx)


def shift_images(images: torch.Tensor, shifts: torch.Tensor, fill: float,
                 max_shift: int | None = None) -> torch.Tensor:
    """Translate each image by its own ``(dy, dx)`` in ``shifts`` (integers), filling with
    ``fill``. Runs on the images' device with one gather, no Python loop over samples.
    Pass ``max_shift`` (a bound on ``|shifts|``) to avoid reading it from the device."""
    b, c, h, w = images.shape
    if max_shift is None:
        max_shift = int(shifts.abs().max()) if shifts.numel() else 0
    k = max_shift
    if k == 0:
        return images
    padded = torch.nn.functional.pad(images, (k, k, k, k), value=fill)
    rows = (k - shifts[:, 0]).view(b, 1, 1) + torch.arange(h, device=images.device).view(1, h, 1)
    cols = (k - shifts[:, 1]).view(b, 1, 1) + torch.arange(w, device=images.device).view(1, 1, w)
    batch = torch.arange(b, device=images.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


class DeviceLoader:
    """Batches of a dataset that lives entirely on one device.

    Each epoch draws a fresh permutation from a generator seeded with ``seed`` and the
    epoch number, so the same seed gives the same batches. ``jitter=k`` shifts every image
    by a random whole number of pixels in ``[-k, k]`` along each axis, on the device.
    Iterating yields ``(images, labels)``; :meth:`batches` also yields the examples' indices
    (used to look up cached teacher outputs).

    Sharded (``rank``, ``world_size``: one loader per process of a distributed job, see
    :mod:`kdteach.distributed`): every rank holds the whole set and draws the *same* seeded
    global order; each global batch holds ``batch_size * world_size`` examples and rank
    ``r`` takes its ``r``-th slice of ``batch_size``. The shares are disjoint, their union is
    the global batch, and the indices yielded are the examples' *global* indices, so
    anything looked up by index (cached teacher outputs) stays aligned. The last global
    batch, if smaller, is cut to a multiple of ``world_size`` and split evenly (at most
    ``world_size - 1`` examples of an epoch are left out; with ``drop_last`` it is dropped):
    equal shares are what make the ranks' averaged gradients the global batch's gradient.
    ``world_size=1`` (the default) is the ordinary single-process loader, unchanged.
    """

    def __init__(self, data: Split | tuple, batch_size: int = 128, *, shuffle: bool = True,
                 seed: int = 0, jitter: int = 0, device=None, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1):
        images, labels = check_pair(data)
        batch_size = checks.positive_int(batch_size, "batch_size")
        world_size = checks.positive_int(world_size, "world_size", "the number of processes")
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) \
                or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an int in [0, world_size={world_size}), got {rank!r}; "
                             "pass the process's rank (torch.distributed.get_rank()).")
        if world_size > len(labels):
            raise ValueError(f"world_size={world_size} is larger than the {len(labels)} examples, "
                             "so some ranks would get none; use fewer processes or more data.")
        if isinstance(jitter, bool) or not isinstance(jitter, numbers.Integral) or jitter < 0:
            raise ValueError(f"jitter must be a non-negative int of pixels, got {jitter!r}.")
        jitter = int(jitter)
        if drop_last and batch_size > len(labels):
            raise ValueError(f"batch_size={batch_size} is larger than the {len(labels)} examples, "
                             "so drop_last=True would drop them all; use a smaller batch_size "
                             "or drop_last=False.")
        self.device = torch.device(device) if device is not None else images.device
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.jitter, self.drop_last = jitter, drop_last
        self.rank, self.world_size = int(rank), world_size
        self.fill = float(self.images.min()) if jitter else 0.0  # the background value
        self.epoch = 0

    def __len__(self) -> int:
        n, step = len(self.labels), self.batch_size * self.world_size
        if self.world_size > 1 and not self.drop_last and n % step >= self.world_size:
            return n // step + 1
        return n // step if self.drop_last or self.world_size > 1 else -(-n // step)

    @property
    def augmented(self) -> bool:
        """Whether inputs change between epochs (then teacher outputs cannot be reused)."""
        return self.jitter > 0

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One epoch of ``(images, labels, indices)``; each call advances the epoch."""
        n = len(self.labels)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        shifts = None
        if self.jitter:
            shifts = torch.randint(-self.jitter, self.jitter + 1, (n, 2), generator=gen)
            shifts = shifts.to(self.device)
        if self.world_size > 1:
            order = self._share(order)
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.images[idx]
            if shifts is not None:
                x = shift_images(x, shifts[idx], self.fill, max_shift=self.jitter)
            yield x, self.labels[idx], idx

    def _share(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's examples of the global ``order``, batch after batch: of each global
        batch of ``batch_size * world_size``, the ``rank``-th slice of ``batch_size``; of a
        shorter last one, the ``rank``-th of ``world_size`` equal parts."""
        b, w, n = self.batch_size, self.world_size, len(order)
        full = n - n % (b * w)
        mine = order[:full].view(-1, w, b)[:, self.rank].reshape(-1)
        tail = (n - full) // w
        if tail and not self.drop_last:
            last = order[full:full + tail * w].view(w, tail)[self.rank]
            mine = torch.cat([mine, last])
        return mine

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y, _ in self.batches():
            yield x, y


if __name__ == "__main__":  # python -m kdteach.data: verify and decompress everything
    for dataset, files in prepare().items():
        print(f"{dataset}: {files} files verified and ready in {config.data_dir()}")

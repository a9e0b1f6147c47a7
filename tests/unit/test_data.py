"""kdteach.data: checksums, atomic extraction, loading, subsets and the on-device loader."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from kdteach import config, data
from kdteach.data import DataFileError, DeviceLoader, Split

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist_train() -> Split:
    return data.load("mnist", train=True)


@pytest.fixture(scope="module")
def mnist_test() -> Split:
    return data.load("mnist", train=False)


@pytest.fixture
def mnist_copy(tmp_path) -> Path:
    """A private copy of data/MNIST (the .gz files only) to damage freely."""
    dst = tmp_path / "MNIST" / "raw"
    dst.mkdir(parents=True)
    for src in (config.data_dir() / "MNIST" / "raw").glob("*.gz"):
        shutil.copyfile(src, dst / src.name)  # not copy2: the originals may be read-only
    return tmp_path


def _ids(n: int) -> Split:
    """A toy split whose image ``i`` is filled with the value ``i`` (labels i % 10)."""
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 4, 4).clone()
    return Split(images, torch.arange(n) % 10)


# -- checksums ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mnist", "fashion"])
def test_shipped_files_pass_their_checksums(name):
    paths = data.verify(name)
    assert len(paths) == 4 and all(p.suffix == ".gz" for p in paths)


def test_corrupt_file_is_named_with_the_fix(mnist_copy):
    path = mnist_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match="corrupt") as info:
        data.verify("mnist", root=mnist_copy)
    assert str(path) in str(info.value) and "git checkout" in str(info.value)
    with pytest.raises(DataFileError):
        data.load("mnist", train=False, root=mnist_copy)


def test_missing_file_is_named_with_the_fix(mnist_copy):
    path = mnist_copy / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    path.unlink()
    with pytest.raises(DataFileError, match="missing") as info:
        data.load("mnist", root=mnist_copy)
    assert str(path) in str(info.value) and "git checkout" in str(info.value)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="name"):
        data.load("cifar10")
    assert data._dataset_name("Fashion-MNIST") == "fashion"


# -- atomic extraction --------------------------------------------------------------

def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_extraction_leaves_a_complete_file_and_no_temp(mnist_copy):
    raw = mnist_copy / "MNIST" / "raw"
    gz = raw / "t10k-labels-idx1-ubyte.gz"
    out = data._extract(gz)
    assert out == raw / "t10k-labels-idx1-ubyte"
    with gzip.open(gz, "rb") as f:
        assert out.read_bytes() == f.read()
    assert _leftovers(raw) == []
    mtime = out.stat().st_mtime_ns
    assert data._extract(gz) == out and out.stat().st_mtime_ns == mtime  # reused


def test_truncated_extracted_file_is_redone(mnist_copy):
    raw = mnist_copy / "MNIST" / "raw"
    gz = raw / "t10k-images-idx3-ubyte.gz"
    with gzip.open(gz, "rb") as f:
        full = f.read()
    (raw / "t10k-images-idx3-ubyte").write_bytes(full[: len(full) // 3])
    test = data.load("mnist", train=False, root=mnist_copy, normalize=False)
    assert test.images.shape == (10000, 1, 28, 28)
    assert (raw / "t10k-images-idx3-ubyte").read_bytes() == full
    assert _leftovers(raw) == []


def test_failure_mid_write_leaves_no_partial_file(mnist_copy, monkeypatch):
    raw = mnist_copy / "MNIST" / "raw"
    gz = raw / "t10k-images-idx3-ubyte.gz"
    real_open = gzip.open

    class Broken:
        """Reads one chunk of the real file, then fails like a truncated archive."""

        def __init__(self, *args, **kwargs):
            self.f = real_open(*args, **kwargs)
            self.reads = 0

        def read(self, size=-1):
            self.reads += 1
            if self.reads > 1:
                raise EOFError("Compressed file ended before the end-of-stream marker")
            return self.f.read(size)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(data.gzip, "open", Broken)
    with pytest.raises(EOFError):
        data._extract(gz)
    assert not (raw / "t10k-images-idx3-ubyte").exists()
    assert _leftovers(raw) == []


# -- load ---------------------------------------------------------------------------

def test_load_shapes_and_dtypes(mnist_train, mnist_test):
    for split, n in [(mnist_train, 60000), (mnist_test, 10000)]:
        assert split.images.shape == (n, 1, 28, 28) and split.images.dtype == torch.float32
        assert split.labels.shape == (n,) and split.labels.dtype == torch.int64
        assert len(split) == n


def test_mnist_label_counts(mnist_train, mnist_test):
    assert torch.bincount(mnist_train.labels).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(mnist_test.labels).tolist() == MNIST_TEST_COUNTS


def test_fashion_label_counts():
    test = data.load("fashion", train=False)
    assert test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert len(data.CLASSES["fashion"]) == 10


def test_normalization(mnist_train, mnist_test):
    x = mnist_train.images
    assert abs(float(x.mean())) < 0.01 and abs(float(x.std()) - 1) < 0.01
    raw = data.load("mnist", train=False, normalize=False)
    assert float(raw.images.min()) == 0.0 and float(raw.images.max()) == 1.0
    mean, std = data.STATS["mnist"]
    assert torch.allclose((raw.images - mean) / std, mnist_test.images)


def test_load_with_n_is_a_stratified_subset(mnist_test):
    sub = data.load("mnist", train=False, n=1000, seed=3)
    assert len(sub) == 1000
    idx = data.stratified_subset(mnist_test.labels, 1000, seed=3)
    assert torch.equal(sub.images, mnist_test.images[idx])


# -- subsets ------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 10, 997, 5000, 10000])
def test_stratified_subset_proportions(mnist_test, n):
    idx = data.stratified_subset(mnist_test.labels, n, seed=0)
    assert len(idx) == n and len(idx.unique()) == n
    assert torch.equal(idx, idx.sort().values)
    counts = torch.bincount(mnist_test.labels[idx], minlength=10)
    expected = torch.tensor(MNIST_TEST_COUNTS, dtype=torch.float64) * n / 10000
    assert ((counts - expected).abs() < 1).all(), (counts, expected)


def test_stratified_subset_is_deterministic(mnist_test):
    a = data.stratified_subset(mnist_test.labels, 500, seed=1)
    assert torch.equal(a, data.stratified_subset(mnist_test.labels, 500, seed=1))
    assert not torch.equal(a, data.stratified_subset(mnist_test.labels, 500, seed=2))


@pytest.mark.parametrize("n, error", [(0, ValueError), (10001, ValueError),
                                      (10.0, TypeError), (True, TypeError)])
def test_stratified_subset_bad_n(mnist_test, n, error):
    with pytest.raises(error, match="n"):
        data.stratified_subset(mnist_test.labels, n)


def test_without_classes(mnist_test):
    rest = data.without_classes(mnist_test, [3])
    assert 3 not in rest.labels.tolist()
    assert len(rest) == 10000 - MNIST_TEST_COUNTS[3]
    assert rest.images.shape[1:] == (1, 28, 28)
    with pytest.raises(ValueError, match="classes"):
        data.without_classes(mnist_test, [])


def test_holdout_is_disjoint_and_stratified():
    split = _ids(1000)
    train, val = data.holdout(split, 100, seed=0)
    train_ids = set(train.images[:, 0, 0, 0].long().tolist())
    val_ids = set(val.images[:, 0, 0, 0].long().tolist())
    assert len(val_ids) == 100 and len(train_ids) == 900
    assert train_ids.isdisjoint(val_ids) and train_ids | val_ids == set(range(1000))
    assert torch.bincount(val.labels).tolist() == [10] * 10
    assert all(i % 10 == y for i, y in zip(val.images[:, 0, 0, 0].long().tolist(),
                                           val.labels.tolist()))


# -- DeviceLoader -------------------------------------------------------------------

def _epoch(loader) -> list[torch.Tensor]:
    return [idx for _, _, idx in loader.batches()]


def test_loader_covers_every_example_once_per_epoch():
    split = _ids(103)
    loader = DeviceLoader(split, batch_size=10, seed=0)
    assert len(loader) == 11
    for _ in range(2):
        seen = []
        for x, y, idx in loader.batches():
            assert torch.equal(x[:, 0, 0, 0].long(), idx) and torch.equal(y, idx % 10)
            seen.append(idx)
        assert len(seen) == 11 and [len(b) for b in seen][-1] == 3
        assert torch.equal(torch.cat(seen).sort().values, torch.arange(103))


def test_loader_is_seeded_and_reshuffles_each_epoch():
    split = _ids(100)
    a, b = DeviceLoader(split, 16, seed=5), DeviceLoader(split, 16, seed=5)
    first_a, first_b = _epoch(a), _epoch(b)
    assert all(torch.equal(u, v) for u, v in zip(first_a, first_b))
    assert not torch.equal(torch.cat(first_a), torch.cat(_epoch(a)))
    other = _epoch(DeviceLoader(split, 16, seed=6))
    assert not torch.equal(torch.cat(first_a), torch.cat(other))


def test_loader_without_shuffle_keeps_order():
    loader = DeviceLoader(_ids(25), 10, shuffle=False)
    assert torch.equal(torch.cat(_epoch(loader)), torch.arange(25))


def test_loader_drop_last():
    loader = DeviceLoader(_ids(103), 10, drop_last=True)
    batches = _epoch(loader)
    assert len(loader) == len(batches) == 10
    assert all(len(b) == 10 for b in batches)


def test_loader_iterates_images_and_labels():
    x, y = next(iter(DeviceLoader(_ids(20), 8)))
    assert x.shape == (8, 1, 4, 4) and y.shape == (8,)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_jitter_shifts_by_at_most_k_pixels(k):
    n = 400
    images = torch.zeros(n, 1, 28, 28)
    images[:, 0, 14, 14] = 1.0
    loader = DeviceLoader(Split(images, torch.zeros(n, dtype=torch.long)), 50, jitter=k)
    assert loader.augmented
    moves = set()
    for x, _ in loader:
        assert torch.equal(x.sum(dim=(1, 2, 3)), torch.ones(len(x)))  # nothing lost
        flat = x.view(len(x), -1).argmax(dim=1)
        for dy, dx in zip((flat // 28 - 14).tolist(), (flat % 28 - 14).tolist()):
            assert abs(dy) <= k and abs(dx) <= k
            moves.add((dy, dx))
    assert len(moves) == (2 * k + 1) ** 2  # every shift in range does occur


def test_no_jitter_leaves_images_unchanged(mnist_test):
    sub = mnist_test.take(torch.arange(300))
    loader = DeviceLoader(sub, 64, jitter=0)
    assert not loader.augmented
    for x, y, idx in loader.batches():
        assert torch.equal(x, sub.images[idx]) and torch.equal(y, sub.labels[idx])


def test_jitter_fills_with_the_background(mnist_test):
    sub = mnist_test.take(torch.arange(64))
    x, _ = next(iter(DeviceLoader(sub, 64, jitter=2, shuffle=False)))
    background = float(sub.images.min())
    assert float(x.min()) == background and x.shape == sub.images.shape


def _shift_reference(images, shifts, fill):
    out = []
    for img, (dy, dx) in zip(images, shifts.tolist()):
        moved = torch.roll(img, shifts=(dy, dx), dims=(1, 2))
        if dy > 0:
            moved[:, :dy, :] = fill
        elif dy < 0:
            moved[:, dy:, :] = fill
        if dx > 0:
            moved[:, :, :dx] = fill
        elif dx < 0:
            moved[:, :, dx:] = fill
        out.append(moved)
    return torch.stack(out)


def test_shift_images_matches_roll_with_fill():
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(64, 2, 9, 7, generator=gen)
    shifts = torch.randint(-3, 4, (64, 2), generator=gen)
    got = data.shift_images(images, shifts, fill=-0.5)
    assert torch.equal(got, _shift_reference(images, shifts, -0.5))
    zero = torch.zeros(64, 2, dtype=torch.long)
    assert torch.equal(data.shift_images(images, zero, fill=-0.5), images)


@pytest.mark.parametrize("kwargs, arg", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"jitter": -1}, "jitter"),
    ({"jitter": 1.5}, "jitter"),
])
def test_loader_bad_arguments(kwargs, arg):
    with pytest.raises((ValueError, TypeError), match=arg):
        DeviceLoader(_ids(10), **kwargs)


def test_loader_mismatched_lengths():
    with pytest.raises(ValueError, match="labels"):
        DeviceLoader((torch.zeros(5, 1, 2, 2), torch.zeros(4, dtype=torch.long)))


# -- DeviceLoader sharded over the ranks of a distributed job ------------------------

def _reference_batches(n, batch_size, seed, epochs=2, **kw):
    """What the loader yielded before it could be sharded: a seeded permutation per epoch,
    cut into batches (written out here so a change to the single-process order is caught)."""
    out = []
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=gen)
        out.append(list(order.split(batch_size)))
    return out


def test_single_process_batches_are_unchanged_by_sharding():
    split = _ids(103)
    for loader in (DeviceLoader(split, 10, seed=3), DeviceLoader(split, 10, seed=3, rank=0, world_size=1)):
        for expected in _reference_batches(103, 10, seed=3):
            got = _epoch(loader)
            assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected))


def test_single_process_jittered_batches_are_bit_identical_with_world_size_1(mnist_test):
    sub = mnist_test.take(torch.arange(70))
    a, b = DeviceLoader(sub, 16, seed=1, jitter=2), DeviceLoader(sub, 16, seed=1, jitter=2, world_size=1)
    for (xa, ya, ia), (xb, yb, ib) in zip(a.batches(), b.batches()):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ia, ib)


@pytest.mark.parametrize("n, world", [(96, 2), (100, 2), (103, 3), (64, 4)])
def test_ranks_draw_disjoint_shares_of_each_global_batch(n, world):
    """Each global batch of batch_size * world examples, in the one-process order, is the union
    of the ranks' batches (rank r's slice r); indices are global; a short last batch is split
    evenly and at most world - 1 examples are left out."""
    split, b = _ids(n), 8
    single = _epoch(DeviceLoader(split, b * world, seed=7))
    shards = [DeviceLoader(split, b, seed=7, rank=r, world_size=world) for r in range(world)]
    per_rank = [_epoch(s) for s in shards]
    assert len({len(p) for p in per_rank}) == 1 and len(per_rank[0]) == len(shards[0])
    for step, whole in enumerate(single):
        parts = [p[step] for p in per_rank] if step < len(per_rank[0]) else []
        if len(whole) == b * world:
            assert torch.equal(torch.cat(parts), whole)
        else:
            share = len(whole) // world
            assert all(len(p) == share for p in parts)
            assert torch.equal(torch.cat(parts) if parts else torch.empty(0, dtype=torch.long),
                               whole[:share * world])
    for x, y, idx in shards[0].batches():  # global indices: the example at idx is idx
        assert torch.equal(x[:, 0, 0, 0].long(), idx) and torch.equal(y, idx % 10)
    seen = torch.cat([torch.cat(p) for p in per_rank])
    assert len(seen.unique()) == len(seen) >= n - (world - 1)


def test_sharded_drop_last_keeps_full_global_batches_only():
    shards = [DeviceLoader(_ids(100), 8, seed=0, rank=r, world_size=2, drop_last=True) for r in (0, 1)]
    for s in shards:
        batches = _epoch(s)
        assert len(batches) == len(s) == 6 and all(len(b) == 8 for b in batches)


@pytest.mark.parametrize("kwargs, arg", [({"rank": 2, "world_size": 2}, "rank"),
                                         ({"rank": -1, "world_size": 2}, "rank"),
                                         ({"world_size": 0}, "world_size"),
                                         ({"world_size": 11}, "world_size")])
def test_sharded_loader_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        DeviceLoader(_ids(10), 2, **kwargs)

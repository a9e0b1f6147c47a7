"""The decompressed data files are verified, not trusted on header and size; a killed
extraction leaves nothing behind for long; a read-only data folder says what to do."""
from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from kdteach import config, data

HOUR_AGO = time.time() - 3600


def copy_of(names, tmp_path: Path) -> Path:
    """A private copy of the shipped archives of ``names`` (the .gz files only)."""
    for name in names:
        folder = data.FOLDERS[name]
        dst = tmp_path / folder / "raw"
        dst.mkdir(parents=True)
        for src in (config.data_dir() / folder / "raw").glob("*.gz"):
            shutil.copyfile(src, dst / src.name)
    return tmp_path


def test_a_changed_label_byte_in_the_decompressed_file_is_not_used(tmp_path):
    root = copy_of(["mnist"], tmp_path)
    clean = data.load("mnist", train=False, root=root).labels.clone()
    raw = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    content = bytearray(raw.read_bytes())
    content[8 + 5] = 200  # label of example 5, as a stray edit would leave it
    raw.write_bytes(bytes(content))
    os.utime(raw, (time.time() + 60, time.time() + 60))  # newer than the archive, as an edit is
    labels = data.load("mnist", train=False, root=root).labels
    assert int(labels.max()) < 10 and labels.equal(clean)


def test_fashion_files_copied_over_mnist_load_as_mnist(tmp_path):
    root = copy_of(["mnist", "fashion"], tmp_path)
    mnist = data.load("mnist", train=False, root=root)
    data.load("fashion", train=False, root=root)  # decompress Fashion-MNIST's files
    for suffix in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        shutil.copyfile(root / "FashionMNIST" / "raw" / f"t10k-{suffix}",
                        root / "MNIST" / "raw" / f"t10k-{suffix}")
    again = data.load("mnist", train=False, root=root)
    assert again.images.equal(mnist.images) and again.labels.equal(mnist.labels)


def test_a_killed_extraction_leaves_no_temporary_for_long(tmp_path):
    root = copy_of(["mnist"], tmp_path)
    raw = root / "MNIST" / "raw"
    data.load("mnist", train=False, root=root)
    leftover = raw / "t10k-images-idx3-ubyte.a1b2c3d4.tmp"  # as atomic_write names them
    leftover.write_bytes(b"\0" * 3_000_000)
    os.utime(leftover, (HOUR_AGO, HOUR_AGO))
    fresh = raw / "t10k-labels-idx1-ubyte.zz9y8x7w.tmp"  # a write in progress elsewhere
    fresh.write_bytes(b"\0")
    mine = raw / "notes.tmp"  # a file someone made: never ours to remove
    mine.write_text("keep")
    os.utime(mine, (HOUR_AGO, HOUR_AGO))
    data.load("mnist", train=False, root=root)
    assert not leftover.exists()
    assert fresh.exists() and mine.read_text() == "keep"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_data_folder_says_what_to_do(tmp_path):
    root = copy_of(["mnist"], tmp_path)
    raw = root / "MNIST" / "raw"
    raw.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(data.DataFileError, match="python -m kdteach.data.*KDTEACH_DATA"):
            data.load("mnist", train=False, root=root)
    finally:
        raw.chmod(stat.S_IRWXU)


def test_a_read_only_data_folder_says_what_to_do_even_as_root(tmp_path, monkeypatch):
    """Root ignores file modes, so the write itself is made to fail as it would for a user."""
    root = copy_of(["mnist"], tmp_path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(data, "atomic_write", refuse)
    with pytest.raises(data.DataFileError, match="python -m kdteach.data.*KDTEACH_DATA"):
        data.load("mnist", train=False, root=root)

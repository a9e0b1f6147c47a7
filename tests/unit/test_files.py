"""kdteach.files: atomic writes leave the old file or the new one, never half of one."""
from __future__ import annotations

import stat

import pytest

from kdteach.files import atomic_write


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.json"
    with atomic_write(target, "w") as f:
        f.write("new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # readable by others, as open() makes it


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "wb", fsync=True) as f:
            f.write(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_mode_must_be_write(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass


def test_only_old_temporaries_of_this_target_are_removed(tmp_path):
    import os
    import time

    from kdteach.files import remove_stale_temporaries

    target = tmp_path / "model[v1].pt"  # glob's special characters in the name
    old = time.time() - 7200
    stale = tmp_path / "model[v1].pt.ab12cd34.tmp"
    fresh = tmp_path / "model[v1].pt.ef56gh78.tmp"
    other = tmp_path / "other.pt.ab12cd34.tmp"
    hand_made = tmp_path / "model[v1].pt.backup.tmp"
    for path in (stale, fresh, other, hand_made):
        path.write_bytes(b"x")
    for path in (stale, other, hand_made):
        os.utime(path, (old, old))
    assert remove_stale_temporaries(target) == [stale]
    assert not stale.exists() and fresh.exists() and other.exists() and hand_made.exists()
    assert remove_stale_temporaries(tmp_path / "missing" / "x") == []

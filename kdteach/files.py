"""Writing files so that a crash never leaves half of one behind.

:func:`atomic_write` writes to a temporary file beside the target and renames it over the
target only once everything is written: a reader sees the old file or the new one, never a
torn one, and two processes writing the same file leave one complete copy.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(target, mode: str = "wb", *, fsync: bool = False):
    """``with atomic_write(path, "w") as f: f.write(...)`` replaces ``path`` atomically.

    The temporary file (``<name>.<random>.tmp`` in the same folder, so the rename stays on
    one file system) is removed if the block raises. ``fsync=True`` flushes it to disk
    before the rename, for files that are expensive to recreate (a trained model).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}.")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; data and results folders are shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

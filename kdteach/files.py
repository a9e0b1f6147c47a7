"""Writing files so that a crash never leaves half of one behind.

:func:`atomic_write` writes to a temporary file beside the target and renames it over the
target only once everything is written: a reader sees the old file or the new one, never a
torn one, and two processes writing the same file leave one complete copy. A process killed
mid-write leaves its temporary behind; :func:`remove_stale_temporaries` removes such
leftovers once they are old, and only files named the way :func:`atomic_write` names them.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path

#: A temporary older than this (seconds) belongs to no running write: writes take seconds.
STALE_AFTER_SECONDS = 600


def remove_stale_temporaries(target, *, older_than: float = STALE_AFTER_SECONDS) -> list[Path]:
    """Remove ``<target>.<8 random characters>.tmp`` files beside ``target`` that were last
    written more than ``older_than`` seconds ago; return what was removed.

    Only the names :func:`atomic_write` gives its temporaries match, so nothing a person
    made is touched, and a write in progress elsewhere (a fresh temporary) is left alone.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    pattern = re.compile(re.escape(target.name) + r"\.[A-Za-z0-9_]{8}\.tmp")
    cutoff = time.time() - older_than
    removed = []
    for candidate in target.parent.glob(glob_escape(target.name) + ".*.tmp"):
        try:
            if pattern.fullmatch(candidate.name) and candidate.stat().st_mtime < cutoff:
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            pass  # gone already, or not ours to remove: leave it
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters made literal."""
    return re.sub(r"([*?\[])", r"[\1]", name)


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
    remove_stale_temporaries(target)
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

"""Test-session defaults: a headless matplotlib, the quick profile, and a throwaway cache.

Set at import, before any test (or nbval kernel, which inherits the environment) starts.
Values already in the environment win, so `KDTEACH_PROFILE=full make test` still works.
"""
from __future__ import annotations

import os
import shutil
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("KDTEACH_PROFILE", "quick")

# Trained teachers go to a per-session folder, not ~/.cache/kdteach.
_own_cache = None
if not os.environ.get("KDTEACH_CACHE"):
    _own_cache = tempfile.mkdtemp(prefix="kdteach-cache-")
    os.environ["KDTEACH_CACHE"] = _own_cache


def pytest_unconfigure(config):
    if _own_cache is not None:
        shutil.rmtree(_own_cache, ignore_errors=True)

"""Helpers shared by the exercise self-check tests (``test_exercises_nbNN.py``).

A self-check prints one line, ``✓ …`` or ``✗ …``, and returns ``True`` or ``False``. These
fixtures read that line from ``capsys`` and compare it with what a test expects.
"""
from __future__ import annotations

import pytest


@pytest.fixture
def verdict(capsys):
    """``verdict(ok_expected, fragment, result)``: the check returned ``ok_expected`` (exactly
    ``True`` or ``False``) and printed a ✓ or ✗ line that contains ``fragment``."""
    def check(ok_expected, fragment, result):
        out = capsys.readouterr().out
        assert result is ok_expected, out
        assert out.startswith("✓" if ok_expected else "✗"), out
        assert fragment in out, out
    return check


@pytest.fixture
def says(capsys):
    """``says(ok, expected_ok, *needles)``: the check returned ``expected_ok``, printed a ✓ or ✗
    line to match, and that line contains every needle (case-insensitive)."""
    def check(ok, expected_ok, *needles):
        out = capsys.readouterr().out
        assert ok is expected_ok, out
        assert out.startswith("✓" if expected_ok else "✗"), out
        for needle in needles:
            assert needle.lower() in out.lower(), out
    return check


@pytest.fixture
def run_check(capsys):
    """``run_check(check, *args)``: call ``check(*args)``; return ``(its result, what it printed)``."""
    def run(check, *args):
        ok = check(*args)
        return ok, capsys.readouterr().out
    return run

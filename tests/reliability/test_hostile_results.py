"""Results files: standard JSON only, readable by others, and a corrupt file's hint works."""
from __future__ import annotations

import stat

import pytest

from kdteach import config, results


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_refused_with_their_key(tmp_path, value):
    with pytest.raises(ValueError, match=r"\['runs'\]\[1\]\['loss'\].*None"):
        results.write("table", {"runs": [{"loss": 1.0}, {"loss": value}]}, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_non_utf8_file_is_reported_like_a_corrupt_one(tmp_path):
    (tmp_path / "latin.json").write_bytes(b'{"caf\xe9": 1}')
    with pytest.raises(ValueError, match="not valid JSON.*git checkout --"):
        results.read("latin", directory=tmp_path)


def test_the_restore_hint_gives_the_path_from_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "project_root", lambda: tmp_path)  # a checkout of our own
    config.results_dir().mkdir(parents=True)
    (config.results_dir() / "bench_cpu.json").write_text("{")
    with pytest.raises(ValueError, match="git checkout -- notebooks/results/bench_cpu.json"):
        results.read("bench_cpu")


def test_results_files_are_readable_by_others_like_data_files(tmp_path):
    written = results.write("table", {"errors": 3}, directory=tmp_path)
    assert stat.S_IMODE(written.stat().st_mode) == 0o644

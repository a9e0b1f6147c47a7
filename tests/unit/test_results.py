"""kdteach.results: measured results files are written whole or not at all, and read back."""
from __future__ import annotations

import json

import pytest

from kdteach import results


def test_write_then_read_round_trip(tmp_path):
    path = results.write("demo", {"errors": 74}, seconds=1.5, directory=tmp_path)
    assert path == tmp_path / "demo.json"
    stored = results.read("demo", directory=tmp_path)
    assert stored["results"] == {"errors": 74} and stored["wall_seconds"] == 1.5
    for key in ("device", "torch", "commit", "date"):
        assert key in stored["environment"], key


def test_missing_file_reads_as_not_measured(tmp_path):
    assert results.read("never_run", directory=tmp_path) is None


def test_corrupt_file_says_how_to_restore_it(tmp_path):
    (tmp_path / "broken.json").write_text('{"results": ')
    with pytest.raises(ValueError, match="git checkout -- .*broken.json"):
        results.read("broken", directory=tmp_path)


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "table.json"
    results.write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        results.write_json(target, {"not json": object()})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]


def test_environment_taken_at_the_start_is_the_one_recorded(tmp_path):
    started = {**results.provenance(), "commit": "abc1234"}  # as if the checkout moved since
    results.write("run", {"x": 1}, seconds=1.0, directory=tmp_path, env=started)
    assert results.read("run", tmp_path)["environment"]["commit"] == "abc1234"

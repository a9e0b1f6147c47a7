"""kdteach.results: measured results files are written whole or not at all, and read back."""
from __future__ import annotations

import json

import pytest

from kdteach import config, results


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


# -- what a full-profile run should take --------------------------------------------------

def _runtimes(folder, name, device, rows):
    results.write(name, {"profile": "x", "rows": [
        {"notebook": nb, "cached": {"seconds": s, "passed": ok}} for nb, s, ok in rows]},
        directory=folder, env={"device": device})


def test_expected_time_prefers_a_measured_full_run(tmp_path):
    _runtimes(tmp_path, "runtimes_full_cuda", "cuda (H200)", [("03_hinton_kd", 600.0, True)])
    _runtimes(tmp_path, "runtimes_quick_cpu", "cpu (x86)", [("03_hinton_kd", 20.0, True)])
    said = results.expected_time("03_hinton_kd", directory=tmp_path)
    assert "10 min" in said and "cuda (H200)" in said and "measured" in said


def test_expected_time_estimates_from_the_quick_run_and_says_so(tmp_path):
    _runtimes(tmp_path, "runtimes_quick_cpu", "cpu (x86)", [("03_hinton_kd", 50.0, True),
                                                            ("04_x", 10.0, False)])
    said = results.expected_time("03_hinton_kd", work=72, directory=tmp_path)
    assert "1.0 h" in said and "estimate" in said and "not been timed" in said  # 50 s × 72
    assert "quick run" not in results.expected_time("04_x", directory=tmp_path)  # failed run: no time
    assert results.image_work_ratio() == pytest.approx(
        60_000 * config.FULL.student_epochs / (config.QUICK.train_size * config.QUICK.student_epochs))


def test_full_profile_notice_speaks_only_at_full(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KDTEACH_PROFILE", "quick")
    results.full_profile_notice("03_hinton_kd", directory=tmp_path)
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("KDTEACH_PROFILE", "full")
    results.full_profile_notice("03_hinton_kd", directory=tmp_path)
    out = capsys.readouterr().out
    assert out.startswith("Full profile") and "KDTEACH_PROFILE" in out

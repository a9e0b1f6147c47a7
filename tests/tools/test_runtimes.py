"""tools.runtimes: each notebook timed alone, empty cache then cached, failures reported."""
from __future__ import annotations

import time

import nbformat
import pytest

from tools import runtimes
from tools.notebooks import notebook_paths


@pytest.fixture(scope="module")
def report():
    return runtimes.run(["00_welcome"], log=lambda *a, **k: None)


def test_both_runs_are_measured(report):
    (row,) = report["rows"]
    assert row["notebook"] == "00_welcome"
    for mode in ("empty_cache", "cached"):
        assert row[mode]["passed"], row[mode]["output_tail"]
        assert row[mode]["seconds"] > 1  # a kernel start alone takes longer than that
        assert row[mode]["peak_bytes"] > 100 * 2**20  # a kernel with torch loaded


def test_markdown_table(report):
    table = runtimes.markdown(report)
    assert table.splitlines()[0] == "| notebook | empty cache | cached |"
    assert "| `00_welcome` |" in table and "GiB" in table


def test_a_failing_notebook_is_reported(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("assert 1 + 1 == 3, 'arithmetic'")])
    nbformat.write(nb, tmp_path / "99_broken.ipynb")
    report = runtimes.run(["99_broken"], src=tmp_path, log=lambda *a, **k: None)
    broken = report["rows"][0]["empty_cache"]
    assert not broken["passed"] and "arithmetic" in broken["output_tail"]
    assert "(failed)" in runtimes.markdown(report)


def test_a_notebook_over_its_timeout_is_stopped_and_reported(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(120)")])
    nbformat.write(nb, tmp_path / "98_slow.ipynb")
    start = time.perf_counter()
    report = runtimes.run(["98_slow"], src=tmp_path, timeout=10, log=lambda *a, **k: None)
    assert time.perf_counter() - start < 60  # both runs stopped, neither slept its 120 s
    for mode in ("empty_cache", "cached"):
        run = report["rows"][0][mode]
        assert not run["passed"] and "timeout" in run["output_tail"], run


def test_unknown_notebook_names_the_fix():
    with pytest.raises(ValueError, match="stems such as 00_welcome"):
        notebook_paths(names=["no_such_notebook"])


def test_notebooks_are_named_by_stem_or_path(tmp_path):
    """One listing for both tools: stems looked up in the folder, or paths to notebooks;
    a missing one is a FileNotFoundError (tools.publish) and a ValueError (tools.runtimes)."""
    for name in ("02_b", "01_a"):
        nbformat.write(nbformat.v4.new_notebook(), tmp_path / f"{name}.ipynb")
    assert [p.name for p in notebook_paths(tmp_path)] == ["01_a.ipynb", "02_b.ipynb"]
    assert notebook_paths(tmp_path, ["02_b", str(tmp_path / "01_a.ipynb")]) == [
        tmp_path / "02_b.ipynb", tmp_path / "01_a.ipynb"]
    with pytest.raises(FileNotFoundError, match="03_c.ipynb"):
        notebook_paths(tmp_path, ["01_a", "03_c"])
    assert notebook_paths()[0].name == "00_welcome.ipynb"  # the course's, by default

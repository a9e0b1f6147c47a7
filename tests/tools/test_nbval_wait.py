"""tools.nbval_wait: nbval's cells stay together under pytest-xdist and get time for output."""
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tools import nbval_wait

ROOT = Path(__file__).resolve().parents[2]


def fake_cell(notebook):
    """What the hook reads of an nbval cell item."""
    return types.SimpleNamespace(cell={"source": "1 + 1"}, output_timeout=5,
                                 parent=types.SimpleNamespace(nodeid=notebook))


def test_cells_wait_longer_for_their_output():
    cells = [fake_cell("notebooks/01_a.ipynb"), fake_cell("notebooks/02_b.ipynb")]
    plain = types.SimpleNamespace(nodeid="tests/unit/test_x.py::test_y")
    nbval_wait.pytest_collection_modifyitems([*cells, plain])
    assert [c.output_timeout for c in cells] == [nbval_wait.OUTPUT_WAIT_S] * 2
    assert not hasattr(plain, "output_timeout")


def test_a_longer_wait_is_kept():
    cell = fake_cell("notebooks/01_a.ipynb")
    cell.output_timeout = 600
    nbval_wait.pytest_collection_modifyitems([cell])
    assert cell.output_timeout == 600


@pytest.mark.parametrize("nodeid, unit", [
    ("notebooks/03_hinton_kd.ipynb::Cell 7", "notebooks/03_hinton_kd.ipynb"),
    ("notebooks/03_hinton_kd.ipynb::Cell 12", "notebooks/03_hinton_kd.ipynb"),
    ("tests/course/test_student_edition.py::test_runs[03_hinton_kd]",
     "tests/course/test_student_edition.py::test_runs[03_hinton_kd]"),
    ("tests/unit/test_losses.py::TestKD::test_value", "tests/unit/test_losses.py::TestKD::test_value"),
])
def test_a_notebook_is_one_unit_of_work_and_any_other_test_its_own(nodeid, unit):
    assert nbval_wait.work_unit(nodeid) == unit


def test_two_workers_run_each_notebook_whole_in_one_kernel(tmp_path):
    """Each cell needs the one before it: split over two workers, the notebooks would fail."""
    pytest.importorskip("xdist")
    nbformat = pytest.importorskip("nbformat")
    for name in ("a", "b"):
        cells = [nbformat.v4.new_code_cell("n = 0")]
        cells += [nbformat.v4.new_code_cell(f"assert n == {i}\nn += 1") for i in range(7)]
        nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / f"{name}.ipynb")
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "tools.nbval_wait", "--nbval-lax",
         "--nbval-current-env", "-p", "no:cacheprovider", "-o", "addopts=", "-q",
         f"--rootdir={tmp_path}", "a.ipynb", "b.ipynb"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONPATH": python_path})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "16 passed" in proc.stdout, proc.stdout[-2000:]


def test_the_repository_conftest_loads_it(pytestconfig):
    hooks = pytestconfig.pluginmanager.hook
    assert nbval_wait.pytest_collection_modifyitems in [
        impl.function for impl in hooks.pytest_collection_modifyitems.get_hookimpls()]
    if hasattr(hooks, "pytest_xdist_make_scheduler"):
        assert nbval_wait.pytest_xdist_make_scheduler in [
            impl.function for impl in hooks.pytest_xdist_make_scheduler.get_hookimpls()]

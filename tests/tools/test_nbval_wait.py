"""tools.nbval_wait: nbval's cells stay together under pytest-xdist and get time for output."""
import types

import pytest

from tools import nbval_wait


class FakeCell:
    """What the hook reads of an nbval cell item."""

    def __init__(self, notebook):
        self.cell = {"source": "1 + 1"}
        self.output_timeout = 5
        self.parent = types.SimpleNamespace(nodeid=notebook)
        self.marks = []

    def add_marker(self, mark):
        self.marks.append(mark)


class FakeTest:
    def add_marker(self, mark):  # pragma: no cover - must not be called
        raise AssertionError("a plain test got a mark")


def test_cells_of_one_notebook_share_a_group_and_wait_longer():
    cells = [FakeCell("notebooks/01_a.ipynb"), FakeCell("notebooks/01_a.ipynb"),
             FakeCell("notebooks/02_b.ipynb")]
    nbval_wait.pytest_collection_modifyitems([*cells, FakeTest()])
    groups = [c.marks[0].kwargs["name"] for c in cells]
    assert all(c.marks[0].name == "xdist_group" for c in cells)
    assert groups == ["notebooks/01_a.ipynb", "notebooks/01_a.ipynb", "notebooks/02_b.ipynb"]
    assert all(c.output_timeout == nbval_wait.OUTPUT_WAIT_S for c in cells)


def test_a_longer_wait_is_kept():
    cell = FakeCell("notebooks/01_a.ipynb")
    cell.output_timeout = 600
    nbval_wait.pytest_collection_modifyitems([cell])
    assert cell.output_timeout == 600


def test_the_repository_conftest_loads_it(pytestconfig):
    hooks = [impl.function for impl in
             pytestconfig.pluginmanager.hook.pytest_collection_modifyitems.get_hookimpls()]
    assert nbval_wait.pytest_collection_modifyitems in hooks

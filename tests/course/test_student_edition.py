"""The student edition (``make student``): no solution survives, the exercises keep their
self-checks, and every notebook still runs top to bottom without its solutions.

The run uses nbval, as ``make test`` does for the course notebooks: unanswered exercises
print "Not answered yet" and return False, so only a cell that needs a solution's variables
can fail — and ``test_no_cell_reads_a_solutions_variables`` names such cells beforehand.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tools import publish

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = publish.notebook_paths(ROOT / "notebooks")
IDS = [p.stem for p in NOTEBOOKS]
CHECK_CALL = re.compile(r"\bexercises\.check_\w+\(")


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("edition") / "student"
    written = publish.student_edition(ROOT / "notebooks", out)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    return out


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ has no notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_solution_survives(path, edition):
    original, student = _read(path), _read(edition / path.name)
    solutions = [c.source.strip() for c in original.cells if publish.is_solution(c)]
    assert not [c for c in student.cells if publish.is_solution(c)], "a solution-tagged cell survived"
    for source in solutions:
        assert all(source not in c.source for c in student.cells), (
            f"the text of a solution survived:\n{source[:300]}")
    # Everything else is kept, in order and unchanged; outputs are cleared.
    assert [c.source for c in student.cells] == [
        c.source for c in original.cells if not publish.is_solution(c)]
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in student.cells if c.cell_type == "code")
    nbformat.validate(student)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_each_solution_follows_an_exercise_with_its_self_check(path):
    """A removed solution leaves its exercise behind: the last code cell before it sets a
    placeholder answer and calls ``exercises.check_…`` (the lesson-shape convention)."""
    cells = _read(path).cells
    for i, cell in enumerate(cells):
        if not publish.is_solution(cell):
            continue
        before = [c for c in cells[:i] if c.cell_type == "code" and not publish.is_solution(c)]
        assert before and CHECK_CALL.search(before[-1].source), (
            f"{path.name}: solution cell {i} does not follow an exercise cell that calls "
            f"exercises.check_…(answer); students would get no self-check")
        assert re.search(r"=\s*(None|\.\.\.)", before[-1].source), (
            f"{path.name}: the exercise cell before solution cell {i} should start the answer "
            f"at None (or ...): {before[-1].source[:200]!r}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_cell_reads_a_solutions_variables(path):
    deps = publish.solution_dependencies(_read(path))
    assert not deps, f"{path.name} breaks (or changes) without its solutions: " + "; ".join(
        f"cell {cell} reads `{name}`, last set by solution cell {sol}" for cell, name, sol in deps)


def test_solution_dependencies_finds_them():
    v4 = nbformat.v4
    sol = {"tags": ["solution"]}
    nb = v4.new_notebook(cells=[
        v4.new_code_cell("import numpy as np\nanswer = None\nexercises.check_x(answer)"),
        v4.new_code_cell("answer = 2\nhelper = lambda v: v\nimport math", metadata=sol),
        v4.new_code_cell("%matplotlib inline\ny = np.sqrt(answer)\nprint(math.pi)"),  # two
        v4.new_code_cell("helper = 3\nprint(helper)"),  # rebinds first: fine
    ])
    assert publish.solution_dependencies(nb) == [(2, "answer", 1), (2, "math", 1)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_student_notebook_runs_without_solutions(path, edition):
    """Run the student notebook top to bottom with nbval (quick profile, this session's
    teacher cache); exercises left unanswered must not stop it."""
    nb = edition / path.name
    cmd = [sys.executable, "-m", "pytest", str(nb), "--nbval-lax", "--nbval-current-env",
           "--nbval-cell-timeout=300", "-p", "no:cacheprovider", "-q", "-o", "addopts=",
           f"--rootdir={edition}", "-W", "ignore::DeprecationWarning", "-p", "tools.nbval_wait"]
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=edition,
                          env={**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": python_path})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, (
        f"{path.name} fails without its solutions (student edition):\n{out[-4000:]}")


def test_make_student_runs_the_publisher():
    if shutil.which("make") is None:
        pytest.skip("make is not on PATH")
    proc = subprocess.run(["make", "-n", "-C", str(ROOT), "student"], capture_output=True,
                          text=True, env={**os.environ, "MAKEFLAGS": ""})
    assert proc.returncode == 0, proc.stderr
    assert "-m tools.publish student --out build/student" in proc.stdout


def test_command_line(tmp_path, capsys):
    assert publish.main(["student", "--out", str(tmp_path / "s"), "00_welcome"]) == 0
    assert [p.name for p in (tmp_path / "s").glob("*.ipynb")] == ["00_welcome.ipynb"]
    assert "1 notebooks without solutions" in capsys.readouterr().out

"""``python -m tools.publish student|book`` never loses a user's files.

Regression tests for a publisher that deleted ``--out`` before checking anything: an
``--out`` holding other files (or holding ``--src``), ``--out`` equal to or inside ``--src``,
and a build stopped by a malformed notebook all wiped the folder. Now a build goes into a
fresh folder beside ``--out`` and replaces it only when it is absent, empty, or an unchanged
earlier output of the tool (marked with ``.kdteach-build``); see ``tools/publish.py``.

Fast: the student edition does not execute notebooks, and the site is built with
``run=False`` and no npm, from two-cell notebooks.
"""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from tools import publish

ROOT = Path(__file__).resolve().parents[2]
MARKER = ".kdteach-build"


def _notebooks(folder: Path, *stems: str, answer: str = "42") -> Path:
    """``folder`` with small course-shaped notebooks (an exercise and its solution)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems or ("00_a",):
        nb = v4.new_notebook(cells=[
            v4.new_markdown_cell(f"# {stem}"),
            v4.new_code_cell("answer = None"),
            v4.new_code_cell(f"answer = {answer}", metadata={"tags": ["solution"]})])
        nbformat.write(nb, folder / f"{stem}.ipynb")
    return folder


def _student(src: Path, out: Path, names=None):
    return publish.student_edition(src, out, names)


def _book(src: Path, out: Path, names=None):
    return publish.build_site(src, out, names, run=False, fetch=False,
                              vendor=out.parent / "no-vendor", log=lambda *a: None)


BUILDERS = pytest.mark.parametrize("build", [_student, _book], ids=["student", "book"])


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (folders implied)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(parent: Path) -> list[str]:
    """Build or set-aside folders the publisher left beside its output."""
    return [p.name for p in parent.iterdir() if ".building-" in p.name or ".old-" in p.name]


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- --out that holds other things --------------------------------------------------------

def test_out_holding_src_and_a_users_notes_is_left_alone(tmp_path, capsys):
    """The reported case: ``--src /tmp/x/nb --out /tmp/x`` deleted /tmp/x, notes and all."""
    x = tmp_path / "x"
    src = _notebooks(x / "nb")
    (x / "notes.txt").write_text("t\n")
    before = _snapshot(x)
    assert publish.main(["student", "--src", str(src), "--out", str(x)]) != 0
    line = _one_line_error(capsys.readouterr().err)
    assert str(x) in line and "contains the source folder" in line
    assert _snapshot(x) == before  # notes.txt and the notebooks survive
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


@BUILDERS
def test_out_with_other_files_is_refused(build, tmp_path):
    src = _notebooks(tmp_path / "src")
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("mine\n")
    (out / "sub" / "data.csv").write_text("1,2\n")
    before = _snapshot(out)
    with pytest.raises(ValueError, match=re.escape(str(out))) as err:
        build(src, out)
    assert "new or empty folder" in str(err.value) and "delete" in str(err.value)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]


def test_unmarked_output_of_an_older_version_is_refused(tmp_path):
    """A ``build/site`` made before outputs were marked looks like a site but has no marker:
    refused (delete it once), not guessed at."""
    src = _notebooks(tmp_path / "src")
    out = tmp_path / "site"
    (out / "_static").mkdir(parents=True)
    for name in ("index.html", "00_a.html"):
        (out / name).write_text("<html></html>")
    before = _snapshot(out)
    with pytest.raises(ValueError, match="made before outputs were marked"):
        _book(src, out)
    assert _snapshot(out) == before


def test_empty_out_folder_is_used_and_marked(tmp_path):
    src = _notebooks(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    _student(src, out)
    assert (out / "00_a.ipynb").is_file()
    assert (out / MARKER).read_text().startswith("made by python -m tools.publish student")


# -- --out and --src overlapping ----------------------------------------------------------

@BUILDERS
def test_out_equal_to_src_is_refused(build, tmp_path):
    src = _notebooks(tmp_path / "nb", "00_a", "01_b")
    before = _snapshot(src)
    with pytest.raises(ValueError, match=rf"--out {re.escape(str(src))} is the source folder"):
        build(src, src)
    assert _snapshot(src) == before


def test_out_symlinked_to_src_is_refused(tmp_path):
    src = _notebooks(tmp_path / "nb")
    link = tmp_path / "link"
    link.symlink_to(src, target_is_directory=True)
    before = _snapshot(src)
    with pytest.raises(ValueError, match="is the source folder") as err:
        _student(src, link)
    assert str(link) in str(err.value) and str(src) in str(err.value)
    assert _snapshot(src) == before and link.is_symlink()


@BUILDERS
def test_out_inside_src_is_refused(build, tmp_path):
    src = _notebooks(tmp_path / "nb")
    before = _snapshot(src)
    with pytest.raises(ValueError, match="is inside the source folder"):
        build(src, src / "edition")
    assert _snapshot(src) == before  # nothing written among the notebooks
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb"]


@BUILDERS
def test_src_inside_out_is_refused(build, tmp_path):
    out = tmp_path / "site"
    src = _notebooks(out / "nb")
    (out / "notes.txt").write_text("mine\n")
    before = _snapshot(out)
    with pytest.raises(ValueError, match="contains the source folder"):
        build(src, out)
    assert _snapshot(out) == before


# -- malformed notebooks -----------------------------------------------------------------

MALFORMED = {
    "not-json": ("not json {", "is not JSON"),
    "not-a-notebook": ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, '
                       '"cells": [{"cell_type": "code", "source": "x"}]}', "not a valid notebook"),
}


@BUILDERS
@pytest.mark.parametrize("kind", MALFORMED)
def test_malformed_notebook_is_named_and_the_output_kept(build, kind, tmp_path):
    src = _notebooks(tmp_path / "src")
    out = tmp_path / "out"
    build(src, out)
    before = _snapshot(out)
    text, what = MALFORMED[kind]
    bad = src / "01_bad.ipynb"
    bad.write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(bad))) as err:
        build(src, out)
    assert what in str(err.value)
    assert _snapshot(out) == before
    assert _leftovers(tmp_path) == []


def test_malformed_notebook_on_the_command_line(tmp_path, capsys):
    src = _notebooks(tmp_path / "src")
    (src / "01_bad.ipynb").write_text("[]")
    out = tmp_path / "out"
    assert publish.main(["student", "--src", str(src), "--out", str(out)]) != 0
    line = _one_line_error(capsys.readouterr().err)
    assert str(src / "01_bad.ipynb") in line and "not a notebook" in line
    assert not out.exists() and _leftovers(tmp_path) == []


def test_user_errors_exit_non_zero_with_one_line(tmp_path):
    """The real command line: no traceback for a mistake the user can fix."""
    src = _notebooks(tmp_path / "nb")
    proc = subprocess.run([sys.executable, "-m", "tools.publish", "student", "--src", str(src),
                           "--out", str(src)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode != 0
    line = _one_line_error(proc.stderr)
    assert line.startswith("python -m tools.publish student: error: --out ")
    assert (src / "00_a.ipynb").is_file()


# -- replacing an earlier build -------------------------------------------------------------

@BUILDERS
def test_earlier_build_is_replaced(build, tmp_path):
    src = _notebooks(tmp_path / "src", "00_a", "01_b")
    out = tmp_path / "out"
    build(src, out)
    assert (out / MARKER).is_file()
    (src / "01_b.ipynb").unlink()
    _notebooks(src, "00_a", answer="43")
    (src / "00_a.ipynb").write_text((src / "00_a.ipynb").read_text().replace("# 00_a", "# 00_a v2"))
    build(src, out)  # and again: the output is the tool's own
    names = {p.name for p in out.iterdir()}
    assert MARKER in names
    assert not {"01_b.ipynb", "01_b.html"} & names  # replaced, not merged
    built = out / ("00_a.ipynb" if build is _student else "00_a.html")
    assert "00_a v2" in built.read_text()
    assert _leftovers(tmp_path) == []


def test_a_students_work_in_an_earlier_build_is_kept(tmp_path):
    """``build/student`` is where students answer the exercises: an edited notebook or an
    added file makes the next build refuse, naming them; an unchanged checkpoint copy does not."""
    src = _notebooks(tmp_path / "src")
    out = tmp_path / "student"
    _student(src, out)
    checkpoints = out / ".ipynb_checkpoints"
    checkpoints.mkdir()
    (checkpoints / "00_a-checkpoint.ipynb").write_bytes((out / "00_a.ipynb").read_bytes())
    _student(src, out)  # a checkpoint identical to a built notebook is no one's work

    nb = nbformat.read(out / "00_a.ipynb", as_version=4)
    nb.cells[1].source = "answer = 42  # mine"
    nbformat.write(nb, out / "00_a.ipynb")
    (out / "my_notes.md").write_text("notes\n")
    before = _snapshot(out)
    with pytest.raises(ValueError, match=re.escape(str(out))) as err:
        _student(src, out)
    assert "00_a.ipynb (changed)" in str(err.value) and "my_notes.md (added)" in str(err.value)
    assert _snapshot(out) == before and _leftovers(tmp_path) == []


# -- failing builds ----------------------------------------------------------------------------

def _fail(*args, **kwargs):
    raise RuntimeError("the build broke half-way")


@BUILDERS
@pytest.mark.parametrize("earlier", [False, True], ids=["no-output", "earlier-output"])
def test_failing_build_leaves_no_temporary_folder(build, earlier, tmp_path, monkeypatch):
    src = _notebooks(tmp_path / "src")
    out = tmp_path / "out"
    if earlier:
        build(src, out)
    before = _snapshot(out) if earlier else None
    # Fails after the first files were written: the student edition while converting a
    # notebook, the site at its index page.
    monkeypatch.setattr(publish, "student_notebook" if build is _student else "index_page", _fail)
    with pytest.raises(RuntimeError, match="half-way"):
        build(src, out)
    assert _leftovers(tmp_path) == []
    if earlier:
        assert _snapshot(out) == before
    else:
        assert not out.exists()


# -- the npm packages in build/vendor -------------------------------------------------------

def _fake_npm(monkeypatch, calls: list):
    """npm that "packs" a tarball holding each package's marker file."""
    def run(cmd, **kwargs):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("--pack-destination") + 1])
        with tarfile.open(dest / "pkg.tgz", "w:gz") as tar:
            for name in ("package/require.js", "package/dist/embed-amd.js", "package/MathJax.js"):
                info = tarfile.TarInfo(name)
                info.size = 2
                tar.addfile(info, io.BytesIO(b"//"))
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(publish.shutil, "which", lambda name: "/fake/npm")
    monkeypatch.setattr(publish.subprocess, "run", run)


def test_vendor_folders_it_did_not_unpack_are_kept(tmp_path, monkeypatch, capsys):
    calls = []
    _fake_npm(monkeypatch, calls)
    vendor = tmp_path / "vendor"
    for package, version in publish.NPM_PACKAGES.items():
        folder = vendor / f"{package.replace('/', '__')}-{version}"
        folder.mkdir(parents=True)
        (folder / "mine.txt").write_text("not the package\n")
    before = _snapshot(vendor)
    assert publish.vendor_scripts(vendor, fetch=True) == {}
    assert _snapshot(vendor) == before and calls == []
    assert "delete" in capsys.readouterr().err
    # An empty vendor folder is filled as before.
    assert set(publish.vendor_scripts(tmp_path / "fresh", fetch=True)) == {
        "widgets", "requirejs", "mathjax"}

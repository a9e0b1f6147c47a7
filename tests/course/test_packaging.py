"""The repository's packaging stays consistent: dependencies, CI command, notebooks, data."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)

CONDA_TO_PIP = {"pytorch": "torch", "playwright-python": "playwright"}
CONDA_ONLY = {"python", "pip"}


def _name(requirement: str) -> str:
    """The bare package name of a requirement such as ``torch>=2`` or ``python >=3.10``."""
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower()


def _parse_environment_yml(text: str) -> dict:
    """Just enough YAML for environment.yml: top-level keys, lists, and one nested
    ``- pip:`` list. Used when PyYAML is not installed."""
    out: dict = {}
    key = None
    nested = None
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        item = line.strip()
        if indent == 0:
            key, _, value = item.partition(":")
            out[key] = value.strip() or []
            nested = None
        elif item.startswith("- "):
            value = item[2:].strip()
            if value.endswith(":"):
                nested = []
                out[key].append({value[:-1]: nested})
            elif nested is not None and indent > 2:
                nested.append(value)
            else:
                nested = None
                out[key].append(value)
    return out


def _load_environment_yml() -> dict:
    text = (ROOT / "environment.yml").read_text()
    try:
        import yaml
    except ImportError:
        return _parse_environment_yml(text)
    return yaml.safe_load(text)


def _load_pyproject() -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# -- (a) environment.yml and pyproject.toml agree -------------------------------------

def test_tiny_yaml_parser_agrees_with_pyyaml():
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "environment.yml").read_text()
    assert _parse_environment_yml(text) == yaml.safe_load(text)


def test_environment_yml_matches_pyproject():
    env = _load_environment_yml()
    assert "conda-forge" in env["channels"]
    conda, pip = set(), []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep.get("pip", [])
        else:
            conda.add(_name(dep))
    assert "python" in conda and "pip" in conda
    python = next(d for d in env["dependencies"] if isinstance(d, str) and _name(d) == "python")
    assert ">=3.10" in python.replace(" ", "")
    conda = {CONDA_TO_PIP.get(n, n) for n in conda - CONDA_ONLY}

    project = _load_pyproject()["project"]
    pyproject = {_name(d) for d in project["dependencies"]}
    assert conda == pyproject, (
        f"only in environment.yml: {sorted(conda - pyproject)}; "
        f"only in pyproject.toml: {sorted(pyproject - conda)}")
    assert project["requires-python"].replace(" ", "") == ">=3.10"
    assert "-e ." in pip, "environment.yml should install the course itself (pip: [-e .])"


TEST_TOOLS = {"pytest", "hypothesis", "nbconvert", "playwright"}


def test_test_tools_are_an_extra_not_what_the_course_needs():
    project = _load_pyproject()["project"]
    runtime = {_name(d) for d in project["dependencies"]}
    assert runtime == {"torch", "torchvision", "numpy", "matplotlib", "jupyterlab", "nbval",
                       "ipywidgets", "tqdm"}
    assert not runtime & TEST_TOOLS
    assert {_name(d) for d in project["optional-dependencies"]["test"]} >= TEST_TOOLS


def test_make_setup_installs_the_test_extra():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install -e '\.\[test\]'", makefile)


def test_make_test_fast_runs_the_unit_tests_only():
    out = _make_n("test-fast")
    assert re.search(r"\.venv/bin/python -m pytest tests/unit\b", out)
    assert "browser" not in out and "notebooks" not in out


def test_version_is_single_sourced():
    import kdteach

    project = _load_pyproject()["project"]
    assert "version" in project.get("dynamic", []) or project.get("version") == kdteach.__version__


# -- (b) CI runs the README's test command -------------------------------------------

def _readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^#+\s*Run the tests\s*$(.*?)(?=^#+\s)", text + "\n# end", re.M | re.S)
    assert match, 'README.md needs a "Run the tests" heading'
    block = re.search(r"^```[^\n]*\n(.*?)^```", match.group(1), re.M | re.S)
    assert block, 'README.md: the "Run the tests" section needs a fenced command block'
    lines = [ln.strip() for ln in block.group(1).splitlines() if ln.strip()]
    assert len(lines) == 1, f"the test command should be one line, got {lines}"
    return lines[0].removeprefix("$ ")


def _ci_commands() -> list[str]:
    """The lines of .ci/run that do something besides shell setup (set, cd, comments)."""
    lines = []
    for line in (ROOT / ".ci" / "run").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or re.match(r"(set|cd)\s", line):
            continue
        lines.append(line)
    return lines


def test_ci_runs_the_readme_test_command():
    assert _ci_commands() == [_readme_test_command()]


def test_ci_script_is_strict_bash():
    text = (ROOT / ".ci" / "run").read_text()
    assert text.startswith("#!") and "bash" in text.splitlines()[0]
    assert "set -euo pipefail" in text


# -- (c) notebooks are stored clean --------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (
        f"{path.name}: code cells {dirty} have outputs or execution counts; clear them "
        f"with `jupyter nbconvert --clear-output --inplace {path.relative_to(ROOT)}`")


# -- (d) data/README.md, kdteach.data.SHA256 and the files agree ----------------------

def _readme_sha256() -> dict[str, str]:
    text = (ROOT / "data" / "README.md").read_text()
    return {m.group(2): m.group(1)
            for m in re.finditer(r"^([0-9a-f]{64})\s+\*?(\S+)\s*$", text, re.M)}


def test_data_readme_lists_the_same_sha256_as_the_code():
    from kdteach import data, text

    assert _readme_sha256() == {**data.SHA256, **text.SHA256}


@pytest.mark.parametrize("rel", sorted(_readme_sha256()))
def test_shipped_file_matches_its_sha256(rel):
    path = ROOT / "data" / rel
    assert path.is_file(), f"{path} is missing; restore it with `git checkout -- data/{rel}`"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == _readme_sha256()[rel]


# -- (e) the Makefile parses and its targets do what the README says ------------------

def _make_n(target: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not on PATH")
    proc = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True,
                          text=True, env={**os.environ, "MAKEFLAGS": ""})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_make_test_runs_pytest_with_the_quick_profile():
    out = _make_n("test")
    assert re.search(r"\.venv/bin/python -m pytest", out)
    assert ".venv/bin/python -m kdteach.data" in out
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: export KDTEACH_PROFILE \?= quick$", makefile, re.M)


def test_make_lab_starts_jupyterlab_in_notebooks():
    out = _make_n("lab")
    assert "jupyter lab" in out and "--ServerApp.root_dir=notebooks" in out


def test_make_gpu_results_writes_every_gpu_results_file():
    out = _make_n("gpu-results")
    for name in ("bench_gpu", "bench_gpu_extras"):
        assert f"--json notebooks/results/{name}.json" in out, name
    assert "-m kdteach.experiments.hinton_mnist" in out
    assert "KDTEACH_PROFILE=full .venv/bin/python -m tools.runtimes" in out
    assert "-m tools.cuda_graphs" in out


def test_make_gpu_results_refuses_a_machine_without_cuda():
    """On a CPU the full profile would run for hours: the target stops first and says why."""
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the guard only stops CPU-only machines")
    makefile = (ROOT / "Makefile").read_text()
    guard = re.search(r"^gpu-results:.*\n\t@(.*)$", makefile, re.M).group(1)
    proc = subprocess.run(guard.replace("$(PY)", sys.executable), shell=True, cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "needs a CUDA GPU" in proc.stderr


# -- kdteach/__init__.py ------------------------------------------------------------

def test_import_kdteach_is_cheap_and_submodules_are_lazy():
    code = ("import sys, kdteach\n"
            "assert 'torch' not in sys.modules, 'import kdteach imported torch'\n"
            "assert kdteach.config.profile_name() in ('quick', 'full')\n"
            "assert 'kdteach.data' not in sys.modules\n"
            "assert kdteach.data.SHA256\n"
            "assert not hasattr(kdteach, 'no_such_module')\n"
            "print(kdteach.__version__)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"\d+\.\d+\.\d+\s*", proc.stdout)

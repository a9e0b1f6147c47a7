"""Results files: what an experiment measured, written by the code that measured it.

Full-profile numbers are produced on a GPU by scripts and notebooks and committed under
``notebooks/results/<name>.json``; notebooks read them back and show them beside their own
quick-profile numbers. Each file records where, when and how long: device, torch version,
git commit, profile, date and wall time. Files are written atomically.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
from pathlib import Path

import torch

from . import config
from .files import atomic_write


def provenance() -> dict:
    """Device, library versions, commit, profile and date of this run."""
    dev = config.device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=config.project_root(),
                                capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"device": f"{dev.type} ({name})", "torch": torch.__version__, "commit": commit,
            "profile": config.profile_name(), "cpu_threads": torch.get_num_threads(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def path(name: str, directory=None) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"name={name!r} must be a plain file stem such as 'hinton_mnist_full'.")
    return Path(directory or config.results_dir()) / f"{name}.json"


def write(name: str, results: dict, *, seconds: float | None = None, directory=None,
          env: dict | None = None) -> Path:
    """Write ``results`` with ``seconds`` of wall time and ``env``, atomically.

    ``env`` is :func:`provenance` taken when the run *started* (so the commit is the code
    that ran, even if the checkout moved during a long run); by default, taken now.
    """
    payload = {"environment": env or provenance(), "wall_seconds": seconds, "results": results}
    return write_json(path(name, directory), payload, sort_keys=True)


def write_json(target, payload, *, sort_keys: bool = False) -> Path:
    """Write ``payload`` as JSON to ``target`` atomically: a temp file in the same folder,
    then a rename, so a crash never leaves a half-written file behind.

    Only standard JSON is written: a NaN or infinite number (which other tools cannot read)
    is refused with the key that holds it.
    """
    target = Path(target)
    bad = _non_finite(payload)
    if bad:
        raise ValueError(f"{bad} is not a finite number; results files hold standard JSON. "
                         "Record a value that could not be measured as None.")
    text = json.dumps(payload, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"
    with atomic_write(target, "w") as f:
        f.write(text)
    return target


def _non_finite(value, where: str = "payload") -> str | None:
    """Where in ``value`` a NaN or infinite float sits (e.g. ``payload['runs'][2]``), if anywhere."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} = {value}"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{where}[{key!r}]")
        if found:
            return found
    return None


def read(name: str, directory=None) -> dict | None:
    """The stored results file ``name``, or ``None`` if it has not been measured yet."""
    target = path(name, directory)
    if not target.is_file():
        return None
    try:
        return json.loads(target.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{target} is not valid JSON ({err}); restore it with "
                         f"`git checkout -- {_from_root(target)}` or re-run the "
                         "experiment that writes it.") from err


def _from_root(target: Path) -> str:
    """``target`` as a path from the repository root (what ``git checkout --`` needs there)."""
    try:
        return str(target.resolve().relative_to(config.project_root()))
    except ValueError:
        return str(target)


def _measured_seconds(name: str, notebook: str, directory=None) -> tuple[float, str] | None:
    """A notebook's cached-teacher wall time from the runtimes file ``name``, and its device."""
    try:
        report = read(name, directory)
    except ValueError:
        return None
    for row in (report or {}).get("results", {}).get("rows", []):
        if row.get("notebook") == notebook and row.get("cached", {}).get("passed"):
            return float(row["cached"]["seconds"]), report["environment"]["device"]
    return None


def image_work_ratio() -> float:
    """Training work (examples × student epochs) of the full profile over the quick one, for
    the image notebooks: the whole 60,000-image training sets against the quick subsets."""
    q, f = config.QUICK, config.FULL
    return (60_000 * f.student_epochs) / (q.train_size * q.student_epochs)


def expected_time(notebook: str, *, work: float | None = None, directory=None) -> str:
    """What a full-profile run of ``notebook`` (e.g. ``"03_hinton_kd"``) should take.

    A measured full-profile time (``runtimes_full_cuda.json``, written by
    ``python -m tools.runtimes`` on a GPU) when there is one; otherwise an estimate, stated
    as one: the quick profile's measured time times ``work``, the ratio of training work
    between the two profiles (default :func:`image_work_ratio`), about what a CPU would take.
    """
    full = _measured_seconds("runtimes_full_cuda", notebook, directory)
    if full:
        return f"{notebook} took {full[0] / 60:.0f} min at the full profile on {full[1]} (measured)."
    quick = _measured_seconds("runtimes_quick_cpu", notebook, directory)
    work = image_work_ratio() if work is None else float(work)
    if not quick:
        return (f"{notebook} has not been timed at the full profile, which trains on about "
                f"{work:.0f}× the quick profile's examples × epochs.")
    return (f"{notebook} has not been timed at the full profile yet. It trains on about {work:.0f}× "
            f"the quick profile's examples × epochs; the quick run took {quick[0]:.0f} s on "
            f"{quick[1]}, so expect roughly {quick[0] * work / 3600:.1f} h on a CPU like that one "
            "(an estimate, not a measurement); a GPU should be much faster.")


def full_profile_notice(notebook: str, *, work: float | None = None, directory=None) -> None:
    """At ``KDTEACH_PROFILE=full``, print how long ``notebook`` should take; at quick, nothing."""
    if config.profile_name() == "full":
        print("Full profile (paper scale). " + expected_time(notebook, work=work, directory=directory)
              + " Interrupt the kernel and unset KDTEACH_PROFILE for the quick run.")

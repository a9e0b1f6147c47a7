"""How long each notebook takes, measured the way the test command runs it.

    python -m tools.runtimes                      # every notebook (or: make runtimes)
    python -m tools.runtimes 00_welcome 03_hinton_kd

Each notebook is run alone with nbval in a fresh kernel, twice: first with an empty teacher
cache (it trains the teachers it needs, as on a student's first run), then with the cache
that run filled (it loads them, as on every later run). For each run it records the wall
time, including the kernel's start, and the peak memory of the largest process (the
kernel). It prints the table as Markdown, ready for the README, and, when every notebook was
measured, writes it to ``notebooks/results/runtimes_<profile>_<device>.json`` with the device,
date and commit (``--out NAME`` picks another name).

The profile and device are this process's: ``KDTEACH_PROFILE=full python -m tools.runtimes``
on a GPU measures the full profile there.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kdteach import config, results
from tools.notebooks import notebook_paths

# Runs a command and prints the largest resident set of its process tree (Linux: KiB).
_PEAK_WRAPPER = ("import resource, subprocess, sys; "
                 "code = subprocess.run(sys.argv[1:]).returncode; "
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
                 "sys.exit(code)")


#: (seconds per cell, seconds per notebook) before a run counts as failed. Guards against a
#: hang, not budgets: the full profile trains at paper scale, so it gets far longer.
TIMEOUTS = {"quick": (300, 900), "full": (3600, 4 * 3600)}


def measure(notebook: Path, cache: Path, *, timeout: int | None = None) -> dict:
    """Run ``notebook`` with nbval, teachers cached in ``cache``: seconds, peak bytes, passed.

    A run over ``timeout`` seconds (default: :data:`TIMEOUTS` for the profile) is stopped,
    with the kernel it started, and reported as failed; the other notebooks still run.
    """
    cell_limit, notebook_limit = TIMEOUTS[config.profile_name()]
    timeout = timeout or notebook_limit
    cmd = [sys.executable, "-c", _PEAK_WRAPPER, sys.executable, "-m", "pytest", str(notebook),
           "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--nbval-lax", "--nbval-current-env",
           f"--nbval-cell-timeout={cell_limit}", f"--rootdir={notebook.parent}", "-p", "tools.nbval_wait"]
    python_path = os.pathsep.join(filter(None, [str(config.project_root()), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "KDTEACH_CACHE": str(cache), "KDTEACH_PROFILE": config.profile_name(),
           "MPLBACKEND": "Agg", "PYTHONPATH": python_path}
    start = time.perf_counter()
    # A session of its own, so that a timeout stops pytest too, not just the wrapper (the
    # kernel, in its own session, exits when ipykernel sees its parent gone).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=notebook.parent, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        return {"seconds": time.perf_counter() - start, "passed": False, "peak_bytes": None,
                "output_tail": f"stopped after {timeout} s (timeout)\n" + (stdout + stderr)[-1800:]}
    seconds = time.perf_counter() - start
    peak_kib = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return {"seconds": seconds, "passed": proc.returncode == 0,
            "peak_bytes": int(peak_kib) * 1024 if peak_kib.isdigit() else None,
            "output_tail": "" if proc.returncode == 0 else (stdout + stderr)[-2000:]}


def run(names=None, *, src: Path | None = None, timeout: int | None = None, log=print) -> dict:
    """Measure ``names`` (default: every notebook) empty-cache then cached; return the report."""
    rows = []
    for path in notebook_paths(src, names):
        with tempfile.TemporaryDirectory(prefix="kdteach-cache-") as cache:
            row = {"notebook": path.stem}
            for mode in ("empty_cache", "cached"):
                row[mode] = measure(path, Path(cache), timeout=timeout)
                log(f"{path.stem:34s} {mode:11s} {row[mode]['seconds']:6.1f} s"
                    f"{'' if row[mode]['passed'] else '  FAILED'}", file=sys.stderr)
            rows.append(row)
    return {"profile": config.profile_name(), "rows": rows}


def markdown(report: dict) -> str:
    """The report as a Markdown table: one row per notebook, then the totals."""
    def cell(m):
        return f"{m['seconds']:.0f} s" + ("" if m["passed"] else " (failed)")

    lines = ["| notebook | empty cache | cached |", "|---|---:|---:|"]
    lines += [f"| `{r['notebook']}` | {cell(r['empty_cache'])} | {cell(r['cached'])} |"
              for r in report["rows"]]
    if len(report["rows"]) > 1:
        totals = [sum(r[m]["seconds"] for r in report["rows"]) / 60 for m in ("empty_cache", "cached")]
        lines.append(f"| all {len(report['rows'])} | {totals[0]:.1f} min | {totals[1]:.1f} min |")
    peaks = [r[m]["peak_bytes"] for r in report["rows"] for m in ("empty_cache", "cached")
             if r[m]["peak_bytes"]]
    if peaks:
        lines.append(f"\nLargest process (the kernel): {max(peaks) / 2**30:.1f} GiB.")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m tools.runtimes",
                                     description="Time every notebook, empty cache then cached.")
    parser.add_argument("notebooks", nargs="*", help="stems such as 00_welcome (default: all)")
    parser.add_argument("--out", default=None,
                        help="results file name (default runtimes_<profile>_<device> for a full run)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = run(args.notebooks)
    print(markdown(report))
    name = args.out or (None if args.notebooks else
                        f"runtimes_{report['profile']}_{config.device().type}")
    if name:
        print(f"wrote {results.write(name, report, seconds=time.perf_counter() - started)}")
    failed = [r["notebook"] for r in report["rows"]
              if not (r["empty_cache"]["passed"] and r["cached"]["passed"])]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return report


if __name__ == "__main__":
    report = main()
    sys.exit(1 if any(not (r["empty_cache"]["passed"] and r["cached"]["passed"])
                      for r in report["rows"]) else 0)

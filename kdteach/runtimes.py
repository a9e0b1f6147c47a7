"""How long each notebook takes, measured the way the test command runs it.

    python -m kdteach.runtimes                      # every notebook (or: make runtimes)
    python -m kdteach.runtimes 00_welcome 03_hinton_kd

Each notebook is run alone with nbval in a fresh kernel, twice: first with an empty teacher
cache (it trains the teachers it needs, as on a student's first run), then with the cache
that run filled (it loads them, as on every later run). For each run it records the wall
time, including the kernel's start, and the peak memory of the largest process (the
kernel). It prints the table as Markdown, ready for the README, and, when every notebook was
measured, writes it to ``notebooks/results/runtimes_<profile>_<device>.json`` with the device,
date and commit (``--out NAME`` picks another name).

The profile and device are this process's: ``KDTEACH_PROFILE=full python -m kdteach.runtimes``
on a GPU measures the full profile there.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import config, results

# Runs a command and prints the largest resident set of its process tree (Linux: KiB).
_PEAK_WRAPPER = ("import resource, subprocess, sys; "
                 "code = subprocess.run(sys.argv[1:]).returncode; "
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
                 "sys.exit(code)")


def notebooks(src: Path | None = None, names=None) -> list[Path]:
    """The notebooks in ``src`` (default ``notebooks/``), sorted, or only those in ``names``."""
    src = Path(src or config.project_root() / "notebooks")
    if not names:
        return sorted(src.glob("*.ipynb"))
    paths = [src / f"{Path(n).stem}.ipynb" for n in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"no such notebook in {src}: {', '.join(missing)}; "
                         f"names are stems such as 00_welcome.")
    return paths


def measure(notebook: Path, cache: Path, *, timeout: int = 900) -> dict:
    """Run ``notebook`` with nbval, teachers cached in ``cache``: seconds, peak bytes, passed."""
    cmd = [sys.executable, "-c", _PEAK_WRAPPER, sys.executable, "-m", "pytest", str(notebook),
           "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--nbval-lax", "--nbval-current-env",
           "--nbval-cell-timeout=300", f"--rootdir={notebook.parent}"]
    env = {**os.environ, "KDTEACH_CACHE": str(cache), "KDTEACH_PROFILE": config.profile_name(),
           "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=notebook.parent)
    seconds = time.perf_counter() - start
    peak_kib = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    return {"seconds": seconds, "passed": proc.returncode == 0,
            "peak_bytes": int(peak_kib) * 1024 if peak_kib.isdigit() else None,
            "output_tail": "" if proc.returncode == 0 else (proc.stdout + proc.stderr)[-2000:]}


def run(names=None, *, src: Path | None = None, log=print) -> dict:
    """Measure ``names`` (default: every notebook) empty-cache then cached; return the report."""
    rows = []
    for path in notebooks(src, names):
        with tempfile.TemporaryDirectory(prefix="kdteach-cache-") as cache:
            row = {"notebook": path.stem}
            for mode in ("empty_cache", "cached"):
                row[mode] = measure(path, Path(cache))
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
    parser = argparse.ArgumentParser(prog="python -m kdteach.runtimes",
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

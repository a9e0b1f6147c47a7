"""Run notebooks under several seeds: does every check cell hold for any seed?

    python -m tools.seeds 03_hinton_kd 04_dark_knowledge_experiments --seeds 0-4
    python -m tools.seeds --seeds 0,3                     # every notebook, seeds 0 and 3

Each notebook runs with nbval in a fresh kernel once per seed, with ``KDTEACH_SEED`` set
(``config.base_seed()`` and ``config.seeds(n)`` read it, so every seed of the notebook
moves), teachers cached across the seeds of one notebook. Prints a table of passed/failed
per notebook and seed, with the first failing cell's message, and writes it to
``notebooks/results/seeds_<profile>.json`` when ``--out`` names no other file.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from kdteach import config, results
from tools.notebooks import notebook_paths
from tools.runtimes import measure

_FAILED_CELL = re.compile(r"(Cell \d+[^\n]*|AssertionError[^\n]*)")


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` → [0, 1, 2, 3, 4]; ``"0,3,7"`` → [0, 3, 7]."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            seeds += list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise ValueError(f"--seeds {text!r}: give a range such as 0-4 or a list such as 0,3,7") from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f"--seeds {text!r}: give at least one seed, none negative")
    return seeds


def run(names=None, seeds=(0, 1, 2, 3, 4), *, src: Path | None = None, timeout=None,
        log=print) -> dict:
    rows = []
    for path in notebook_paths(src, names):
        row = {"notebook": path.stem, "seeds": {}}
        with tempfile.TemporaryDirectory(prefix="kdteach-cache-") as cache:
            for seed in seeds:
                with config.temporary_env(KDTEACH_SEED=str(seed)):
                    m = measure(path, Path(cache), timeout=timeout)
                found = _FAILED_CELL.findall(m["output_tail"]) if not m["passed"] else []
                row["seeds"][str(seed)] = {"passed": m["passed"], "seconds": m["seconds"],
                                           "failure": " / ".join(found[:2]) or m["output_tail"][-300:]
                                           if not m["passed"] else None}
                log(f"{path.stem:34s} seed {seed}: {'passed' if m['passed'] else 'FAILED'} "
                    f"({m['seconds']:.0f} s)", file=sys.stderr)
        rows.append(row)
    return {"profile": config.profile_name(), "seeds": list(seeds), "rows": rows}


def markdown(report: dict) -> str:
    seeds = [str(s) for s in report["seeds"]]
    lines = ["| notebook | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|" + "---|" * len(seeds)]
    for r in report["rows"]:
        lines.append(f"| `{r['notebook']}` | " + " | ".join(
            "passed" if r["seeds"][s]["passed"] else "**failed**" for s in seeds) + " |")
    failures = [f"- `{r['notebook']}` seed {s}: {r['seeds'][s]['failure']}"
                for r in report["rows"] for s in seeds if not r["seeds"][s]["passed"]]
    return "\n".join(lines + ([""] + failures if failures else []))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m tools.seeds", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="stems such as 03_hinton_kd (default: all)")
    parser.add_argument("--seeds", default="0-4", help="a range (0-4) or a list (0,3,7)")
    parser.add_argument("--out", default=None,
                        help="a file stem written to notebooks/results/ (default seeds_<profile>), "
                             "or a path ending in .json")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    out = Path(args.out) if args.out and args.out.endswith(".json") else None
    name = args.out or "seeds_" + config.profile_name()
    if out is None:
        results.path(name)  # a bad name fails now, not after every notebook has run
    report = run(args.notebooks, seeds)
    print(markdown(report))
    written = results.write_json(out, report, sort_keys=True) if out else results.write(name, report)
    print(f"wrote {written}")
    return report


if __name__ == "__main__":
    report = main()
    sys.exit(1 if any(not v["passed"] for r in report["rows"] for v in r["seeds"].values()) else 0)

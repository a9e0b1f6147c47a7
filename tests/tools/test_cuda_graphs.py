"""tools.cuda_graphs: the benchmark with the CUDA-graph prototype beside the other loops.

On a CPU: ``--help`` works, the command refuses to run and says why, and the graphed loop
itself refuses a CPU device. With CUDA: a smoke run times the graphed loop beside the others
and writes the benchmark's JSON.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kdteach import bench, data, models
from tools import cuda_graphs

ROOT = Path(__file__).resolve().parents[2]
CUDA = torch.cuda.is_available()


def test_help_runs_from_the_repository_root():
    proc = subprocess.run([sys.executable, "-m", "tools.cuda_graphs", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m tools.cuda_graphs")
    for option in ("--compile", "--json", "--smoke", "--no-value-checks"):
        assert option in proc.stdout
    assert "CUDA" in proc.stdout and "CHECK_VALUES" not in proc.stdout


def test_refuses_a_cpu_device_and_says_why(capsys, tmp_path):
    target = tmp_path / "extras.json"
    with pytest.raises(SystemExit) as exit_:
        cuda_graphs.main(["--device", "cpu", "--smoke", "--json", str(target)])
    message = str(exit_.value.code)
    assert "CUDA graphs need a CUDA GPU" in message and "on cpu" in message
    assert "python -m kdteach.bench" in message  # what to run instead
    assert not target.exists()


@pytest.mark.skipif(CUDA, reason="this machine has CUDA; the refusal is for machines without it")
def test_refuses_without_cuda_on_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "tools.cuda_graphs", "--compile", "--json",
                           "unused.json"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "KDTEACH_DEVICE": ""})
    assert proc.returncode == 1
    assert "CUDA graphs need a CUDA GPU" in proc.stderr
    assert "torch.cuda.is_available() is False" in proc.stderr
    assert not (ROOT / "unused.json").exists()


def test_bad_options_are_refused_before_the_cuda_check():
    with pytest.raises(SystemExit) as exit_:
        cuda_graphs.main(["--warmup", "0"])
    assert exit_.value.code == 2


def test_the_graphed_loop_needs_cuda():
    split = data.load("mnist", True, n=64, seed=0)
    with pytest.raises(RuntimeError, match="CUDA graphs need a CUDA device"):
        cuda_graphs.graphed_epoch(models.hinton_student(), models.hinton_teacher(), split,
                                  batch_size=32, device=torch.device("cpu"))


@pytest.mark.skipif(not CUDA, reason="the graphed loop needs a CUDA GPU")
def test_smoke_run_times_the_graphed_loop_beside_the_others(tmp_path):
    target = tmp_path / "extras.json"
    report = cuda_graphs.main(["--smoke", "--device", "cuda", "--images", "1024",
                               "--test-images", "512", "--warmup", "2", "--json", str(target)])
    assert [r["loop"] for r in report["runs"]] == ["baseline", "kdteach", cuda_graphs.LOOP]
    assert report["failed"] == {}, report["failed"]
    assert report["command"].startswith("python -m tools.cuda_graphs --smoke")
    assert report["settings"]["variants"] == [cuda_graphs.LOOP]
    graphed = next(r for r in report["runs"] if r["loop"] == cuda_graphs.LOOP)
    kdteach = next(r for r in report["runs"] if r["loop"] == "kdteach")
    # The same work: one epoch of KD from the same student on the same data.
    assert graphed["images"] == kdteach["images"] == 1024
    assert graphed["train_loss"] == pytest.approx(kdteach["train_loss"], rel=0.2)
    assert graphed["peak_device_bytes"] > 0
    on_disk = json.loads(target.read_text())
    assert on_disk["ratios"] == report["ratios"]
    assert cuda_graphs.LOOP in on_disk["ratios"][str(bench.SMOKE_BATCH)]

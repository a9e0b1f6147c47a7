"""Real distributed jobs on the CI machine: torchrun, gloo, DistributedDataParallel.

Every job is started once, all at the same time, by the module's ``jobs`` fixture (most of
a job's wall time is waiting: starting Python, importing torch, the rendezvous), each
under a timeout, so a hang fails the tests instead of blocking CI:

* ``standalone``: 2 ranks on one "node" (``--standalone``), the worker's tiny distillation;
* ``node0`` + ``node1``: the same job as two torchrun invocations, ``--nnodes=2``, one rank
  each, meeting through a ``c10d`` rendezvous on 127.0.0.1 — two "nodes" on one machine;
* ``fail``: rank 1 raises while rank 0 waits in a collective;
* ``entry``: ``kdteach.experiments.distill_ddp --smoke`` on 2 ranks.

Equivalence tolerance: the ranks' averaged gradient is the global batch's gradient (each
rank's loss is a mean over an equal share), so the update is the same up to the order of
floating-point additions (two half-batch sums then an all-reduce, versus one sum). After
18 Adam steps in float32 the parameters agree to a few 1e-8 (printed with ``-s``); the
test allows 1e-5, still far below any real difference (one Adam step at lr 1e-2 moves a
weight by up to 1e-2), and checks that training moved the weights far more than that.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import ddp_worker
from kdteach import teacher_cache, train
from kdteach.data import DeviceLoader

ROOT = Path(__file__).resolve().parents[2]
WORKER = str(Path(__file__).with_name("ddp_worker.py"))
#: A job that takes longer than this has hung: it fails instead of blocking CI.
JOB_TIMEOUT = 240
TOLERANCE = 1e-5


def torchrun(*args: str) -> list[str]:
    """torchrun through this interpreter, so the children use the same virtual environment."""
    return [sys.executable, "-m", "torch.distributed.run", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", KDTEACH_PROGRESS="0", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """Start every job at once; wait for each (bounded); return {name: (returncode, output, dir)}."""
    base = tmp_path_factory.mktemp("ddp")
    dirs = {name: base / name for name in ("standalone", "nodes", "fail", "entry")}
    for d in dirs.values():
        d.mkdir()
    port = free_port()
    multi = ["--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
             f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=kdteach-two-nodes",
             "--local-addr=127.0.0.1"]
    commands = {
        "standalone": torchrun("--standalone", "--nproc-per-node=2", WORKER, "train",
                               str(dirs["standalone"])),
        "node0": torchrun(*multi, "--node-rank=0", WORKER, "train", str(dirs["nodes"])),
        "node1": torchrun(*multi, "--node-rank=1", WORKER, "train", str(dirs["nodes"])),
        "fail": torchrun("--standalone", "--nproc-per-node=2", WORKER, "fail", str(dirs["fail"])),
        "entry": torchrun("--standalone", "--nproc-per-node=2", "-m",
                          "kdteach.experiments.distill_ddp", "--smoke", "--epochs", "2",
                          "--out", str(dirs["entry"] / "results.json"),
                          "--checkpoint", str(dirs["entry"] / "student.pt")),
    }
    started = time.monotonic()
    # Each job in its own process group, so a hung job is killed with its workers.
    procs = {name: subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True)
             for name, cmd in commands.items()}
    out = {}
    for name, proc in procs.items():
        left = max(1.0, JOB_TIMEOUT - (time.monotonic() - started))
        try:
            text, _ = proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            for p in procs.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
            pytest.fail(f"the {name} job did not finish within {JOB_TIMEOUT} s (a hang?)")
        out[name] = (proc.returncode, text, dirs.get(name, dirs["nodes"]))
    yield out


@pytest.fixture(scope="module")
def reference():
    """One process, global batch 16, the same seed: what the ranks must reproduce."""
    split, teacher, student = ddp_worker.setup()
    loader = DeviceLoader(split, ddp_worker.GLOBAL_BATCH, seed=ddp_worker.RUN["seed"])
    history = train.distill(student, teacher, loader, **ddp_worker.RUN)
    return student.state_dict(), history.records


def result(job) -> dict:
    code, text, directory = job
    assert code == 0, text[-4000:]
    return torch.load(directory / "result.pt", weights_only=True)


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_two_gloo_ranks_with_half_batches_match_one_process(jobs, reference):
    ranks = result(jobs["standalone"])
    state, records = reference
    diff = max_abs_diff(ranks["state"], state)
    print(f"2 ranks x batch {ddp_worker.GLOBAL_BATCH // 2} vs 1 process x batch "
          f"{ddp_worker.GLOBAL_BATCH}: max |parameter difference| = {diff:.3g}")
    assert ranks["world_size"] == 2
    assert diff <= TOLERANCE, f"parameters differ by {diff:.3g} > {TOLERANCE}"
    assert diff < 0.01 * max_abs_diff(state, ddp_worker.setup()[2].state_dict())  # training moved them
    # run_epochs added the ranks' sums: the history is the whole job's, as in one process
    for mine, one in zip(ranks["history"], records):
        assert mine["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)
        assert mine["train_acc"] == pytest.approx(one["train_acc"], abs=1e-9)


def test_two_nodes_on_one_machine_finish_with_the_same_result(jobs, reference):
    for name in ("node0", "node1"):
        assert jobs[name][0] == 0, jobs[name][1][-4000:]
    nodes, standalone = result(jobs["node0"]), result(jobs["standalone"])
    assert nodes["world_size"] == 2
    # the same two shares, summed by the same all-reduce: the same numbers
    assert max_abs_diff(nodes["state"], standalone["state"]) == 0.0
    assert max_abs_diff(nodes["state"], reference[0]) <= TOLERANCE


def test_cache_written_by_two_ranks_reads_back_aligned_in_a_shuffled_order(jobs):
    result(jobs["standalone"])
    directory = jobs["standalone"][2]
    split, teacher, _ = ddp_worker.setup()
    cache = teacher_cache.TeacherCache(directory, "teacher", n=len(split), kind="topk",
                                       k=ddp_worker.TOPK,
                                       fingerprint=teacher_cache.fingerprint(teacher, split))
    assert len(cache.shards) == 2
    for rank in (0, 1):  # each rank's shuffled share, as training would read it
        loader = DeviceLoader(split, 8, seed=3, rank=rank, world_size=2)
        for x, _, idx in loader.batches():
            logp, classes, rest = cache.lookup(idx)
            with torch.no_grad():
                top = torch.log_softmax(teacher(x), 1).topk(ddp_worker.TOPK, dim=1)
            assert torch.equal(classes, top.indices)
            torch.testing.assert_close(logp, top.values, atol=2e-3, rtol=1e-3)  # half precision
            torch.testing.assert_close(rest, 1 - top.values.exp().sum(1), atol=1e-5, rtol=1e-5)


def test_a_rank_that_raises_makes_the_job_fail_with_its_error(jobs):
    code, text, _ = jobs["fail"]
    assert code != 0
    assert "ValueError: rank 1 stops here on purpose" in text
    assert "ChildFailedError" in text  # torchrun's summary of the failed job


def test_entry_point_prints_the_history_and_rank_0_alone_writes(jobs):
    code, text, directory = jobs["entry"]
    assert code == 0, text[-4000:]
    assert text.count("2 process(es), backend gloo") == 1  # rank 0 alone prints
    assert "epoch   2" in text and "test errors of 500: teacher" in text
    res = json.loads((directory / "results.json").read_text())["results"]
    assert res["world_size"] == 2 and res["per_rank_batch"] * 2 == res["global_batch"]
    assert len(res["history"]) == 2 and res["history"][-1]["test_errors"] == res["student_errors"]
    state = torch.load(directory / "student.pt", weights_only=True)
    from kdteach import models
    models.hinton_student().load_state_dict(state)
    assert sorted(p.name for p in directory.iterdir()) == ["results.json", "student.pt"]

"""kdteach.experiments.hinton_mnist: the smoke run trains all three models and writes results."""
from __future__ import annotations

import pytest
import torch

from kdteach import config, models
from kdteach.experiments import hinton_mnist


def test_smoke_run_writes_the_three_error_counts(capsys):
    res = hinton_mnist.main(["--smoke", "--device", "cpu"])
    out = capsys.readouterr().out
    for key in ("teacher_errors", "student_errors", "distilled_errors"):
        assert isinstance(res[key], int) and 0 <= res[key] <= res["test_size"]
        assert res["paper"][key] == hinton_mnist.PAPER[key]
        assert len(res["test_errors_per_epoch"][key]) == 1
    assert res["test_size"] == 500 and res["profile"] == "smoke"
    assert res["seeds"]["student"] == res["seeds"]["distilled"]  # same initial student
    # Printed beside the paper's numbers, and written through kdteach.results.
    assert "paper" in out and " 67 " in out and " 146 " in out and " 74 " in out
    stored = res["results_file"]
    assert stored["results"]["distilled_errors"] == res["distilled_errors"]
    assert stored["environment"]["device"].startswith("cpu")
    assert stored["wall_seconds"] > 0
    # The smoke run must not touch the committed results folder.
    assert str(config.results_dir()) not in res["results_path"]


def test_full_results_cannot_come_from_a_cpu_run():
    with pytest.raises(SystemExit):
        hinton_mnist.main(["--smoke", "--device", "cpu", "--out", hinton_mnist.FULL_NAME])


def test_max_norm_projects_hidden_rows_only():
    config.seed_everything(0)
    model = models.MLP((784, 32, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(100)
    model.train()
    with hinton_mnist.max_norm(model, 2.0):
        model(torch.randn(4, 1, 28, 28))
        assert model.fc1.weight.norm(dim=1).max() <= 2.0 + 1e-4
    assert model.out.weight.norm(dim=1).max() > 2.0  # the output layer is left free
    assert not model._forward_pre_hooks  # the hook is removed on leaving


def test_targets_are_checked():
    res = {"teacher_errors": 70, "student_errors": 150, "distilled_errors": 90}
    assert hinton_mnist.meets_targets(res) == {"teacher_errors": True, "student_errors": True,
                                               "distilled_errors": False}

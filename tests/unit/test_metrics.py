"""kdteach.metrics: parameters, bytes, FLOPs, latency, accuracy and errors, by hand."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from kdteach import metrics


def test_parameters_and_size_of_a_small_linear():
    model = nn.Linear(3, 2)
    assert metrics.parameters(model) == 3 * 2 + 2 == 8
    assert metrics.size_bytes(model) > 8 * 4
    model.requires_grad_(False)
    assert metrics.parameters(model) == 8  # frozen parameters still count


def test_size_bytes_tracks_the_stored_tensors():
    big = nn.Linear(500, 500)
    n = 500 * 500 + 500
    fp32 = metrics.size_bytes(big)
    assert 4 * n <= fp32 < 4 * n + 4096  # the weights plus a small archive overhead
    fp16 = metrics.size_bytes(big.half())
    assert 2 * n <= fp16 < 2 * n + 4096
    bn = nn.BatchNorm1d(1000)  # buffers (running mean/var) count too
    assert metrics.size_bytes(bn) >= 4 * (2 * 1000 + 2 * 1000)


@pytest.mark.parametrize("batch", [1, 4])
def test_flops_of_a_linear_layer(batch):
    model = nn.Linear(784, 10)
    assert metrics.flops(model, torch.randn(batch, 784)) == batch * 2 * 784 * 10


def test_flops_of_a_conv_layer_match_the_formula():
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    b, h, w = 2, 10, 12
    # One multiply-add (2 FLOPs) per output element per input channel per kernel tap.
    expected = 2 * (b * 8 * h * w) * (3 * 3 * 3)
    assert metrics.flops(conv, torch.randn(b, 3, h, w)) == expected
    strided = nn.Conv2d(3, 8, kernel_size=3, stride=2)  # output 4 x 5
    assert metrics.flops(strided, torch.randn(b, 3, h, w)) == 2 * (b * 8 * 4 * 5) * 27


def test_flops_of_an_mlp_add_up_and_restore_the_mode():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(100, 10)).train()
    assert metrics.flops(model, torch.randn(1, 1, 28, 28)) == 2 * (784 * 100 + 100 * 10)
    assert model.training
    model.eval()
    metrics.flops(model, torch.randn(1, 1, 28, 28))
    assert not model.training


def test_latency_is_a_positive_float_and_restores_the_mode():
    model = nn.Sequential(nn.Linear(32, 32), nn.Dropout(0.1)).train()
    seconds = metrics.latency(model, torch.randn(4, 32), min_run_time=0.01)
    assert isinstance(seconds, float) and 0.0 < seconds < 1.0
    assert model.training


LOGITS = torch.tensor([[2.0, 1.0, 0.0],   # predicts 0
                       [0.0, 3.0, 1.0],   # predicts 1
                       [1.0, 0.0, 0.5],   # predicts 0
                       [0.0, 0.0, 5.0]])  # predicts 2
LABELS = torch.tensor([0, 2, 0, 2])       # rows 0, 2, 3 right; row 1 wrong


def test_accuracy_and_errors_by_hand():
    assert metrics.accuracy(LOGITS, LABELS) == pytest.approx(0.75)
    assert metrics.errors(LOGITS, LABELS) == 1
    assert isinstance(metrics.errors(LOGITS, LABELS), int)
    assert metrics.accuracy(LOGITS, torch.tensor([1, 0, 1, 0])) == 0.0
    assert metrics.errors(LOGITS, torch.tensor([1, 0, 1, 0])) == 4
    assert metrics.accuracy(LOGITS, LOGITS.argmax(1)) == 1.0


@pytest.mark.parametrize("logits, labels", [
    (torch.zeros(4), torch.zeros(4, dtype=torch.long)),  # 1-D logits
    (torch.zeros(2, 4, 3), torch.zeros(2, dtype=torch.long)),  # 3-D logits
    (torch.zeros(4, 3), torch.zeros(5, dtype=torch.long)),  # lengths differ
    (torch.zeros(4, 3), torch.zeros(4, 1, dtype=torch.long)),  # labels 2-D
])
@pytest.mark.parametrize("fn", [metrics.accuracy, metrics.errors])
def test_bad_shapes_raise(fn, logits, labels):
    with pytest.raises(ValueError, match="logits|labels"):
        fn(logits, labels)


@pytest.mark.parametrize("fn", [metrics.accuracy, metrics.errors])
def test_non_tensors_raise(fn):
    with pytest.raises(TypeError):
        fn([[1.0, 0.0]], torch.tensor([0]))


def test_summary():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).train()
    out = metrics.summary(model, torch.randn(4, 1, 28, 28))
    assert set(out) == {"parameters", "bytes", "flops_per_image", "latency_ms_per_image"}
    assert out["parameters"] == 7850
    assert out["bytes"] >= 7850 * 4
    assert out["flops_per_image"] == 2 * 784 * 10
    assert out["latency_ms_per_image"] > 0
    assert model.training


class _Tracked(nn.Sequential):
    """Records every device move, to see that summary leaves the caller's model where it is."""

    def to(self, *args, **kwargs):
        self.__dict__.setdefault("moves", []).append(args)
        return super().to(*args, **kwargs)


def test_summary_does_not_move_the_callers_model():
    # On a GPU, summary measures a CPU copy; the model the notebook goes on using stays put.
    model = _Tracked(nn.Flatten(), nn.Linear(784, 10))
    metrics.summary(model, torch.randn(2, 1, 28, 28))
    assert model.__dict__.get("moves", []) == []


def test_latency_logs_nothing_about_cuda_home():
    """Importing torch.utils.benchmark logs a CUDA_HOME warning on CUDA builds without a GPU
    (as on the course's CPU machines); metrics.latency keeps it out of the notebooks."""
    import subprocess
    import sys

    code = ("import torch; from kdteach import metrics, models; "
            "metrics.latency(models.hinton_student(), torch.randn(2, 1, 28, 28), min_run_time=0.01)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "cpp_extension" not in proc.stderr, proc.stderr

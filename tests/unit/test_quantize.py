"""kdteach.quantize: dynamic int8 copies, their size, and the size they should have."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from kdteach import config, metrics, models, quantize
from kdteach.data import Split


def _is_quantized_linear(m) -> bool:
    return type(m).__name__ == "DynamicQuantizedLinear" or "quantized" in type(m).__module__


def test_mlp_student_quantises_fully_and_shrinks_about_4x():
    config.seed_everything(0)
    model = models.hinton_student().eval()
    q = quantize.dynamic_int8(model)
    assert all(_is_quantized_linear(getattr(q, name)) for name in ("fc1", "fc2", "out"))
    assert quantize.predicted_ratio(model) == pytest.approx(4.0)
    ratio = metrics.size_bytes(model) / metrics.size_bytes(q)
    assert 3.5 <= ratio <= 4.0, ratio


def test_the_original_is_left_untouched():
    config.seed_everything(0)
    model = models.hinton_student()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quantize.dynamic_int8(model)
    assert isinstance(model.fc1, nn.Linear)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_quantised_outputs_stay_close():
    config.seed_everything(0)
    model = models.hinton_student().eval()
    x = torch.randn(32, 1, 28, 28)
    q = quantize.dynamic_int8(model)
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert (ref - out).abs().max() < 0.05 * ref.abs().max()
    assert (ref.argmax(1) == out.argmax(1)).float().mean() >= 0.9


def test_cnn_convolutions_stay_float():
    config.seed_everything(0)
    model = models.cnn_student().eval()
    q = quantize.dynamic_int8(model)
    assert isinstance(q.stage1[0], nn.Conv2d) and q.stage1[0].weight.dtype == torch.float32
    assert _is_quantized_linear(q.embed[1]) and _is_quantized_linear(q.fc)
    predicted = quantize.predicted_ratio(model)
    measured = metrics.size_bytes(model) / metrics.size_bytes(q)
    # most parameters are in the embed Linear layer, but the float convolutions cap the gain
    assert 0.85 < quantize.quantized_fraction(model) < 0.9
    assert 2.8 < predicted < 3.0
    assert 0.8 * predicted < measured <= predicted


def test_predicted_ratio_edge_cases():
    assert quantize.predicted_ratio(nn.Linear(10, 10)) == pytest.approx(4.0)
    conv = nn.Conv2d(1, 4, 3)
    assert quantize.quantized_fraction(conv) == 0.0
    assert quantize.predicted_ratio(conv) == pytest.approx(1.0)
    half = nn.Sequential(nn.Linear(10, 10, bias=False), nn.Conv2d(1, 100, 1, bias=False))
    assert quantize.quantized_fraction(half) == pytest.approx(0.5)
    assert quantize.predicted_ratio(half) == pytest.approx(1 / (0.5 / 4 + 0.5))


def test_no_deprecation_warning_escapes():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantize.dynamic_int8(models.hinton_student())
    assert not [w for w in caught if "deprecat" in str(w.message).lower()], \
        [str(w.message)[:80] for w in caught]


def test_profile_reports_bytes_latency_and_accuracy():
    config.seed_everything(0)
    model = models.cnn_student()
    test = Split(torch.randn(50, 1, 28, 28), torch.randint(0, 10, (50,)))
    x = test.images[:8]
    for m in (model, quantize.dynamic_int8(model)):
        row = quantize.profile(m, x, test, min_run_time=0.01)
        assert row["bytes"] == metrics.size_bytes(m)
        assert row["ms_per_image"] > 0
        assert 0 <= row["accuracy"] <= 1
    assert "accuracy" not in quantize.profile(model, x, min_run_time=0.01)


def test_without_torch_ao_it_falls_back_to_torchao_or_says_what_to_install(monkeypatch):
    monkeypatch.delattr(torch.ao.quantization, "quantize_dynamic")
    try:
        import torchao  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="install torchao"):
            quantize.dynamic_int8(models.hinton_student())
    else:
        q = quantize.dynamic_int8(models.hinton_student())
        assert metrics.size_bytes(q) < metrics.size_bytes(models.hinton_student()) / 3


def test_rejects_non_modules():
    with pytest.raises(TypeError):
        quantize.dynamic_int8("model")


def _cnn_and_batches():
    config.seed_everything(0)
    model = models.cnn_student().eval()
    gen = torch.Generator().manual_seed(1)
    return model, torch.randn(128, 1, 28, 28, generator=gen), torch.randn(64, 1, 28, 28, generator=gen)


def test_static_quantises_the_convolutions_too():
    model, calibration, x = _cnn_and_batches()
    q = quantize.static_int8(model, calibration)
    kinds = {type(m).__name__ for m in q.modules()}
    assert {"ConvReLU2d", "LinearReLU", "Linear"} <= kinds, kinds  # quantised, BN folded in
    assert not any(isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear)) for m in q.modules())
    # every weight is int8 now, so the ratio passes the dynamic version's ceiling of 2.91
    measured = metrics.size_bytes(model) / metrics.size_bytes(q)
    dynamic = metrics.size_bytes(model) / metrics.size_bytes(quantize.dynamic_int8(model))
    assert measured > quantize.predicted_ratio(model) > dynamic
    assert measured >= 3.0, measured
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert (ref - out).abs().max() < 0.1 * ref.abs().max()
    assert (ref.argmax(1) == out.argmax(1)).float().mean() >= 0.9


def test_static_leaves_the_original_and_warns_nothing():
    model, calibration, _ = _cnn_and_batches()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantize.static_int8(model, calibration)
    assert not caught, [str(w.message)[:80] for w in caught]
    assert isinstance(model.stage1[0], nn.Conv2d)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_static_needs_calibration_inputs():
    model, _, _ = _cnn_and_batches()
    with pytest.raises(TypeError, match="calibration"):
        quantize.static_int8(model, None)
    with pytest.raises(ValueError, match="non-empty"):
        quantize.static_int8(model, torch.empty(0, 1, 28, 28))

"""The slider apps: setting a control from code redraws, and what is shown is right."""
from __future__ import annotations

import math

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdteach import losses, widgets


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(16, 10, generator=gen) * 2
    teacher = torch.randn(16, 10, generator=gen) * 4
    targets = torch.randint(0, 10, (16,), generator=gen)
    return student, teacher, targets


def _layout(app):
    """The structure the browser tests rely on: VBox([HBox(controls), Output])."""
    assert isinstance(app, ipywidgets.VBox)
    header, output = app.children
    assert isinstance(header, ipywidgets.HBox) and isinstance(output, ipywidgets.Output)
    assert list(header.children) == list(app.controls.values())
    return header.children


def test_entropy_bits_limits():
    assert widgets.entropy_bits([1.0, 0.0, 0.0]) == 0
    assert math.isclose(widgets.entropy_bits(np.full(8, 1 / 8)), 3.0)


def test_temperature_explorer_redraws_on_T(batch):
    logits = batch[1][:3]
    images = torch.rand(3, 1, 28, 28)
    app = widgets.temperature_explorer(logits, images=images, labels=[1, 2, 3], T=1.0)
    controls = _layout(app)
    assert isinstance(controls[0], ipywidgets.FloatLogSlider) and controls[0].description == "T"
    first = app.last
    np.testing.assert_allclose(first["probs"], torch.softmax(logits[0].double(), -1).numpy(), rtol=1e-6)
    app.controls["T"].value = 8.0
    shown = app.last
    assert shown is not first and shown["T"] == pytest.approx(8.0)
    expected = losses.softmax_t(logits[0:1].double(), T=shown["T"])[0].numpy()
    np.testing.assert_allclose(shown["probs"], expected, rtol=1e-6)
    assert shown["entropy"] > first["entropy"]  # hotter is flatter
    assert shown["entropy"] == pytest.approx(float(widgets.entropy_bits(expected)))
    app.controls["index"].value = 2
    assert app.last["index"] == 2
    expected = losses.softmax_t(logits[2:3].double(), T=shown["T"])[0].numpy()
    np.testing.assert_allclose(app.last["probs"], expected, rtol=1e-6)
    assert not plt.get_fignums(), "figures must be closed after drawing"


def test_temperature_explorer_lists_rows_by_id(batch):
    app = widgets.temperature_explorer(batch[1][:2], labels=[4, 9], ids=[919, 3436])
    assert [label for label, _ in app.controls["index"].options] == ["#919 (label 4)", "#3436 (label 9)"]


def test_temperature_explorer_single_row_has_only_T():
    app = widgets.temperature_explorer(torch.tensor([3.0, 1.0, 0.0]))
    assert list(app.controls) == ["T"]
    assert app.last["probs"].shape == (3,)


def test_gradient_split_matches_the_analytic_gradient(batch):
    s, t, y = batch
    app = widgets.gradient_split(s, t, y, T=4.0, alpha=0.5)
    controls = _layout(app)
    assert [c.description for c in controls] == ["T", "α"]
    before = dict(app.last)
    app.controls["T"].value = 10.0
    app.controls["alpha"].value = 0.2
    last = app.last
    T, alpha = last["T"], last["alpha"]
    assert (T, alpha) != (before["T"], before["alpha"])
    B = len(y)
    hard = alpha * (torch.softmax(s, -1) - F.one_hot(y, 10)) / B
    soft = (1 - alpha) * T * (torch.softmax(s / T, -1) - torch.softmax(t / T, -1)) / B
    assert last["hard_norm"] == pytest.approx(float(hard.norm()), rel=1e-4)
    assert last["soft_norm"] == pytest.approx(float(soft.norm()), rel=1e-4)
    assert last["total_norm"] == pytest.approx(float((hard + soft).norm()), rel=1e-4)
    np.testing.assert_allclose(last["soft"], soft[0].numpy(), rtol=1e-4, atol=1e-7)
    assert last["soft_share"] == pytest.approx(last["soft_norm"] / (last["hard_norm"] + last["soft_norm"]))


def test_gradient_split_extremes(batch):
    s, t, y = batch
    app = widgets.gradient_split(s, t, y, alpha=1.0)
    assert app.last["soft_norm"] == 0 and app.last["soft_share"] == 0
    app.controls["alpha"].value = 0.0
    assert app.last["hard_norm"] == 0 and app.last["soft_share"] == 1


def test_sweep_browser_shows_the_chosen_cell():
    errors = np.array([[10, 11, 12], [20, 21, 22], [30, 31, 32]])
    app = widgets.sweep_browser([1, 4, 16], [0.1, 0.5, 0.9], errors, baseline=40, teacher=5)
    _layout(app)
    assert (app.last["i"], app.last["j"], app.last["errors"]) == (1, 1, 21)
    app.controls["T"].value = 16
    app.controls["alpha"].value = 0.1
    assert (app.last["T"], app.last["alpha"], app.last["errors"]) == (16, 0.1, 30)
    with pytest.raises(ValueError, match="expected"):
        widgets.sweep_browser([1, 4], [0.1], errors)


def test_distillation_runner_runs_only_on_click():
    calls = []

    def run(T, alpha):
        calls.append((T, alpha))
        return 100 + len(calls)

    app = widgets.distillation_runner(run, T=4.0, alpha=0.5, baseline=150, teacher=60)
    controls = _layout(app)
    assert isinstance(controls[0], ipywidgets.FloatLogSlider)
    assert isinstance(controls[2], ipywidgets.Button)
    assert calls == [] and app.last["runs"] == []
    app.controls["alpha"].value = 0.25  # moving a slider redraws but does not train
    assert calls == [] and app.last["alpha"] == 0.25
    app.controls["run"].click()
    assert calls == [(pytest.approx(4.0), 0.25)]
    assert app.last["runs"] == [{"T": pytest.approx(4.0), "alpha": 0.25, "errors": 101}]
    app.controls["T"].value = 10.0
    app.controls["run"].click()
    assert [r["errors"] for r in app.last["runs"]] == [101, 102]
    assert not app.controls["run"].disabled
    assert not plt.get_fignums()


def test_distillation_runner_reports_a_failed_run(capsys):
    def run(T, alpha):
        raise RuntimeError("out of memory")

    app = widgets.distillation_runner(run)
    app.controls["run"].click()  # ipywidgets logs a callback's exception instead of raising it
    assert "failed: RuntimeError: out of memory" in capsys.readouterr().out
    assert app.last["runs"] == [] and not app.controls["run"].disabled
    assert app.controls["run"].description == "run distillation"


def test_figures_opened_elsewhere_are_left_alone(batch):
    other = plt.figure()
    try:
        app = widgets.gradient_split(*batch)
        app.controls["T"].value = 2.0
        assert plt.get_fignums() == [other.number]
    finally:
        plt.close(other)

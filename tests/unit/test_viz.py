"""kdteach.viz: plots and the one tensor-to-NumPy conversion."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from kdteach import viz

matplotlib.use("Agg")


def test_to_numpy_detaches_and_converts():
    x = torch.ones(2, 3, requires_grad=True, dtype=torch.float64) * 2
    got = viz.to_numpy(x)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == (2, 3)
    assert viz.to_numpy([1, 2]).tolist() == [1, 2]


def test_history_plots_loss_and_the_accuracies_present():
    records = {"train_loss": [1.0, 0.5], "train_acc": [0.5, 0.8], "eval_acc": [None, None]}
    axes = viz.history(records, title="run")
    assert len(axes[0].lines) == 1
    assert [line.get_label() for line in axes[1].lines] == ["train acc"]  # no eval data: no line
    assert axes[0].figure._suptitle.get_text() == "run"
    plt.close(axes[0].figure)

"""Plots the notebooks share: image grids, probability bars, heat maps, result tables.

Each function draws on the axes it is given (or makes a figure) and returns them, so a
notebook can compose figures and a widget can redraw into the same axes.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def to_numpy(x) -> np.ndarray:
    """A tensor (on any device, with or without grad) or array-like as a NumPy array."""
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def image_grid(images, labels=None, class_names: Sequence[str] | None = None, *,
               ncols: int = 10, size: float = 1.0, title: str | None = None):
    """Show ``(N, 1, H, W)`` images in a grid, each captioned with its label."""
    images = to_numpy(images)
    n = len(images)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i].squeeze(0), cmap="gray_r")
        if labels is not None:
            label = int(labels[i])
            ax.set_title(class_names[label] if class_names else str(label), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return axes


def examples_per_class(split, class_names: Sequence[str], per_class: int = 8, *, seed: int = 0,
                       title: str | None = None):
    """A grid with one row per class and ``per_class`` random examples in each."""
    gen = torch.Generator().manual_seed(seed)
    labels = split.labels.cpu()
    rows = []
    for c in range(len(class_names)):
        members = torch.nonzero(labels == c).flatten()
        rows.append(members[torch.randperm(len(members), generator=gen)[:per_class]])
    index = torch.cat(rows)
    return image_grid(split.images.cpu()[index], labels[index], class_names, ncols=per_class,
                      title=title)


def probability_bars(probs, class_names: Sequence[str] | None = None, *, ax=None,
                     highlight: int | None = None, title: str | None = None, log: bool = False):
    """A bar chart of one probability vector; ``highlight`` marks a class (e.g. the label)."""
    probs = to_numpy(probs).ravel()
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 2.6))
    colors = ["tab:orange" if i == highlight else "tab:blue" for i in range(len(probs))]
    ax.bar(range(len(probs)), probs, color=colors)
    ax.set_xticks(range(len(probs)))
    ax.set_xticklabels(class_names or [str(i) for i in range(len(probs))], rotation=45 if class_names and
                       max(map(len, class_names)) > 2 else 0, fontsize=8)
    ax.set_ylabel("probability")
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, 1)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def heatmap(values, row_labels, col_labels, *, ax=None, fmt: str = "{:.1f}", cmap: str = "viridis",
            xlabel: str = "", ylabel: str = "", title: str | None = None, colorbar: bool = True):
    """A labelled heat map with each cell's value written in it."""
    values = to_numpy(values)
    if ax is None:
        _, ax = plt.subplots(figsize=(1 + 0.8 * len(col_labels), 1 + 0.55 * len(row_labels)))
    im = ax.imshow(values, cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(col_labels)))
    ax.set_xticklabels(col_labels)
    ax.set_yticks(range(len(row_labels)))
    ax.set_yticklabels(row_labels)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    mid = np.nanmean(values)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if values[i, j] < mid else "black")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    return ax


def matrix_image(matrix, *, ax=None, title: str | None = None, cmap: str = "magma"):
    """A square matrix (e.g. pairwise distances of a batch) as an image with a colour bar."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3))
    im = ax.imshow(to_numpy(matrix), cmap=cmap)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def table(rows: Sequence[dict], columns: Sequence[str] | None = None, *, floatfmt: str = "{:.4g}") -> str:
    """Rows of dicts as a fixed-width text table (printed by notebooks, no pandas needed)."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())

    def cell(v):
        return floatfmt.format(v) if isinstance(v, float) else str(v)

    cells = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join([line, rule, *body])


def history(records, *, axes=None, title: str | None = None):
    """A training run's loss and accuracy per epoch, side by side; returns the axes.

    ``records`` is a :class:`kdteach.train.History` (or anything indexable by
    ``"train_loss"``, ``"train_acc"`` and ``"eval_acc"``, one value per epoch).
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = range(1, len(records["train_loss"]) + 1)
    axes[0].plot(epochs, records["train_loss"], marker="o", label="train loss")
    axes[0].set(xlabel="epoch", ylabel="loss")
    for key in ("train_acc", "eval_acc"):
        if any(v is not None for v in records[key]):
            axes[1].plot(epochs, records[key], marker="o", label=key.replace("_", " "))
    axes[1].set(xlabel="epoch", ylabel="accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        axes[0].figure.suptitle(title)
    return axes

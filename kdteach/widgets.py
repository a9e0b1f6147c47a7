"""The notebooks' slider apps: explore the temperature ``T`` and the weight ``alpha`` by hand.

Each function returns an :class:`App`, an ``ipywidgets.VBox([HBox(controls), Output])``
that shows itself when it is the last expression of a cell. Besides being a widget it has

* ``app.controls`` — its sliders (and button) by name. Setting a value from code,
  ``app.controls["T"].value = 4.0``, redraws the plot exactly as dragging the slider does;
* ``app.last`` — the numbers behind the current drawing (probabilities, entropy, gradient
  norms, ...), so a reader or a test can check what is on the screen.

The drawing uses ``ipywidgets.interactive_output``: every change of a control calls a
function that draws a matplotlib figure inside the ``Output`` area, shows it and closes it.
Sliders need a running kernel; a static page shows only the first drawing.

* :func:`temperature_explorer` (notebook 01) — ``softmax(z / T)`` of a teacher's logits as
  bars, with the entropy;
* :func:`gradient_split` (notebook 03) — how the gradient of the KD loss on one batch
  splits between the hard (label) term and the soft (teacher) term;
* :func:`sweep_browser` (notebook 03) — a grid of distillation runs over ``T`` and
  ``alpha``, browsed cell by cell;
* :func:`distillation_runner` (notebook 03) — a button that runs a short distillation
  with the chosen ``T`` and ``alpha`` and adds its result to a plot.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import clear_output

from .losses import kd_loss
from .viz import to_numpy

__all__ = ["App", "entropy_bits", "temperature_explorer", "gradient_split", "sweep_browser",
           "distillation_runner"]


class App(widgets.VBox):
    """``VBox([HBox(controls), Output])`` that redraws when a control's value changes.

    ``draw(last, **values)`` receives the dict to fill with what it shows and the
    current value of every control that has one (buttons have none); it draws a figure.
    """

    def __init__(self, controls: dict, draw: Callable[..., None]):
        super().__init__()
        self.controls = dict(controls)
        self.last: dict = {}
        self._draw = draw
        self._valued = {k: w for k, w in self.controls.items() if hasattr(w, "value")}
        self.output = widgets.interactive_output(self._render, self._valued)
        self.children = (widgets.HBox(list(self.controls.values())), self.output)

    def _render(self, **values) -> None:
        self.last = {}
        before = set(plt.get_fignums())
        self._draw(self.last, **values)
        plt.show()  # inline backend: the figure goes to this Output (and is closed)
        for number in set(plt.get_fignums()) - before:  # other backends: close it ourselves
            plt.close(number)

    def refresh(self) -> None:
        """Redraw with the current values (e.g. after new data arrived from a button)."""
        with self.output:
            clear_output(wait=True)
            self._render(**{k: w.value for k, w in self._valued.items()})


def entropy_bits(probs) -> np.ndarray:
    """Shannon entropy ``-sum p log2 p`` over the last axis, in bits (0 log 0 = 0)."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return terms.sum(axis=-1)


def _softmax_np(z, T: float) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64) / T
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _T_slider(value: float, lo: float, hi: float) -> widgets.FloatLogSlider:
    return widgets.FloatLogSlider(value=value, base=10, min=math.log10(lo), max=math.log10(hi),
                                  step=0.05, description="T", readout_format=".2f",
                                  continuous_update=False)


def _alpha_slider(value: float) -> widgets.FloatSlider:
    return widgets.FloatSlider(value=value, min=0.0, max=1.0, step=0.05, description="α",
                               readout_format=".2f", continuous_update=False)


def temperature_explorer(logits, *, images=None, labels=None, class_names: Sequence[str] | None = None,
                         ids: Sequence | None = None, T: float = 1.0,
                         T_range: tuple[float, float] = (0.5, 30.0)) -> App:
    """Slide ``T`` over a teacher's logits and watch ``softmax(z / T)`` and its entropy.

    ``logits`` is one row ``(K,)`` or several ``(N, K)``; with several, a drop-down picks the
    row, listed by ``ids`` (e.g. the rows' test-set indices; default 0, 1, ...). ``images``
    (``(N, 1, H, W)``) and ``labels`` are shown beside the bars when given.
    ``app.last`` holds ``T``, ``index``, ``probs`` (the bars) and ``entropy`` (bits).
    """
    z = to_numpy(logits).astype(np.float64)
    z = z[None] if z.ndim == 1 else z
    n, k = z.shape
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    imgs = None if images is None else to_numpy(images).reshape(n, *to_numpy(images).shape[-2:])
    labs = None if labels is None else [int(v) for v in to_numpy(labels).reshape(-1)]
    grid = np.geomspace(*T_range, 120)
    shown = list(ids) if ids is not None else list(range(n))

    controls = {"T": _T_slider(T, *T_range)}
    if n > 1:
        options = [(f"#{shown[i]}" + (f" (label {names[labs[i]]})" if labs else ""), i) for i in range(n)]
        controls["index"] = widgets.Dropdown(options=options, value=0, description="image")

    def draw(last, T, index=0):
        probs = _softmax_np(z[index], T)
        h = float(entropy_bits(probs))
        last.update(T=T, index=index, probs=probs, entropy=h)
        panels = 3 if imgs is not None else 2
        ratios = [0.7, 2, 1.6][-panels:]
        fig, axes = plt.subplots(1, panels, figsize=(10, 2.9), gridspec_kw={"width_ratios": ratios})
        if imgs is not None:
            axes[0].imshow(imgs[index], cmap="gray_r")
            caption = f"#{shown[index]}" + (f", label {names[labs[index]]}" if labs else "")
            axes[0].set_title(caption, fontsize=10)
            axes[0].axis("off")
        bars, curve = axes[-2], axes[-1]
        colors = ["tab:orange" if labs and i == labs[index] else "tab:blue" for i in range(k)]
        bars.bar(range(k), probs, color=colors)
        bars.set(xticks=range(k), ylim=(0, 1), ylabel="probability",
                 title=f"softmax(z / T) at T = {T:.2f}")
        bars.set_xticklabels(names, fontsize=8, rotation=45 if max(map(len, names)) > 2 else 0)
        curve.plot(grid, entropy_bits(_softmax_grid(z[index], grid)), color="tab:blue")
        curve.axhline(math.log2(k), color="gray", ls="--", lw=1, label=f"uniform: log2 {k}")
        curve.plot([T], [h], "o", color="tab:red", label=f"T = {T:.2f}: {h:.2f} bits")
        curve.set(xscale="log", xlabel="T", ylabel="entropy (bits)", ylim=(0, math.log2(k) * 1.08),
                  title="entropy of softmax(z / T)")
        curve.legend(fontsize=8, loc="lower right")
        curve.grid(alpha=0.3)
        fig.tight_layout()

    return App(controls, draw)


def _softmax_grid(z, temperatures) -> np.ndarray:
    """softmax(z / T) for each T in ``temperatures``: shape (len(temperatures), K)."""
    return np.stack([_softmax_np(z, t) for t in temperatures])


def _split_gradients(student_logits, teacher_logits, targets, T: float, alpha: float):
    """Gradients of the KD loss w.r.t. the student's logits: (hard part, soft part, total)."""
    s = torch.as_tensor(student_logits, dtype=torch.float32).detach()
    t = torch.as_tensor(teacher_logits, dtype=torch.float32).detach()
    y = torch.as_tensor(targets).long()

    def grad(fn):
        z = s.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(z), z)
        return g

    hard = grad(lambda z: alpha * F.cross_entropy(z, y))
    soft = grad(lambda z: (1 - alpha) * kd_loss(z, t, T=T))  # no targets: T² · KL alone
    total = grad(lambda z: kd_loss(z, t, y, T=T, alpha=alpha))
    return hard, soft, total


def gradient_split(student_logits, teacher_logits, targets, *, T: float = 4.0, alpha: float = 0.5,
                   example: int = 0, class_names: Sequence[str] | None = None,
                   T_range: tuple[float, float] = (1.0, 30.0)) -> App:
    """How the gradient of ``kd_loss`` on one batch splits between its two terms.

    The loss is ``alpha · CE + (1 − alpha) · T² · KL``; its gradient with respect to the
    student's logits is the sum of the two terms' gradients. Left: the norm of each over
    the batch; right: both, class by class, for one example of the batch.
    ``app.last`` holds ``T``, ``alpha``, ``hard_norm``, ``soft_norm``, ``total_norm``,
    ``soft_share`` (``soft_norm / (hard_norm + soft_norm)``) and the example's
    ``hard`` / ``soft`` gradient vectors.
    """
    k = torch.as_tensor(student_logits).shape[1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    label = int(torch.as_tensor(targets)[example])
    controls = {"T": _T_slider(T, *T_range), "alpha": _alpha_slider(alpha)}

    def draw(last, T, alpha):
        hard, soft, total = _split_gradients(student_logits, teacher_logits, targets, T, alpha)
        norms = [float(hard.norm()), float(soft.norm()), float(total.norm())]
        share = norms[1] / (norms[0] + norms[1]) if norms[0] + norms[1] > 0 else float("nan")
        last.update(T=T, alpha=alpha, hard_norm=norms[0], soft_norm=norms[1], total_norm=norms[2],
                    soft_share=share, hard=hard[example].numpy(), soft=soft[example].numpy())
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw={"width_ratios": [1, 2]})
        left.bar(["hard\nα·CE", "soft\n(1−α)·T²·KL", "total"], norms,
                 color=["tab:blue", "tab:orange", "tab:gray"])
        left.set(ylabel="‖∂loss/∂z‖ over the batch",
                 title=f"T = {T:.2f}, α = {alpha:.2f}: soft share {share:.0%}")
        x = np.arange(k)
        right.bar(x - 0.2, last["hard"], 0.4, label="hard term", color="tab:blue")
        right.bar(x + 0.2, last["soft"], 0.4, label="soft term", color="tab:orange")
        right.axhline(0, color="black", lw=0.8)
        right.set(xticks=x, xlabel="class", ylabel="∂loss/∂z_k",
                  title=f"example {example} (label {names[label]}), per logit")
        right.set_xticklabels(names, fontsize=8)
        right.legend(fontsize=8)
        fig.tight_layout()

    return App(controls, draw)


def sweep_browser(Ts: Sequence[float], alphas: Sequence[float], errors, *, baseline: int | None = None,
                  teacher: int | None = None, metric: str = "test errors") -> App:
    """Browse a T × alpha grid of results: the heat map with the chosen cell outlined.

    ``errors[i][j]`` is the result at ``Ts[i]`` and ``alphas[j]``, a count of errors
    (``metric`` names it). ``baseline`` (the student trained from scratch) and ``teacher``
    are printed for comparison. The sliders step
    through the measured values only. ``app.last`` holds ``T``, ``alpha``, ``errors``
    (at that cell), ``i`` and ``j``.
    """
    from . import viz

    values = np.asarray(to_numpy(errors), dtype=float)
    Ts, alphas = list(Ts), list(alphas)
    if values.shape != (len(Ts), len(alphas)):
        raise ValueError(f"errors has shape {values.shape}, expected (len(Ts), len(alphas)) = "
                         f"({len(Ts)}, {len(alphas)})")
    controls = {"T": widgets.SelectionSlider(options=Ts, value=Ts[len(Ts) // 2], description="T",
                                             continuous_update=False),
                "alpha": widgets.SelectionSlider(options=alphas, value=alphas[len(alphas) // 2],
                                                 description="α", continuous_update=False)}

    def draw(last, T, alpha):
        i, j = Ts.index(T), alphas.index(alpha)
        last.update(T=T, alpha=alpha, i=i, j=j, errors=values[i, j])
        fig, ax = plt.subplots(figsize=(6, 3.6))
        viz.heatmap(values, [f"{t:g}" for t in Ts], [f"{a:g}" for a in alphas], ax=ax, fmt="{:.0f}",
                    xlabel="α (weight of the hard-label term)", ylabel="T")
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=3))
        line = f"T = {T:g}, α = {alpha:g}: {values[i, j]:.0f} {metric}"
        if baseline is not None:
            line += f" (scratch {baseline}"
            line += f", teacher {teacher})" if teacher is not None else ")"
        ax.set_title(f"{metric} of the distilled student\n{line}", fontsize=10)
        fig.tight_layout()

    return App(controls, draw)


def distillation_runner(run: Callable[[float, float], int], *, T: float = 4.0, alpha: float = 0.5,
                        baseline: int | None = None, teacher: int | None = None,
                        metric: str = "test errors", T_range: tuple[float, float] = (1.0, 30.0)) -> App:
    """A button that calls ``run(T, alpha)`` (-> a count of errors) and adds it to a bar chart.

    Moving the sliders only marks the next run in the title; clicking **run** trains. From
    code, ``app.controls["run"].click()`` does the same. ``app.last`` holds ``T``,
    ``alpha`` and ``runs``, the list of ``{"T", "alpha", "errors"}`` so far.
    """
    runs: list[dict] = []
    button = widgets.Button(description="run distillation", icon="play", button_style="primary")
    controls = {"T": _T_slider(T, *T_range), "alpha": _alpha_slider(alpha), "run": button}

    def draw(last, T, alpha):
        last.update(T=T, alpha=alpha, runs=[dict(r) for r in runs])
        fig, ax = plt.subplots(figsize=(7, 3.2))
        if runs:
            bars = ax.bar(range(len(runs)), [r["errors"] for r in runs], width=0.6, color="tab:green")
            ax.bar_label(bars, fontsize=8)
            ax.set_xlim(-0.6, max(len(runs), 5) - 0.4)
            ax.set_xticks(range(len(runs)))
            ax.set_xticklabels([f"T={r['T']:.1f}\nα={r['alpha']:.2f}" for r in runs], fontsize=8)
        else:
            ax.text(0.5, 0.5, "no runs yet: press the button", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_xticks([])
        for value, name, color in ((baseline, "scratch", "tab:red"), (teacher, "teacher", "tab:purple")):
            if value is not None:
                ax.axhline(value, ls="--", color=color, label=f"{name}: {value}")
        if baseline is not None or teacher is not None:
            ax.legend(fontsize=8, loc="upper right")
        ax.set(ylabel=metric, title=f"short distillations (next run: T = {T:.2f}, α = {alpha:.2f})")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()

    app = App(controls, draw)

    def on_click(_button):
        button.disabled, button.description = True, "running…"
        T_now, alpha_now = app.controls["T"].value, app.controls["alpha"].value
        try:
            runs.append({"T": T_now, "alpha": alpha_now, "errors": int(run(T_now, alpha_now))})
        except Exception as err:
            with app.output:  # in the browser a callback's error would otherwise go unseen
                print(f"run(T={T_now:.2f}, alpha={alpha_now:.2f}) failed: {type(err).__name__}: {err}")
            raise
        finally:
            button.disabled, button.description = False, "run distillation"
        app.refresh()

    button.on_click(on_click)
    return app

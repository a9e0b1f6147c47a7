"""The course's teachers and students, small enough to train on a laptop CPU.

* :class:`MLP` — fully connected nets on flattened 28×28 images. Hinton, Vinyals & Dean
  (2015, section 3) distil a 784-1200-1200-10 teacher trained with dropout and jitter into
  a 784-800-800-10 student: :func:`hinton_teacher` and :func:`hinton_student`.
* :class:`ConvNet` — a CNN whose stages have stable names (``stage1``, ``stage2``,
  ``stage3``, ``embed``, ``fc``), the same for teacher and student, so the feature-based
  methods (hints, attention, relations) can record them by name without editing the model.
  Teacher and student share spatial sizes stage by stage (14×14, 7×7, 7×7); only widths
  differ. The student has under a tenth of the teacher's parameters.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn


class MLP(nn.Sequential):
    """A ReLU multilayer perceptron; ``sizes`` lists the widths from input to output.

    ``dropout`` is applied after every hidden layer and ``input_dropout`` to the input
    (Hinton's teacher uses 0.5 and 0.2, after Srivastava et al. 2014). Layers are named
    ``fc1, relu1, drop1, …`` and the output layer ``out``.
    """

    def __init__(self, sizes: Sequence[int], dropout: float = 0.0, input_dropout: float = 0.0):
        sizes = list(sizes)
        if len(sizes) < 2 or not all(isinstance(s, int) and s > 0 for s in sizes):
            raise ValueError(f"sizes must list at least two positive ints, got {sizes!r}.")
        for name, p in (("dropout", dropout), ("input_dropout", input_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p!r}.")
        layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
        if input_dropout:
            layers.append(("drop0", nn.Dropout(input_dropout)))
        for i, (n_in, n_out) in enumerate(zip(sizes[:-2], sizes[1:-1]), start=1):
            layers += [(f"fc{i}", nn.Linear(n_in, n_out)), (f"relu{i}", nn.ReLU())]
            if dropout:
                layers.append((f"drop{i}", nn.Dropout(dropout)))
        layers.append(("out", nn.Linear(sizes[-2], sizes[-1])))
        super().__init__(OrderedDict(layers))
        self.sizes = tuple(sizes)


def hinton_teacher(dropout: float = 0.5, input_dropout: float = 0.2) -> MLP:
    """784-1200-1200-10 with dropout: the teacher of Hinton et al. 2015, section 3."""
    return MLP((784, 1200, 1200, 10), dropout=dropout, input_dropout=input_dropout)


def hinton_student() -> MLP:
    """784-800-800-10 without regularisation: the student of Hinton et al. 2015, section 3."""
    return MLP((784, 800, 800, 10))


def _conv_block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
              nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class ConvNet(nn.Module):
    """Three conv stages, a fully connected embedding and a classifier.

    ``stage1``: 28→14, ``stage2``: 14→7, ``stage3``: 7→7 (each conv-BN-ReLU, the first two
    max-pooled); ``embed``: flatten → linear → ReLU (the penultimate features relations
    use); ``fc``: the logits.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 32), embed_dim: int = 256,
                 num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        w1, w2, w3 = widths
        self.stage1 = _conv_block(in_channels, w1, pool=True)
        self.stage2 = _conv_block(w1, w2, pool=True)
        self.stage3 = _conv_block(w2, w3, pool=False)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(w3 * 7 * 7, embed_dim), nn.ReLU())
        self.fc = nn.Linear(embed_dim, num_classes)
        self.widths, self.embed_dim = tuple(widths), embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(self.stage3(self.stage2(self.stage1(x)))))


def cnn_teacher() -> ConvNet:
    """The Fashion-MNIST teacher: widths 16-32-32, a 256-wide embedding."""
    return ConvNet((16, 32, 32), embed_dim=256)


def cnn_student() -> ConvNet:
    """The Fashion-MNIST student: widths 8-16-16, a 32-wide embedding (< 1/10 the teacher)."""
    return ConvNet((8, 16, 16), embed_dim=32)


def device_of(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU if it has neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")

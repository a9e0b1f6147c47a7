"""Connectors: small trainable layers that map a student's features to the teacher's shape.

A feature loss such as FitNets' hint loss compares a student layer with a teacher layer
element by element, so the two must have the same shape. A thin student has fewer
channels than its teacher, hence a *connector* (FitNets' "regressor") in between:

* :func:`conv_connector` — a 1×1 convolution, batch norm and ReLU from ``c_in`` to ``c_out``
  channels, for (B, C, H, W) feature maps. It is mmrazor's ``ConvModuleConnector`` with
  ``norm_cfg=dict(type='BN')`` (the connector of the blog post's FitNets config) and the
  convolutional regressor of Romero et al. (2015, Sec. 2.2) with a 1×1 kernel;
* :func:`linear_projector` — a linear layer from ``d_in`` to ``d_out``, for (B, D) embeddings;
* :func:`build` — records the two layers on an example batch and returns the right one.

A connector is trained together with the student: pass it to
``train.distill(..., extra_modules=[connector])`` so its parameters join the optimizer.
It is used in training only and is thrown away afterwards; the deployed student is
unchanged.

    conn = connectors.build(student, teacher, "stage2", "stage2", train_set.images[:8])
    train.distill(student, teacher, train_set, extra_modules=[conn],
                  student_features=["stage2"], teacher_features=["stage2"],
                  loss=lambda o: losses.hint_loss(conn(o.student_features["stage2"]),
                                                  o.teacher_features["stage2"]))
"""
from __future__ import annotations

import torch
from torch import nn

from . import checks, features
from .data import is_pair
from .models import device_of


def conv_connector(c_in: int, c_out: int, *, relu: bool = True) -> nn.Sequential:
    """1×1 conv (no bias) + BatchNorm2d + ReLU from ``c_in`` to ``c_out`` channels.

    Keeps the spatial size. ``relu=False`` drops the ReLU, for a teacher layer whose
    outputs can be negative: the connector's last activation should match the hint
    layer's (a ReLU cannot produce the negative values of a pre-activation feature).
    """
    c_in = checks.positive_int(c_in, "c_in", "a number of channels or features")
    c_out = checks.positive_int(c_out, "c_out", "a number of channels or features")
    layers = [nn.Conv2d(c_in, c_out, kernel_size=1, bias=False), nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def linear_projector(d_in: int, d_out: int) -> nn.Linear:
    """A linear map from ``d_in`` to ``d_out`` features, for (B, D) embeddings."""
    d_in = checks.positive_int(d_in, "d_in", "a number of channels or features")
    d_out = checks.positive_int(d_out, "d_out", "a number of channels or features")
    return nn.Linear(d_in, d_out)


def build(student: nn.Module, teacher: nn.Module, student_layer: str, teacher_layer: str,
          example_batch, *, relu: bool | None = None) -> nn.Module:
    """A connector from ``student_layer``'s output to ``teacher_layer``'s, sized from their
    recorded shapes on ``example_batch`` (a few inputs, or a ``Split``/``(images, labels)``).

    4-D features (B, C, H, W) get a :func:`conv_connector` (the spatial sizes must agree);
    2-D features (B, D) a :func:`linear_projector`. The connector is placed on the
    student's device. For a conv connector, ``relu=None`` keeps the ReLU only when the
    teacher's recorded features are non-negative (as after a ReLU or a max-pool of one).

    Both models run once in ``eval()`` under ``no_grad``; their modes are restored.
    """
    if not isinstance(student_layer, str) or not isinstance(teacher_layer, str):
        raise TypeError("student_layer and teacher_layer must be single layer names (str), "
                        f"got {student_layer!r} and {teacher_layer!r}.")
    if is_pair(example_batch):
        example_batch = example_batch[0]  # a Split or an (images, labels) pair
    if not isinstance(example_batch, torch.Tensor):
        raise TypeError("example_batch must be a tensor of inputs (or a Split), got "
                        f"{type(example_batch).__name__}.")
    s_feat = _record_one(student, student_layer, example_batch)
    t_feat = _record_one(teacher, teacher_layer, example_batch)
    s_shape, t_shape = tuple(s_feat.shape), tuple(t_feat.shape)
    where = (f"student {student_layer!r} gives {s_shape}, teacher {teacher_layer!r} gives "
             f"{t_shape}")
    if s_feat.dim() != t_feat.dim():
        raise ValueError(f"The two layers' outputs differ in rank: {where}. Pick layers of "
                         "the same kind (two conv feature maps, or two embeddings).")
    if s_feat.dim() == 4:
        if s_shape[2:] != t_shape[2:]:
            raise ValueError(f"The feature maps differ in spatial size: {where}. A 1×1 "
                             "connector keeps H×W; pick layers of the same resolution or "
                             "pool one of them (e.g. F.adaptive_avg_pool2d).")
        if relu is None:
            relu = bool((t_feat >= 0).all())
        connector = conv_connector(s_shape[1], t_shape[1], relu=relu)
    elif s_feat.dim() == 2:
        connector = linear_projector(s_shape[1], t_shape[1])
    else:
        raise ValueError(f"Connectors exist for 4-D feature maps and 2-D embeddings: {where}. "
                         "Flatten the features or pick another layer.")
    return connector.to(device_of(student))


@torch.no_grad()
def _record_one(model: nn.Module, name: str, example: torch.Tensor) -> torch.Tensor:
    features.check_names(model, [name])
    was_training = model.training
    model.eval()
    try:
        with features.record(model, [name]) as feats:
            model(example.to(device_of(model)))
    finally:
        model.train(was_training)
    if name not in feats:
        raise ValueError(f"{type(model).__name__}.{name} was not called in the forward pass.")
    return feats[name]

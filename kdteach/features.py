"""Recording a model's intermediate outputs by name, without editing the model.

Feature-based distillation (FitNets, attention transfer) and relation-based distillation
need what a layer in the middle of a network computed. :func:`record` attaches PyTorch
forward hooks to the named submodules for the duration of a ``with`` block and always
removes them, even when the block raises.

    with record(model, ["stage2"]) as feats:
        logits = model(x)
    feats["stage2"]          # the output of model.stage2 for this forward pass
"""
from __future__ import annotations

import difflib
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn


def module_names(model: nn.Module) -> list[str]:
    """Every submodule's name that :func:`record` accepts (``""``, the model itself, left out)."""
    return [name for name, _ in model.named_modules() if name]


def check_names(model: nn.Module, names: Sequence[str]) -> list[str]:
    """Return ``names`` as a list, or raise ``ValueError`` listing the nearest valid names."""
    if isinstance(names, str):
        names = [names]
    valid = module_names(model)
    modules = set(valid)
    for name in names:
        if name not in modules:
            near = difflib.get_close_matches(str(name), valid, n=5, cutoff=0.3) or valid[:8]
            raise ValueError(
                f"{type(model).__name__} has no submodule named {name!r}; nearest valid "
                f"names: {near}. See kdteach.features.module_names(model) for all of them.")
    return list(names)


@contextmanager
def record(model: nn.Module, names: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, ``feats[name]`` holds the latest output of submodule ``name``."""
    names = check_names(model, names)
    modules = dict(model.named_modules())
    feats: dict[str, torch.Tensor] = {}
    handles = []

    def keep(name):
        def hook(module, inputs, output):
            feats[name] = output
        return hook

    try:
        for name in names:
            handles.append(modules[name].register_forward_hook(keep(name)))
        yield feats
    finally:
        for handle in handles:
            handle.remove()

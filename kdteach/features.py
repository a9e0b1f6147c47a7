"""Recording a model's intermediate outputs by name, without editing the model.

Feature-based distillation (FitNets, attention transfer) and relation-based distillation
need what a layer in the middle of a network computed. :func:`record` attaches PyTorch
forward hooks to the named submodules for the duration of a ``with`` block and always
removes them, even when the block raises.

    with record(model, ["stage2"]) as feats:
        logits = model(x)
    feats["stage2"]          # the output of model.stage2 for this forward pass

:func:`module_names` lists the names :func:`record` accepts and :func:`shapes` gives each
named layer's output shape on an example batch. The same can be done with torchvision's
FX feature extraction, which rewrites the model's traced graph to return inner nodes:
:func:`extractor` builds one, :func:`node_names` lists its valid names (train or eval
graph). Either way a wrong name raises ``ValueError`` listing the nearest valid names.
"""
from __future__ import annotations

import difflib
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

from .models import device_of


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


# ---------------------------------------------------------------------------------------
# Shapes, and torchvision's FX feature extraction (the other way to read inner layers)
# ---------------------------------------------------------------------------------------

@torch.no_grad()
def shapes(model: nn.Module, names: Sequence[str], example: torch.Tensor) -> dict[str, tuple]:
    """The output shape of each named submodule on ``example`` (a small batch of inputs).

    Runs one forward pass in ``eval()`` under ``no_grad`` (batch-norm statistics are left
    untouched) and restores the model's train/eval mode afterwards.
    """
    names = check_names(model, names)
    if not isinstance(example, torch.Tensor):
        raise TypeError("example must be a batch of inputs (a tensor), got "
                        f"{type(example).__name__}.")
    was_training = model.training
    model.eval()
    try:
        with record(model, names) as feats:
            model(example.to(device_of(model)))
    finally:
        model.train(was_training)
    missing = [name for name in names if name not in feats]
    if missing:
        raise ValueError(f"{missing} produced no output in the forward pass of "
                         f"{type(model).__name__} (their modules were not called).")
    return {name: tuple(feats[name].shape) for name in names}


def _mode(train: bool | str) -> bool:
    if isinstance(train, str):
        if train not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', got {train!r}.")
        return train == "train"
    return bool(train)


def node_names(model: nn.Module, *, train: bool | str = False) -> list[str]:
    """The names of the nodes of ``model``'s FX graph, in execution order.

    These are what :func:`extractor` accepts. They come from torchvision's
    ``get_graph_node_names``, which traces the model once in train and once in eval mode;
    ``train=True`` (or ``"train"``) gives the train-mode graph, the default the eval-mode
    one (they differ only for models whose ``forward`` branches on ``self.training``).
    Unlike :func:`module_names` they include functional operations (``layer1.0.add``) and
    number repeated calls of one module (``layer1.0.relu``, ``layer1.0.relu_1``).
    """
    train_nodes, eval_nodes = _graph_nodes(model)
    return train_nodes if _mode(train) else eval_nodes


def _graph_nodes(model: nn.Module) -> tuple[list[str], list[str]]:
    from torchvision.models.feature_extraction import get_graph_node_names

    _check_module(model)
    train_nodes, eval_nodes = get_graph_node_names(model, suppress_diff_warning=True)
    return list(train_nodes), list(eval_nodes)


def _check_module(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")


def _node_queries(nodes: Sequence[str]) -> list[str]:
    """Every name create_feature_extractor accepts: each node and each of its prefixes."""
    queries = {}
    for node in nodes:
        parts = node.split(".")
        for i in range(1, len(parts) + 1):
            queries.setdefault(".".join(parts[:i]), None)
    return list(queries)


def check_node_names(model: nn.Module, names, *, train: bool | str = False,
                     nodes: Sequence[str] | None = None):
    """Return ``names`` (a list, or a dict ``{node: output key}``) if each is a valid FX
    node name of ``model`` — a node or a dotted prefix of one such as ``"stage2"``, which
    stands for the last node inside it — else raise ``ValueError`` listing the nearest."""
    if isinstance(names, str):
        names = [names]
    if nodes is None:
        nodes = node_names(model, train=train)
    valid = _node_queries(nodes)
    known = set(valid)
    for name in (names.keys() if isinstance(names, dict) else names):
        if name not in known:
            near = difflib.get_close_matches(str(name), valid, n=5, cutoff=0.3) or list(nodes)[:8]
            mode = "train" if _mode(train) else "eval"
            raise ValueError(
                f"{type(model).__name__} has no FX graph node named {name!r} (in {mode} mode); "
                f"nearest valid names: {near}. See kdteach.features.node_names(model) for all "
                "of them.")
    return dict(names) if isinstance(names, dict) else list(names)


def extractor(model: nn.Module, names=None, *, train_names=None, eval_names=None) -> nn.Module:
    """An FX feature extractor of ``model``: calling it returns ``{name: tensor}``.

    A thin wrapper around ``torchvision.models.feature_extraction.create_feature_extractor``
    that validates the names first (a wrong one raises ``ValueError`` with the nearest valid
    names). ``names`` is a list of node names (or prefixes such as ``"stage2"``), or a dict
    ``{node name: output key}``. Pass ``train_names`` and ``eval_names`` instead when the
    two modes should return different nodes. The extractor shares ``model``'s parameters
    (training one trains the other) and follows ``.train()`` / ``.eval()`` like a module.

    Hooks (:func:`record`) see module outputs only, the latest call of each; an FX
    extractor sees every node of the traced graph, including functional operations, and
    needs a model that ``torch.fx`` can trace.
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    if names is not None and (train_names is not None or eval_names is not None):
        raise ValueError("pass either names, or train_names and eval_names, not both.")
    if names is None and (train_names is None or eval_names is None):
        raise ValueError("pass names, or both train_names and eval_names.")
    train_nodes, eval_nodes = _graph_nodes(model)
    if names is not None:
        check_node_names(model, names, train=True, nodes=train_nodes)
        names = check_node_names(model, names, train=False, nodes=eval_nodes)
        return create_feature_extractor(model, return_nodes=names, suppress_diff_warning=True)
    train_names = check_node_names(model, train_names, train=True, nodes=train_nodes)
    eval_names = check_node_names(model, eval_names, train=False, nodes=eval_nodes)
    return create_feature_extractor(model, train_return_nodes=train_names,
                                    eval_return_nodes=eval_names, suppress_diff_warning=True)

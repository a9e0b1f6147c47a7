"""What a student saves and what it costs: size, compute, latency and accuracy.

* parameters and bytes come from the model's tensors;
* FLOPs from ``torch.utils.flop_counter.FlopCounterMode`` (it counts the matrix
  multiplications and convolutions a forward pass dispatches; one multiply-add is 2 FLOPs);
* latency from ``torch.utils.benchmark.Timer``, which warms up, synchronises CUDA and picks
  the number of repetitions itself.
"""
from __future__ import annotations

import copy
import io
import logging

import torch
from torch import nn


def parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters: all of them (what the model costs to store), or with
    ``trainable_only=True`` only those an optimiser would update."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def size_bytes(model: nn.Module) -> int:
    """Bytes of the model as saved by ``torch.save(model.state_dict())`` — parameters and
    buffers, in their stored dtypes (so an int8-quantised model counts its packed weights)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass on ``example`` (a batch; divide by its size per image)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def latency(model: nn.Module, example: torch.Tensor, *, min_run_time: float = 0.2,
            threads: int = 1) -> float:
    """Median seconds of one forward pass on ``example`` (``threads`` CPU threads)."""
    benchmark = _torch_benchmark()

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": example},
                                    num_threads=threads)
            return float(timer.blocked_autorange(min_run_time=min_run_time).median)
    finally:
        model.train(was_training)


def _torch_benchmark():
    # Importing torch.utils.benchmark imports torch.utils.cpp_extension, which logs a warning
    # about CUDA_HOME wherever a CUDA build of torch runs without a GPU: noise in a notebook,
    # and irrelevant to timing a forward pass.
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import benchmark
    finally:
        logger.setLevel(level)
    return benchmark


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose largest logit is at the label."""
    _check_pair(logits, labels)
    return float((logits.argmax(-1) == labels).float().mean())


def errors(logits: torch.Tensor, labels: torch.Tensor) -> int:
    """Number of rows whose largest logit is not at the label (Hinton's tables count these)."""
    _check_pair(logits, labels)
    return int((logits.argmax(-1) != labels).sum())


def _check_pair(logits, labels) -> None:
    if not isinstance(logits, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("logits and labels must be tensors.")
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D (batch, classes), got shape {tuple(logits.shape)}.")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},) to match logits, "
                         f"got {tuple(labels.shape)}.")


def summary(model: nn.Module, example: torch.Tensor, *, threads: int = 1) -> dict:
    """Parameters, bytes, FLOPs per image and CPU latency per image (ms) in one dict."""
    cpu_model = copy.deepcopy(model).to("cpu")  # a copy: ``model.to`` would move the caller's
    x = example.to("cpu")
    return {
        "parameters": parameters(cpu_model),
        "bytes": size_bytes(cpu_model),
        "flops_per_image": flops(cpu_model, x) / len(x),
        "latency_ms_per_image": 1e3 * latency(cpu_model, x, threads=threads) / len(x),
    }

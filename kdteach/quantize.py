"""Post-training dynamic int8 quantisation: distillation's natural partner.

Distillation shrinks the *architecture*; quantisation shrinks the *numbers*. Dynamic
quantisation (Jacob et al. 2018, "Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference", CVPR 2018, for the affine scheme) stores each
``nn.Linear`` weight matrix as 8-bit integers with one float scale and zero point,

    w ≈ scale * (q - zero_point),     q ∈ {-128, …, 127},

and quantises each layer's *input* on the fly, per batch, from its observed range, so it
needs no calibration data and no retraining. The matrix product runs in int8 (x86:
fbgemm/onednn kernels; ARM: qnnpack) and is dequantised to float afterwards.

Only the layer types named are replaced — by default ``nn.Linear``. Convolutions and
BatchNorm stay float32 under *dynamic* quantisation. So a model shrinks by close to 4× only
if nearly all its parameters are in Linear layers; :func:`predicted_ratio` says how much
to expect from the share of parameters that are.

:func:`static_int8` is post-training *static* quantisation: it first runs the model on a
few hundred calibration images to record the range of every layer's activations, then
folds each BatchNorm into the convolution before it (Jacob et al. 2018, Sec. 3.2), fuses
the ReLUs, and converts every convolution and Linear layer, weights and activations, to
int8 (PyTorch's FX graph-mode quantisation, default x86 settings: per-channel weight
scales, per-tensor activation scales). The whole CNN is then int8, not only its Linear part.

Which API: PyTorch 2.14 still ships ``torch.ao.quantization.quantize_dynamic`` with its
int8 CPU kernels, but marks the module deprecated in favour of the separate ``torchao``
package (``torchao.quantization.quantize_`` with ``Int8DynamicActivationInt8WeightConfig``).
We keep ``quantize_dynamic``: it needs no extra dependency, and on a CPU its int8 kernels
are what make the quantised model *faster* — torchao targets GPUs, and its CPU path
measured tens of times slower than float here (torch 2.14, torchao 0.18). The
deprecation warnings are silenced around that one call only. If a later PyTorch
removes it, :func:`dynamic_int8` falls back to torchao when that is installed.
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from . import checks, metrics, train


def dynamic_int8(model: nn.Module, layers: tuple[type[nn.Module], ...] = (nn.Linear,)) -> nn.Module:
    """An int8 dynamically quantised copy of ``model`` on the CPU, in ``eval()`` mode.

    The original is left untouched. Every submodule whose type is in ``layers`` gets int8
    weights; everything else stays float32. The result runs on the CPU only.
    """
    checks.model(model, "model")
    float_copy = copy.deepcopy(model).to("cpu").eval()
    quantize_dynamic = getattr(getattr(torch, "ao", None), "quantization", None)
    quantize_dynamic = getattr(quantize_dynamic, "quantize_dynamic", None)
    if quantize_dynamic is None:  # a PyTorch without torch.ao.quantization
        return _torchao_int8(float_copy, layers)
    with warnings.catch_warnings():
        # "torch.ao.quantization is deprecated …" and "quantize_per_tensor … deprecated":
        # known, explained in the module docstring.
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated")
        return quantize_dynamic(float_copy, set(layers), dtype=torch.qint8)


def static_int8(model: nn.Module, calibration: torch.Tensor, *, batch_size: int = 256,
                backend: str = "x86") -> nn.Module:
    """An int8 statically quantised copy of ``model`` on the CPU, in ``eval()`` mode.

    ``calibration`` is a batch of typical inputs (e.g. 500 training images): the model is
    run on it once to observe each activation's range, from which the int8 scales are set.
    Convolutions (with their BatchNorm folded in and ReLU fused) and Linear layers become
    int8; the original model is left untouched. The result runs on the CPU only.
    """
    checks.model(model, "model")
    if not isinstance(calibration, torch.Tensor):
        raise TypeError(f"calibration must be a tensor of example inputs, got "
                        f"{type(calibration).__name__}; pass e.g. train_split.images[:500].")
    if calibration.ndim < 2 or len(calibration) == 0:
        raise ValueError(f"calibration must be a non-empty batch of inputs, got shape "
                         f"{tuple(calibration.shape)}; pass e.g. train_split.images[:500].")
    with warnings.catch_warnings():
        # deprecation notices of torch.ao.quantization (see the module docstring) and its
        # note that reduce_range will be replaced by quant_min/quant_max
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*")
        warnings.filterwarnings("ignore", message=r".*reduce_range will be deprecated")
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        float_copy = copy.deepcopy(model).to("cpu").eval()
        examples = calibration.detach().to("cpu", torch.float32)
        observed = prepare_fx(float_copy, get_default_qconfig_mapping(backend),
                              example_inputs=(examples[:1],))
        with torch.no_grad():
            for start in range(0, len(examples), batch_size):
                observed(examples[start:start + batch_size])
        return convert_fx(observed)


def _torchao_int8(model: nn.Module, layers) -> nn.Module:
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as err:
        raise RuntimeError("This PyTorch has no torch.ao.quantization.quantize_dynamic; "
                           "install torchao (pip install torchao) for int8 quantisation.") from err
    quantize_(model, Int8DynamicActivationInt8WeightConfig(),
              filter_fn=lambda module, fqn: isinstance(module, tuple(layers)))
    return model


def quantized_fraction(model: nn.Module, layers: tuple[type[nn.Module], ...] = (nn.Linear,)) -> float:
    """Fraction of ``model``'s parameters that sit in layers of the types ``layers``."""
    total = metrics.parameters(model)
    inside = sum(p.numel() for m in model.modules() if isinstance(m, tuple(layers))
                 for p in m.parameters(recurse=False))
    return inside / total if total else 0.0


def predicted_ratio(model: nn.Module, layers: tuple[type[nn.Module], ...] = (nn.Linear,)) -> float:
    """Float size / quantised size if a fraction f of the parameters goes from 4 bytes to 1:

        ratio = 1 / (f / 4 + (1 - f))      (f = 1 gives 4; f = 0.5 gives 1.6)

    An Amdahl's-law bound: the float part caps the gain. It ignores biases (kept float),
    scales and the file's own overhead, so measured ratios come out a little lower.
    """
    f = quantized_fraction(model, layers)
    return 1.0 / (f / 4 + (1 - f))


def profile(model: nn.Module, example: torch.Tensor, test=None, *, threads: int = 1,
            min_run_time: float = 0.2) -> dict:
    """Bytes, CPU milliseconds per image and (with ``test``) test accuracy of ``model``.

    Bytes are :func:`kdteach.metrics.size_bytes`; latency is :func:`kdteach.metrics.latency`
    on the batch ``example`` with ``threads`` CPU threads, divided by the batch size; the
    model and data are used on the CPU (where the quantised kernels run).
    """
    cpu_model = model if _is_cpu(model) else copy.deepcopy(model).to("cpu")
    x = example.to("cpu")
    row = {"bytes": metrics.size_bytes(cpu_model),
           "ms_per_image": 1e3 * metrics.latency(cpu_model, x, threads=threads,
                                                  min_run_time=min_run_time) / len(x)}
    if test is not None:
        row["accuracy"] = train.evaluate(cpu_model, test, device="cpu").accuracy
    return row


def _is_cpu(model: nn.Module) -> bool:
    tensors = list(model.parameters()) + list(model.buffers())
    return all(t.device.type == "cpu" for t in tensors)

"""Self-checks for notebook 05, FitNets hints from the teacher's middle layers: a connector's
parameters and the FX nodes the MMRazor FitNets config's recorders read (the student's
``record_idx=1`` on a ResNet-18 ``BasicBlock``, the teacher's ``record_idx=2`` on a ResNet-50
``Bottleneck``).
"""
from __future__ import annotations

from .. import metrics
from ..connectors import conv_connector
from .feedback import feedback, is_unanswered, not_attempted


def check_connector_parameters(n, c_in: int = 16, c_out: int = 32) -> bool:
    """Exercise 5.1: trainable parameters of ``connectors.conv_connector(c_in, c_out)``
    (1×1 conv without bias, batch norm, ReLU); notebook 05's thin student needs 16 → 32."""
    if is_unanswered(n):
        return not_attempted(f"set `n` to the number of trainable parameters of the {c_in} → {c_out} "
                             "connector.")
    if isinstance(n, bool):
        return feedback(False, "Give a number (an int), not a bool.")
    try:
        n = float(n)
    except (TypeError, ValueError):
        return feedback(False, f"Give a number (an int), not {type(n).__name__}.")
    expected = metrics.parameters(conv_connector(c_in, c_out), trainable_only=True)
    conv, bn, buffers = c_in * c_out, 2 * c_out, 2 * c_out
    if n == expected:
        return feedback(True, f"Right: {conv} conv weights (1×1 kernel, no bias) + {bn} batch-norm "
                        f"parameters (a scale γ and a shift β per output channel) = {expected}. "
                        "The ReLU has none.")
    wrong = [
        (conv, "You counted the convolution only; BatchNorm2d has a learned scale and shift per "
               "output channel (γ, β) too."),
        (conv + c_out, "The conv has no bias (bias=False: the batch norm's shift β does its job), "
                       "and the batch norm's γ and β are missing."),
        (conv + c_out + bn, "The convolution has no bias (bias=False): with batch norm right after "
                            "it, a bias would be cancelled by the mean subtraction."),
        (conv + bn + buffers, "running_mean and running_var are buffers, not parameters: the "
                              "optimizer never updates them (see model.named_buffers())."),
        (9 * conv + bn, "The kernel is 1×1, not 3×3: the connector mixes channels at each "
                        "position and keeps the spatial layout."),
        (c_in * c_in + 2 * c_in, f"The connector maps {c_in} channels to {c_out}: its weights are "
                                 f"c_in × c_out = {c_in}×{c_out}, and the batch norm follows the "
                                 f"conv, so it has {c_out} channels."),
        (c_in + c_out, "A 1×1 conv still has a weight for every (input channel, output channel) "
                       "pair: c_in × c_out of them."),
    ]
    hint = next((h for value, h in wrong if n == value), None)
    if hint:
        return feedback(False, hint)
    return feedback(False, f"{n:g} is off. Count c_in × c_out conv weights, then 2 × c_out for the "
                    "batch norm; check with sum(p.numel() for p in conn.parameters()).")


def check_fx_node_for_record_idx(name) -> bool:
    """Exercise 5.2: the FX node of torchvision's resnet18 that mmrazor's
    ``ModuleOutputs(source='backbone.layer4.1.relu')`` with ``record_idx=1`` records."""
    if is_unanswered(name):
        return not_attempted("set `name` to an FX node name of torchvision.models.resnet18(), a str.")
    if not isinstance(name, str):
        return feedback(False, f"A node name is a str such as 'layer1.0.conv1', not {type(name).__name__}.")
    expected = "layer4.1.relu_1"
    if name == expected:
        return feedback(True, "Right: BasicBlock calls its one ReLU module twice; record_idx=1 is the "
                        "second call, after the residual addition — FX names it relu_1. A forward "
                        "hook on layer4.1.relu fires twice and kdteach's record keeps the last call, "
                        "which happens to be the same tensor here.")
    if name == "layer4.1":
        return feedback(True, "That works: a prefix selects the last node inside it, relu_1, the same "
                        "tensor. The node's own name is 'layer4.1.relu_1'.")
    if name == "layer4.1.relu":
        return feedback(False, "That is the first call (record_idx=0): the ReLU after bn1, inside the "
                        "block. record_idx counts from 0.")
    if name.startswith("backbone."):
        return feedback(False, "'backbone.' is mmcls's wrapper around the ResNet; torchvision's resnet18 "
                        "is the backbone itself, so drop the prefix.")
    if name == "layer4.1.add":
        return feedback(False, "Close: the addition comes before the second ReLU call; the recorded "
                        "output is that ReLU's.")
    if name in ("layer4.1.relu_2", "layer4.2.relu_1"):
        return feedback(False, "resnet18's layer4 has two blocks (0 and 1) and each BasicBlock calls its "
                        "ReLU twice: relu and relu_1. Look at features.node_names(model).")
    return feedback(False, f"{name!r} is not it. List the candidates with "
                    "[n for n in features.node_names(model) if n.startswith('layer4.1')].")


def check_teacher_fx_node(name) -> bool:
    """Exercise 5.3: the FX node of torchvision's resnet50 that MMRazor's
    ``ModuleOutputs(source='backbone.layer4.2.relu')`` with ``record_idx=2`` records."""
    if is_unanswered(name):
        return not_attempted("set `teacher_node` to an FX node name of torchvision.models.resnet50(), "
                             "a str.")
    if not isinstance(name, str):
        return feedback(False, f"A node name is a str such as 'layer1.0.conv1', not {type(name).__name__}.")
    expected = "layer4.2.relu_2"
    if name == expected:
        return feedback(True, "Right: a Bottleneck calls its one ReLU module three times — after bn1, "
                        "after bn2, and after the residual addition; record_idx=2 is the third call, "
                        "the block's output, which FX names relu_2.")
    if name == "layer4.2":
        return feedback(True, "That works: a prefix selects the last node inside it, relu_2, the same "
                        "tensor. The node's own name is 'layer4.2.relu_2'.")
    if name.startswith("backbone."):
        return feedback(False, "'backbone.' is the framework's wrapper around the ResNet; torchvision's "
                        "resnet50 is the backbone itself, so drop the prefix.")
    if name == "layer4.2.relu":
        return feedback(False, "That is the first call (record_idx=0), the ReLU after bn1, inside the "
                        "block. record_idx counts from 0.")
    if name == "layer4.2.relu_1":
        return feedback(False, "That is the second call (record_idx=1), the ReLU after bn2, still inside "
                        "the block. A Bottleneck calls its ReLU three times; record_idx=2 is the third.")
    if name == "layer4.2.add":
        return feedback(False, "Close: the addition comes before the third ReLU call; the recorded "
                        "output is that ReLU's.")
    if name in ("layer4.1.relu_2", "layer4.1.relu_1"):
        return feedback(False, "The config names block 2 of layer4 (layer4.2): ResNet-50's layer4 has "
                        "three Bottlenecks, 0, 1 and 2.")
    if name in ("layer4.2.relu_3", "layer4.3.relu_2"):
        return feedback(False, "There is no such node: each Bottleneck has relu, relu_1 and relu_2, and "
                        "ResNet-50's layer4 has blocks 0 to 2. Look at features.node_names(model).")
    return feedback(False, f"{name!r} is not it. List the candidates with "
                    "[n for n in features.node_names(model) if n.startswith('layer4.2')].")

"""Self-checks of notebook 05 (FitNets hints): right answers pass, common mistakes get a specific
hint."""
from __future__ import annotations

import pytest
import torchvision

from kdteach import connectors, features
from kdteach.exercises import nb05 as exercises


def test_connector_parameters_of_the_notebooks_student(run_check):
    """The notebook's 16 → 32 connector: 16·32 conv weights + 2·32 batch-norm parameters."""
    ok, out = run_check(exercises.check_connector_parameters, 576)
    assert ok and out.startswith("✓"), out
    for wrong, words in [(512, "γ, β"), (544, "no bias"), (608, "no bias"), (640, "buffers"),
                         (4672, "1×1"), (288, "maps 16 channels to 32"), (48, "every"), (7, "off")]:
        ok, out = run_check(exercises.check_connector_parameters, wrong)
        assert not ok and out.startswith("✗") and words in out, (wrong, out)
    assert not run_check(exercises.check_connector_parameters, None)[0]
    assert "number" in run_check(exercises.check_connector_parameters, "lots")[1]
    assert "bool" in run_check(exercises.check_connector_parameters, True)[1]


@pytest.mark.parametrize("c_in, c_out", [(8, 32), (16, 32), (3, 5)])
def test_connector_parameters_follow_the_module(run_check, c_in, c_out):
    """The expected count is the module's own, for any connector size."""
    n = sum(p.numel() for p in connectors.conv_connector(c_in, c_out).parameters())
    assert n == c_in * c_out + 2 * c_out
    ok, out = run_check(exercises.check_connector_parameters, n, c_in, c_out)
    assert ok, out
    ok, out = run_check(exercises.check_connector_parameters, c_in * c_out, c_in, c_out)
    assert not ok and "γ, β" in out, out


def test_fx_node_for_record_idx(run_check):
    assert run_check(exercises.check_fx_node_for_record_idx, "layer4.1.relu_1")[0]
    assert run_check(exercises.check_fx_node_for_record_idx, "layer4.1")[0]
    for wrong, words in [("layer4.1.relu", "first call"), ("backbone.layer4.1.relu_1", "backbone"),
                         ("layer4.1.add", "addition"), ("layer4.1.relu_2", "twice"),
                         ("fc", "not it"), (3, "str")]:
        ok, out = run_check(exercises.check_fx_node_for_record_idx, wrong)
        assert not ok and words in out, (wrong, out)
    assert not run_check(exercises.check_fx_node_for_record_idx, ...)[0]


def test_teacher_fx_node(run_check):
    assert run_check(exercises.check_teacher_fx_node, "layer4.2.relu_2")[0]
    assert run_check(exercises.check_teacher_fx_node, "layer4.2")[0]
    for wrong, words in [("layer4.2.relu", "first call"), ("layer4.2.relu_1", "second call"),
                         ("backbone.layer4.2.relu_2", "backbone"), ("layer4.2.add", "addition"),
                         ("layer4.1.relu_2", "three Bottlenecks"), ("layer4.2.relu_3", "no such node"),
                         ("layer4.3.relu_2", "no such node"), ("fc", "not it"), (2, "str")]:
        ok, out = run_check(exercises.check_teacher_fx_node, wrong)
        assert not ok and words in out, (wrong, out)
    assert not run_check(exercises.check_teacher_fx_node, None)[0]


def test_the_expected_teacher_node_is_resnet50s_third_relu_call():
    """The answer the self-check accepts is a real node of torchvision's ResNet-50: the last of
    the three ReLU calls of block layer4.2, right after the residual addition."""
    block = [n for n in features.node_names(torchvision.models.resnet50()) if n.startswith("layer4.2.")]
    relus = [n for n in block if n.split(".")[-1].startswith("relu")]
    assert relus == ["layer4.2.relu", "layer4.2.relu_1", "layer4.2.relu_2"]
    assert block.index("layer4.2.add") == block.index("layer4.2.relu_2") - 1

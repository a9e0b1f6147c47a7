"""kdteach.features: recording intermediate outputs by name (always removing the hooks),
shapes, and torchvision's FX feature extraction by name."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from kdteach import features, models


def toy() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_record_captures_outputs():
    model = toy()
    x = torch.randn(5, 4)
    with features.record(model, ["0", "2"]) as feats:
        out = model(x)
        assert hook_count(model) == 2
    assert set(feats) == {"0", "2"}
    assert torch.equal(feats["2"], out)
    assert torch.allclose(feats["0"], model[0](x))
    assert feats["0"].requires_grad  # outputs keep their graph (feature losses need it)


def test_record_keeps_the_latest_forward_pass():
    model = toy()
    x1, x2 = torch.randn(2, 4), torch.randn(3, 4)
    with features.record(model, ["1"]) as feats:
        model(x1)
        model(x2)
    assert torch.equal(feats["1"], torch.relu(model[0](x2)))


def test_record_accepts_a_single_name_and_nested_names():
    model = models.cnn_student().eval()
    x = torch.randn(2, 1, 28, 28)
    with features.record(model, "stage2") as feats, torch.no_grad():
        model(x)
    assert list(feats) == ["stage2"] and feats["stage2"].shape == (2, 16, 7, 7)
    with features.record(model, ["stage1.0", "embed.1"]) as feats, torch.no_grad():
        model(x)
    assert feats["stage1.0"].shape == (2, 8, 28, 28)  # the conv, before pooling
    assert feats["embed.1"].shape == (2, 32)


def test_recorded_features_are_not_overwritten_by_later_layers():
    """Every name record accepts gives that layer's own output (no in-place layer after it)."""
    torch.manual_seed(0)
    model = models.cnn_student().eval()
    x = torch.randn(4, 1, 28, 28)
    with features.record(model, ["stage1.1", "embed.1"]) as feats, torch.no_grad():
        model(x)
        bn_out = model.stage1[1](model.stage1[0](x))
        linear_out = model.embed[1](model.embed[0](model.stage3(model.stage2(model.stage1(x)))))
    assert (bn_out < 0).any() and (linear_out < 0).any()  # ReLU would change them
    assert torch.allclose(feats["stage1.1"], bn_out, atol=1e-6)
    assert torch.allclose(feats["embed.1"], linear_out, atol=1e-6)


def test_hooks_removed_after_the_block():
    model = toy()
    with features.record(model, ["0", "1", "2"]):
        model(torch.randn(1, 4))
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    # Outside the block nothing is recorded any more.
    with features.record(model, ["0"]) as feats:
        pass
    model(torch.randn(1, 4))
    assert feats == {}


def test_hooks_removed_after_an_exception_inside_the_block():
    model = toy()
    with pytest.raises(RuntimeError, match="boom"):
        with features.record(model, ["0", "2"]):
            model(torch.randn(1, 4))
            raise RuntimeError("boom")
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    with pytest.raises(RuntimeError):  # a failing forward pass (wrong width)
        with features.record(model, ["0"]):
            model(torch.randn(1, 5))
    assert hook_count(model) == 0


def test_user_hooks_are_left_alone():
    model = toy()
    handle = model[0].register_forward_hook(lambda m, i, o: None)
    with features.record(model, ["0"]):
        assert len(model[0]._forward_hooks) == 2
    assert len(model[0]._forward_hooks) == 1
    handle.remove()


def test_wrong_name_raises_with_the_nearest_valid_name():
    model = models.cnn_teacher()
    with pytest.raises(ValueError) as info:
        with features.record(model, ["stage_2"]):
            pytest.fail("the block must not run")
    message = str(info.value)
    assert "'stage_2'" in message and "'stage2'" in message
    assert "ConvNet" in message
    assert hook_count(model) == 0
    with pytest.raises(ValueError, match="'embed'"):
        features.check_names(model, ["stage1", "embedd"])


def test_wrong_name_on_a_model_with_no_close_match_still_lists_names():
    model = toy()
    with pytest.raises(ValueError, match=r"\['0', '1', '2'\]"):
        features.check_names(model, ["zzzzzz"])


def test_check_names_returns_a_list():
    model = toy()
    assert features.check_names(model, ("0", "2")) == ["0", "2"]
    assert features.check_names(model, "1") == ["1"]
    assert features.check_names(model, []) == []


def test_module_names():
    assert features.module_names(toy()) == ["0", "1", "2"]
    names = features.module_names(models.cnn_teacher())
    assert "" not in names
    assert {"stage1", "stage2", "stage3", "embed", "fc", "stage1.0", "embed.1"} <= set(names)
    mlp_names = features.module_names(models.hinton_teacher())
    assert mlp_names == ["flatten", "drop0", "fc1", "relu1", "drop1", "fc2", "relu2", "drop2",
                         "out"]


# -- shapes and torchvision's FX feature extraction ------------------------------------


def test_shapes_of_named_layers_and_modes_restored():
    model = models.cnn_student().train()
    running = model.stage1[1].running_mean.clone()
    got = features.shapes(model, ["stage1", "stage2", "stage3", "embed", "fc"],
                          torch.randn(3, 1, 28, 28))
    assert got == {"stage1": (3, 8, 14, 14), "stage2": (3, 16, 7, 7), "stage3": (3, 16, 7, 7),
                   "embed": (3, 32), "fc": (3, 10)}
    assert model.training  # mode restored
    assert torch.equal(model.stage1[1].running_mean, running)  # eval(): BN stats untouched
    assert hook_count(model) == 0
    teacher = models.cnn_teacher().eval()
    assert features.shapes(teacher, "stage2", torch.randn(2, 1, 28, 28)) == {"stage2": (2, 32, 7, 7)}
    assert not teacher.training


def test_shapes_rejects_wrong_names_and_inputs():
    model = models.cnn_student()
    with pytest.raises(ValueError, match="'stage2'"):
        features.shapes(model, ["stage_2"], torch.randn(1, 1, 28, 28))
    with pytest.raises(TypeError, match="tensor"):
        features.shapes(model, ["stage2"], [[0.0]])
    assert hook_count(model) == 0


def test_node_names_train_and_eval():
    model = models.cnn_student()
    eval_nodes = features.node_names(model)
    assert eval_nodes[0] == "x" and eval_nodes[-1] == "fc"
    assert {"stage1.0", "stage2.3", "embed.1"} <= set(eval_nodes)
    assert features.node_names(model, train=True) == eval_nodes
    assert features.node_names(model, train="eval") == eval_nodes
    with pytest.raises(ValueError, match="'train' or 'eval'"):
        features.node_names(model, train="test")


def test_node_names_include_functional_ops_and_repeated_calls():
    """FX distinguishes the two calls of one ReLU module in a ResNet block; hooks cannot."""
    nodes = features.node_names(torchvision.models.resnet18())
    block = [n for n in nodes if n.startswith("layer4.1.")]
    assert block == ["layer4.1.conv1", "layer4.1.bn1", "layer4.1.relu", "layer4.1.conv2",
                     "layer4.1.bn2", "layer4.1.add", "layer4.1.relu_1"]


class Branchy(nn.Module):
    """A model whose graph differs between train and eval mode."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x):
        x = self.a(x)
        if self.training:
            x = self.b(x)
        return x


def test_train_and_eval_graphs_can_differ():
    model = Branchy()
    assert "b" in features.node_names(model, train=True)
    assert "b" not in features.node_names(model, train=False)
    with pytest.raises(ValueError, match="eval mode"):
        features.extractor(model, ["b"])
    ex = features.extractor(model, train_names={"b": "out"}, eval_names={"a": "out"})
    x = torch.randn(2, 4)
    ex.train()
    assert torch.allclose(ex(x)["out"], model.b(model.a(x)))
    ex.eval()
    assert torch.allclose(ex(x)["out"], model.a(x))


def test_extractor_matches_hooks_and_shares_parameters():
    torch.manual_seed(0)
    model = models.cnn_teacher().eval()
    x = torch.randn(4, 1, 28, 28)
    ex = features.extractor(model, ["stage2", "embed.1"])
    assert not ex.training  # follows the model's mode
    with torch.no_grad():
        fx = ex(x)
        with features.record(model, ["stage2", "embed.1"]) as hooked:
            model(x)
    assert set(fx) == {"stage2", "embed.1"}
    for name in fx:
        assert torch.allclose(fx[name], hooked[name], atol=1e-6)
    # "stage2" is a prefix: the last node inside it, the max-pool
    assert fx["stage2"].shape == (4, 32, 7, 7)
    params = dict(ex.named_parameters())
    assert params["stage2.0.weight"] is model.stage2[0].weight
    assert hook_count(model) == 0


def test_extractor_with_a_dict_renames_outputs():
    model = models.cnn_student().eval()
    ex = features.extractor(model, {"stage3": "mid", "fc": "logits"})
    out = ex(torch.randn(2, 1, 28, 28))
    assert list(out) == ["mid", "logits"] and out["logits"].shape == (2, 10)


def test_extractor_wrong_name_lists_the_nearest_node_names():
    model = models.cnn_student()
    with pytest.raises(ValueError) as info:
        features.extractor(model, ["stage_2"])
    message = str(info.value)
    assert "'stage_2'" in message and "'stage2'" in message and "ConvNet" in message
    assert "node_names" in message
    with pytest.raises(ValueError, match="'embed"):
        features.check_node_names(model, ["embedd"])
    resnet = torchvision.models.resnet18()
    with pytest.raises(ValueError, match="layer4.1.relu_1"):
        features.extractor(resnet, ["layer4.1.relu_2"])


def test_check_node_names_accepts_nodes_and_prefixes():
    model = models.cnn_student()
    assert features.check_node_names(model, ["stage1", "stage1.2", "x"]) == ["stage1", "stage1.2", "x"]
    assert features.check_node_names(model, "fc") == ["fc"]
    assert features.check_node_names(model, {"fc": "out"}) == {"fc": "out"}
    with pytest.raises(ValueError):
        features.check_node_names(model, ["stage1.9"])


def test_extractor_argument_errors():
    model = models.cnn_student()
    with pytest.raises(ValueError, match="either"):
        features.extractor(model, ["fc"], train_names=["fc"], eval_names=["fc"])
    with pytest.raises(ValueError, match="both"):
        features.extractor(model, train_names=["fc"])
    with pytest.raises(TypeError, match="nn.Module"):
        features.node_names("not a model")

"""kdteach.features: recording intermediate outputs by name, and always removing the hooks."""
from __future__ import annotations

import pytest
import torch
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

"""kdteach.connectors: shapes inferred from the two models, and trained with the student."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from kdteach import config, connectors, data, losses, models, train


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_conv_connector_is_1x1_conv_bn_relu():
    conn = connectors.conv_connector(8, 32)
    assert [type(m) for m in conn] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert conn[0].kernel_size == (1, 1) and conn[0].bias is None
    out = conn(torch.randn(2, 8, 7, 7))
    assert out.shape == (2, 32, 7, 7) and (out >= 0).all()
    assert [type(m) for m in connectors.conv_connector(8, 32, relu=False)] == [nn.Conv2d, nn.BatchNorm2d]


def test_linear_projector():
    proj = connectors.linear_projector(32, 256)
    assert isinstance(proj, nn.Linear) and proj(torch.randn(3, 32)).shape == (3, 256)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_widths_are_checked(bad):
    with pytest.raises(ValueError, match="positive int"):
        connectors.conv_connector(bad, 4)
    with pytest.raises(ValueError, match="positive int"):
        connectors.linear_projector(4, bad)


def test_build_infers_the_shapes_from_an_example_batch():
    student, teacher = models.cnn_student().train(), models.cnn_teacher().eval()
    x = torch.randn(4, 1, 28, 28)
    conv = connectors.build(student, teacher, "stage2", "stage2", x)
    assert conv[0].in_channels == 16 and conv[0].out_channels == 32
    assert isinstance(conv[-1], nn.ReLU)  # the teacher's stage output is after a ReLU
    proj = connectors.build(student, teacher, "embed", "embed", x)
    assert isinstance(proj, nn.Linear) and (proj.in_features, proj.out_features) == (32, 256)
    assert student.training and not teacher.training  # modes restored
    assert hook_count(student) == hook_count(teacher) == 0
    # a Split works as the example, and a pre-activation layer gets no ReLU
    split = data.Split(x, torch.zeros(4, dtype=torch.long))
    pre = connectors.build(student, teacher, "stage1.1", "stage1.1", split)
    assert [type(m) for m in pre] == [nn.Conv2d, nn.BatchNorm2d]


def test_build_rejects_mismatched_layers_with_a_clear_message():
    student, teacher = models.cnn_student(), models.cnn_teacher()
    x = torch.randn(2, 1, 28, 28)
    with pytest.raises(ValueError, match="spatial size"):
        connectors.build(student, teacher, "stage1", "stage2", x)
    with pytest.raises(ValueError, match="rank"):
        connectors.build(student, teacher, "stage3", "embed", x)
    with pytest.raises(ValueError, match="'stage2'"):
        connectors.build(student, teacher, "stage_2", "stage2", x)
    with pytest.raises(TypeError):
        connectors.build(student, teacher, ["stage2"], "stage2", x)
    with pytest.raises(TypeError):
        connectors.build(student, teacher, "stage2", "stage2", "images")
    assert hook_count(student) == hook_count(teacher) == 0


def test_build_on_3d_features_is_refused():
    seq_s = nn.Sequential(nn.Unflatten(1, (2, 3)))
    seq_t = nn.Sequential(nn.Unflatten(1, (2, 3)))
    with pytest.raises(ValueError, match="4-D"):
        connectors.build(seq_s, seq_t, "0", "0", torch.randn(2, 6))


def _tiny_data(n=64):
    config.seed_everything(0)
    return data.Split(torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,)))


@pytest.mark.parametrize("layer", ["stage2", "embed"])
def test_gradients_reach_the_connector_through_distill(layer):
    split = _tiny_data()
    config.seed_everything(0)
    teacher, student = models.cnn_teacher().eval(), models.cnn_student()
    conn = connectors.build(student, teacher, layer, layer, split.images[:8])
    before = [p.detach().clone() for p in conn.parameters()]
    teacher_before = [p.detach().clone() for p in teacher.parameters()]
    history = train.distill(
        student, teacher, split, epochs=2, batch_size=32, lr=1e-2, device="cpu",
        student_features=[layer], teacher_features=[layer], extra_modules=[conn],
        loss=lambda o: losses.hint_loss(conn(o.student_features[layer]),
                                        o.teacher_features[layer]), progress=False)
    assert len(history) == 2
    assert all(not torch.equal(b, p) for b, p in zip(before, conn.parameters())), \
        "every connector parameter should have been updated by the optimizer"
    assert all(torch.equal(b, p) for b, p in zip(teacher_before, teacher.parameters()))


def test_hint_training_lowers_the_hint_loss():
    split = _tiny_data(128)
    config.seed_everything(0)
    teacher, student = models.cnn_teacher().eval(), models.cnn_student()
    conn = connectors.build(student, teacher, "stage2", "stage2", split.images[:8])
    history = train.distill(
        student, teacher, split, epochs=4, batch_size=32, lr=1e-2, device="cpu",
        student_features=["stage2"], teacher_features=["stage2"], extra_modules=[conn],
        progress=False, loss=lambda o: losses.hint_loss(conn(o.student_features["stage2"]),
                                                        o.teacher_features["stage2"]))
    assert history["train_loss"][-1] < 0.8 * history["train_loss"][0], history["train_loss"]

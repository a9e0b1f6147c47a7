"""kdteach.models: output shapes, parameter counts, stage names and sizes, bad arguments."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from kdteach import features, metrics, models

BUILDERS = {
    "mlp": lambda: models.MLP((784, 20, 10)),
    "hinton_teacher": models.hinton_teacher,
    "hinton_student": models.hinton_student,
    "cnn_teacher": models.cnn_teacher,
    "cnn_student": models.cnn_student,
}

HINTON_TEACHER_PARAMS = 784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10
HINTON_STUDENT_PARAMS = 784 * 800 + 800 + 800 * 800 + 800 + 800 * 10 + 10


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("batch", [1, 3])
def test_logits_shape(name, batch):
    torch.manual_seed(0)
    model = BUILDERS[name]().eval()
    with torch.no_grad():
        logits = model(torch.randn(batch, 1, 28, 28))
    assert logits.shape == (batch, 10)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_hinton_parameter_counts():
    assert metrics.parameters(models.hinton_teacher()) == HINTON_TEACHER_PARAMS == 2_395_210
    assert metrics.parameters(models.hinton_student()) == HINTON_STUDENT_PARAMS == 1_276_810
    assert metrics.parameters(models.hinton_teacher(), trainable_only=True) == HINTON_TEACHER_PARAMS


def test_hinton_layers_and_dropout():
    teacher, student = models.hinton_teacher(), models.hinton_student()
    names = [n for n, _ in teacher.named_children()]
    assert names == ["flatten", "drop0", "fc1", "relu1", "drop1", "fc2", "relu2", "drop2", "out"]
    assert teacher.drop0.p == 0.2 and teacher.drop1.p == 0.5 and teacher.drop2.p == 0.5
    assert teacher.sizes == (784, 1200, 1200, 10) and student.sizes == (784, 800, 800, 10)
    assert not any(isinstance(m, nn.Dropout) for m in student.modules())
    assert [n for n, _ in student.named_children()] == ["flatten", "fc1", "relu1", "fc2",
                                                       "relu2", "out"]


def test_teacher_dropout_is_active_only_in_training():
    torch.manual_seed(0)
    teacher = models.hinton_teacher()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        teacher.train()
        a, b = teacher(x), teacher(x)
        teacher.eval()
        c, d = teacher(x), teacher(x)
    assert not torch.equal(a, b)
    assert torch.equal(c, d)


def test_parameters_trainable_only_counts_what_an_optimiser_updates():
    model = models.MLP((10, 5, 2))
    assert metrics.parameters(model, trainable_only=True) == 10 * 5 + 5 + 5 * 2 + 2
    model.fc1.requires_grad_(False)
    assert metrics.parameters(model, trainable_only=True) == 5 * 2 + 2
    assert metrics.parameters(model) == 10 * 5 + 5 + 5 * 2 + 2


def test_device_of_reads_parameters_then_buffers():
    assert models.device_of(models.MLP((4, 2))) == torch.device("cpu")
    assert models.device_of(nn.Sequential()) == torch.device("cpu")  # nothing to read
    only_buffers = nn.BatchNorm1d(3, affine=False)
    assert models.device_of(only_buffers) == torch.device("cpu")
    meta = nn.Linear(2, 2, device="meta")
    assert models.device_of(meta) == torch.device("meta")


def test_cnn_student_has_under_a_tenth_of_the_teacher():
    teacher = metrics.parameters(models.cnn_teacher())
    student = metrics.parameters(models.cnn_student())
    assert student * 10 < teacher
    assert student > 1000  # a real network, not an empty one


STAGES = ["stage1", "stage2", "stage3", "embed", "fc"]


@pytest.mark.parametrize("build, widths, embed", [
    (models.cnn_teacher, (16, 32, 32), 256),
    (models.cnn_student, (8, 16, 16), 32),
])
def test_stage_shapes(build, widths, embed):
    model = build().eval()
    assert set(STAGES) <= set(features.module_names(model))
    with features.record(model, STAGES) as feats, torch.no_grad():
        logits = model(torch.randn(2, 1, 28, 28))
    assert feats["stage1"].shape == (2, widths[0], 14, 14)
    assert feats["stage2"].shape == (2, widths[1], 7, 7)
    assert feats["stage3"].shape == (2, widths[2], 7, 7)
    assert feats["embed"].shape == (2, embed)
    assert torch.equal(feats["fc"], logits)
    assert model.widths == widths and model.embed_dim == embed


def test_teacher_and_student_spatial_sizes_match_stage_by_stage():
    x = torch.randn(2, 1, 28, 28)
    sizes = []
    for model in (models.cnn_teacher().eval(), models.cnn_student().eval()):
        with features.record(model, STAGES[:3]) as feats, torch.no_grad():
            model(x)
        sizes.append([tuple(feats[s].shape[-2:]) for s in STAGES[:3]])
    assert sizes[0] == sizes[1] == [(14, 14), (7, 7), (7, 7)]


def test_convnet_other_widths_and_classes():
    model = models.ConvNet((2, 3, 4), embed_dim=5, num_classes=3, in_channels=3)
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 3)


@pytest.mark.parametrize("sizes", [(784,), (), (784, 0, 10), (784, -5, 10), (784, 10.0),
                                   (784, "10")])
def test_bad_sizes_raise(sizes):
    with pytest.raises(ValueError, match="sizes"):
        models.MLP(sizes)


@pytest.mark.parametrize("kwargs, name", [
    ({"dropout": 1.0}, "dropout"), ({"dropout": -0.1}, "dropout"),
    ({"input_dropout": 1.5}, "input_dropout"), ({"input_dropout": -1.0}, "input_dropout"),
])
def test_bad_dropout_raises(kwargs, name):
    with pytest.raises(ValueError, match=name):
        models.MLP((784, 10, 10), **kwargs)
    with pytest.raises(ValueError, match=name):
        models.hinton_teacher(**kwargs)


def test_zero_dropout_adds_no_dropout_layers():
    model = models.hinton_teacher(dropout=0.0, input_dropout=0.0)
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    assert metrics.parameters(model) == HINTON_TEACHER_PARAMS

"""kdteach.train: fit, distill, evaluate, predict and History, on tiny synthetic data."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdteach import config, models, train
from kdteach.data import DeviceLoader, Split
from kdteach.losses import hint_loss, kd_loss

CPU = torch.device("cpu")


def synthetic(n: int = 256, seed: int = 0) -> Split:
    """``n`` noisy 1x28x28 images whose label says where a bright 5x4 patch sits (10 places)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=gen)
    images = torch.randn(n, 1, 28, 28, generator=gen)
    for c in range(10):
        row, col = (c // 5) * 14 + 4, (c % 5) * 5 + 2
        images[labels == c, :, row:row + 5, col:col + 4] += 1.5
    return Split(images, labels)


@pytest.fixture(scope="module")
def train_set() -> Split:
    return synthetic(256, seed=0)


@pytest.fixture(scope="module")
def test_set() -> Split:
    return synthetic(256, seed=1)


@pytest.fixture(scope="module")
def teacher(train_set) -> models.MLP:
    """A small MLP trained on the rule: the teacher of the distillation tests."""
    config.seed_everything(0)
    model = models.MLP((784, 64, 10))
    train.fit(model, train_set, epochs=4, lr=1e-2, batch_size=32, device=CPU)
    return model.eval()


def small_cnn(widths=(4, 8, 8), embed_dim=16) -> models.ConvNet:
    return models.ConvNet(widths, embed_dim=embed_dim)


def agreement(a: nn.Module, b: nn.Module, data: Split) -> float:
    return float((train.predict(a, data).argmax(1) == train.predict(b, data).argmax(1)).float().mean())


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def numbers(history: train.History) -> list[dict]:
    """The History without its wall-clock times (the only field allowed to differ)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history.records]


class CountCalls:
    """A forward hook counting how often a module runs."""

    def __init__(self, module: nn.Module):
        self.calls = 0
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.calls += 1


# -- fit ------------------------------------------------------------------------------

def test_fit_improves_held_out_accuracy(train_set, test_set):
    config.seed_everything(0)
    model = models.MLP((784, 32, 10))
    before = train.evaluate(model, test_set)
    history = train.fit(model, train_set, epochs=3, lr=1e-2, batch_size=32, device=CPU)
    after = train.evaluate(model, test_set)
    assert before.accuracy < 0.3
    assert after.accuracy > 0.8 and after.accuracy > before.accuracy + 0.5
    assert after.loss < before.loss
    assert len(history) == 3 and history["epoch"] == [1, 2, 3]
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert all(0.0 <= a <= 1.0 for a in history["train_acc"])
    assert history["eval_acc"] == [None, None, None]  # no eval_data given
    assert history.last == history.records[-1]


def test_fit_accepts_a_pair_and_a_device_loader(train_set):
    config.seed_everything(0)
    a = models.MLP((784, 16, 10))
    b = models.MLP((784, 16, 10))
    b.load_state_dict(a.state_dict())
    h1 = train.fit(a, (train_set.images, train_set.labels), epochs=2, batch_size=64, device=CPU)
    h2 = train.fit(b, DeviceLoader(train_set, 64, seed=0), epochs=2, device=CPU)
    assert numbers(h1) == numbers(h2)
    assert same_weights(a.state_dict(), b.state_dict())


def test_fit_with_a_custom_loss_uses_it(train_set):
    seen = []

    def loss(logits, targets):
        seen.append((logits.shape, targets.shape))
        return F.cross_entropy(logits, targets)

    train.fit(models.MLP((784, 8, 10)), train_set, epochs=1, batch_size=100, loss=loss, device=CPU)
    assert [s[0] for s in seen] == [(100, 10), (100, 10), (56, 10)]
    assert [s[1] for s in seen] == [(100,), (100,), (56,)]


def test_eval_data_records_eval_acc_every_epoch(train_set, test_set):
    config.seed_everything(0)
    model = models.MLP((784, 16, 10))
    history = train.fit(model, train_set, epochs=3, lr=1e-2, batch_size=32, eval_data=test_set,
                        device=CPU)
    accs = history["eval_acc"]
    assert len(accs) == 3 and all(isinstance(a, float) and 0.0 <= a <= 1.0 for a in accs)
    assert accs[-1] == train.evaluate(model, test_set).accuracy
    assert accs[-1] > 0.5


# -- determinism ----------------------------------------------------------------------

def _fit_run(seed: int, train_set):
    config.seed_everything(seed)
    model = models.MLP((784, 32, 10), dropout=0.3)  # dropout: the run uses the RNG too
    history = train.fit(model, train_set, epochs=2, batch_size=32, jitter=1, seed=seed, device=CPU)
    return numbers(history), snapshot(model)


def test_fit_same_seed_same_numbers_and_weights(train_set):
    h1, w1 = _fit_run(3, train_set)
    h2, w2 = _fit_run(3, train_set)
    assert h1 == h2
    assert same_weights(w1, w2)


def test_fit_different_seed_differs(train_set):
    h1, w1 = _fit_run(3, train_set)
    h2, w2 = _fit_run(4, train_set)
    assert h1 != h2
    assert not same_weights(w1, w2)


def test_fit_seeds_its_own_randomness(train_set):
    """The seed argument fixes dropout masks and batches, whatever the global RNG state."""
    config.seed_everything(0)
    a = models.MLP((784, 32, 10), dropout=0.5)
    b = models.MLP((784, 32, 10), dropout=0.5)
    b.load_state_dict(a.state_dict())
    torch.manual_seed(111)
    h1 = train.fit(a, train_set, epochs=1, batch_size=64, seed=9, device=CPU)
    torch.manual_seed(222)
    h2 = train.fit(b, train_set, epochs=1, batch_size=64, seed=9, device=CPU)
    assert numbers(h1) == numbers(h2)
    assert same_weights(a.state_dict(), b.state_dict())


def _distill_run(seed: int, teacher, train_set):
    config.seed_everything(seed)
    student = models.MLP((784, 16, 10), dropout=0.2)
    history = train.distill(student, teacher, train_set, epochs=2, batch_size=64, jitter=1,
                            seed=seed, device=CPU)
    return numbers(history), snapshot(student)


def test_distill_same_seed_same_numbers_and_weights(teacher, train_set):
    h1, w1 = _distill_run(5, teacher, train_set)
    h2, w2 = _distill_run(5, teacher, train_set)
    h3, w3 = _distill_run(6, teacher, train_set)
    assert h1 == h2 and same_weights(w1, w2)
    assert h1 != h3 and not same_weights(w1, w3)


# -- distill --------------------------------------------------------------------------

def test_distill_with_default_kd_loss_improves_agreement(teacher, train_set, test_set):
    config.seed_everything(1)
    student = models.MLP((784, 16, 10))
    before = agreement(student, teacher, test_set)
    history = train.distill(student, teacher, train_set, epochs=4, lr=1e-2, batch_size=32,
                            device=CPU)
    after = agreement(student, teacher, test_set)
    assert before < 0.3
    assert after > 0.75 and after > before + 0.4
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_default_loss_is_hinton_kd_with_T_and_alpha(teacher, train_set):
    """The default loss equals kd_loss(T, alpha) on the same batch (one full batch, one step)."""
    torch.manual_seed(0)
    student = models.MLP((784, 8, 10))
    x, y = train_set.images[:64], train_set.labels[:64]
    with torch.no_grad():
        expected = float(kd_loss(student(x), teacher(x), y, T=2.0, alpha=0.3))
    history = train.distill(student, teacher, (x, y), T=2.0, alpha=0.3, epochs=1, batch_size=64,
                            device=CPU)
    assert history["train_loss"][0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("jitter", [0, 1])
def test_teacher_is_frozen_in_eval_mode(jitter, train_set):
    """A dropout teacher: its logits in the loss are its eval() logits, and it never changes."""
    torch.manual_seed(0)
    teacher = models.MLP((784, 32, 10), dropout=0.5, input_dropout=0.2)
    teacher.train()  # distill must switch it to eval() itself
    before = snapshot(teacher)
    seen = []

    def loss(o: train.Outputs):
        seen.append((o.inputs.detach().clone(), o.teacher_logits.detach().clone()))
        assert not o.teacher_logits.requires_grad
        return F.cross_entropy(o.student_logits, o.targets)

    student = models.MLP((784, 8, 10))
    train.distill(student, teacher, train_set, loss, epochs=2, batch_size=64, jitter=jitter,
                  device=CPU)
    assert teacher.training is False
    assert same_weights(before, teacher.state_dict())
    assert all(p.grad is None for p in teacher.parameters())
    assert len(seen) == 2 * 4
    with torch.no_grad():
        for x, t_logits in seen:
            assert torch.allclose(t_logits, teacher(x), atol=1e-5)


def test_teacher_outputs_computed_once_without_augmentation(train_set):
    data = synthetic(1200, seed=2)
    teacher = models.MLP((784, 8, 10))
    counter = CountCalls(teacher)
    train.distill(models.MLP((784, 8, 10)), teacher, data, epochs=3, batch_size=128, device=CPU)
    assert counter.calls == math.ceil(1200 / 1000)  # predict's batches of 1000, no more


def test_teacher_runs_every_step_with_jitter():
    data = synthetic(300, seed=2)
    teacher = models.MLP((784, 8, 10))
    counter = CountCalls(teacher)
    train.distill(models.MLP((784, 8, 10)), teacher, data, epochs=2, batch_size=128, jitter=1,
                  device=CPU)
    assert counter.calls == 2 * math.ceil(300 / 128)


@pytest.mark.parametrize("jitter", [0, 1])
def test_custom_loss_receives_requested_features(jitter, train_set):
    torch.manual_seed(0)
    student, teacher = small_cnn((4, 8, 8), 16), small_cnn((8, 16, 16), 32)
    names = ["stage1", "stage2", "stage3", "embed"]
    seen = []

    def loss(o: train.Outputs):
        seen.append(({k: v.shape for k, v in o.student_features.items()},
                     {k: v.shape for k, v in o.teacher_features.items()},
                     o.student_logits.shape, o.teacher_logits.shape, len(o.targets)))
        assert o.student_features["embed"].requires_grad  # the student's side is trainable
        assert not o.teacher_features["embed"].requires_grad
        return F.cross_entropy(o.student_logits, o.targets)

    data = Split(train_set.images[:96], train_set.labels[:96])
    train.distill(student, teacher, data, loss, student_features=names, teacher_features=names,
                  epochs=1, batch_size=64, jitter=jitter, device=CPU)
    assert len(seen) == 2
    for s_shapes, t_shapes, s_logits, t_logits, b in seen:
        assert s_shapes == {"stage1": (b, 4, 14, 14), "stage2": (b, 8, 7, 7),
                            "stage3": (b, 8, 7, 7), "embed": (b, 16)}
        assert t_shapes == {"stage1": (b, 8, 14, 14), "stage2": (b, 16, 7, 7),
                            "stage3": (b, 16, 7, 7), "embed": (b, 32)}
        assert s_logits == t_logits == (b, 10)
    assert [s[-1] for s in seen] == [64, 32]


def test_cached_teacher_features_match_the_teacher(train_set):
    """Without jitter the teacher's features are looked up by index: they must be this batch's."""
    torch.manual_seed(0)
    teacher = small_cnn((8, 16, 16), 32).eval()
    seen = []

    def loss(o: train.Outputs):
        seen.append((o.inputs.detach().clone(), o.teacher_features["stage2"].clone()))
        return F.cross_entropy(o.student_logits, o.targets)

    data = Split(train_set.images[:96], train_set.labels[:96])
    train.distill(small_cnn(), teacher, data, loss, teacher_features=["stage2"], epochs=1,
                  batch_size=32, device=CPU)
    with torch.no_grad():
        for x, feat in seen:
            assert torch.allclose(feat, teacher.stage2(teacher.stage1(x)), atol=1e-5)


def test_features_over_the_cache_budget_are_computed_per_batch(monkeypatch, train_set):
    """Sized before anything is stored: over budget, the teacher runs on every batch (and the
    full set is never pushed through it); within budget, once for the whole set."""
    data = Split(train_set.images[:96], train_set.labels[:96])
    per_example = 4 * (16 * 7 * 7)  # stage2 of the teacher below, float32

    def teacher_calls(budget):
        monkeypatch.setattr(train, "FEATURE_CACHE_BYTES", budget)
        torch.manual_seed(0)
        teacher = small_cnn((8, 16, 16), 32)
        counter = CountCalls(teacher)
        train.distill(small_cnn(), teacher, data, lambda o: F.cross_entropy(o.student_logits, o.targets),
                      teacher_features=["stage2"], epochs=2, batch_size=32, device=CPU)
        return counter.calls

    assert train.feature_cache_budget(CPU) == train.FEATURE_CACHE_BYTES
    assert teacher_calls(96 * per_example) == 1 + 1  # the sizing pass, then one predict batch
    assert teacher_calls(96 * per_example - 1) == 1 + 2 * 3  # the sizing pass, then every step


def test_extra_modules_are_trained(train_set):
    torch.manual_seed(0)
    student, teacher = small_cnn((4, 8, 8), 16), small_cnn((8, 16, 16), 32)

    def run(extra):
        connector = nn.Linear(16, 32).eval()  # distill puts it in train() mode
        start = snapshot(connector)

        def loss(o: train.Outputs):
            hint = hint_loss(connector(o.student_features["embed"]), o.teacher_features["embed"])
            return F.cross_entropy(o.student_logits, o.targets) + hint

        train.distill(student, teacher, Split(train_set.images[:64], train_set.labels[:64]), loss,
                      student_features=["embed"], teacher_features=["embed"],
                      extra_modules=[connector] if extra else (), epochs=2, batch_size=32,
                      device=CPU)
        return connector, start

    connector, start = run(extra=True)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in connector.parameters())
    assert not any(torch.equal(start[k], v) for k, v in connector.state_dict().items())
    assert connector.training
    # Left out of extra_modules, the connector gets gradients but no optimizer updates it.
    connector, start = run(extra=False)
    assert same_weights(start, connector.state_dict())


# -- History ----------------------------------------------------------------------------

def test_history_plot_returns_axes(train_set, test_set):
    import matplotlib.pyplot as plt

    history = train.fit(models.MLP((784, 8, 10)), train_set, epochs=2, batch_size=64,
                        eval_data=test_set, device=CPU)
    axes = history.plot(title="run")
    try:
        assert len(axes) == 2
        assert list(axes[0].lines[0].get_ydata()) == history["train_loss"]
        labels = [line.get_label() for line in axes[1].lines]
        assert labels == ["train acc", "eval acc"]
        assert list(axes[1].lines[1].get_ydata()) == history["eval_acc"]
        assert axes[0].figure._suptitle.get_text() == "run"
    finally:
        plt.close("all")


def test_history_indexing():
    h = train.History()
    assert len(h) == 0 and h.last == {}
    h.append(epoch=1, train_loss=2.0)
    h.append(epoch=2, train_loss=1.0, eval_acc=0.5)
    assert h["train_loss"] == [2.0, 1.0]
    assert h["eval_acc"] == [None, 0.5]
    assert h.last["epoch"] == 2


# -- evaluate and predict -------------------------------------------------------------

def _sign_model() -> nn.Module:
    """Class 0 when the first pixel is positive, else class 1 (logits x0 and -x0)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 2, bias=False))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[0, 0] = 1.0
        model[1].weight[1, 0] = -1.0
    return model


def test_evaluate_on_a_hand_made_model():
    firsts = torch.tensor([1.0, -1.0, 2.0, -3.0, 0.5])
    images = torch.zeros(5, 1, 28, 28)
    images[:, 0, 0, 0] = firsts
    labels = torch.tensor([0, 0, 0, 1, 1])  # predictions: 0, 1, 0, 1, 0 -> 3 correct
    result = train.evaluate(_sign_model(), Split(images, labels), batch_size=2)
    assert result.n == 5
    assert result.errors == 2 == result.n - 3
    assert result.accuracy == pytest.approx(0.6)
    logits = torch.stack([firsts, -firsts], 1)
    assert result.loss == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-6)


def test_evaluate_rejects_bare_images():
    with pytest.raises(TypeError):
        train.evaluate(_sign_model(), torch.zeros(3, 1, 28, 28))


def test_predict_returns_logits_in_order_and_restores_mode():
    images = torch.zeros(20, 1, 28, 28)
    images[:, 0, 0, 0] = torch.arange(20.0)
    model = nn.Sequential(_sign_model(), nn.Dropout(0.5)).train()
    logits = train.predict(model, images, batch_size=7)
    assert logits.shape == (20, 2)
    assert torch.equal(logits[:, 0], torch.arange(20.0))  # in order, and no dropout (eval)
    assert model.training
    logits2, feats = train.predict(model, (images, torch.zeros(20)), batch_size=6,
                                   features=["0.0"])
    assert torch.equal(logits2, logits)
    assert torch.equal(feats["0.0"], images.flatten(1))


# -- bad inputs -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": 1.5}, "epochs"),
    ({"lr": 0}, "lr"),
    ({"lr": -1e-3}, "lr"),
    ({"batch_size": 0}, "batch_size"),
    ({"optimizer": "adagrad"}, "adagrad"),
    ({"schedule": "step"}, "step"),
])
def test_fit_bad_arguments_raise(kwargs, match, train_set):
    with pytest.raises(ValueError, match=match):
        train.fit(models.MLP((784, 4, 10)), train_set, device=CPU, **{"epochs": 1, **kwargs})


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs"),
    ({"lr": 0.0}, "lr"),
    ({"optimizer": "rmsprop"}, "rmsprop"),
])
def test_distill_bad_arguments_raise(kwargs, match, teacher, train_set):
    with pytest.raises(ValueError, match=match):
        train.distill(models.MLP((784, 4, 10)), teacher, train_set, device=CPU,
                      **{"epochs": 1, **kwargs})


@pytest.mark.parametrize("data", ["images", torch.zeros(8, 1, 28, 28), (torch.zeros(2),) * 3, 42])
def test_wrong_data_type_raises(data):
    with pytest.raises(TypeError, match="data must be"):
        train.fit(models.MLP((784, 4, 10)), data, epochs=1, device=CPU)


def test_not_a_model_raises(train_set, teacher):
    with pytest.raises(TypeError, match="model"):
        train.fit(lambda x: x, train_set, epochs=1, device=CPU)
    with pytest.raises(TypeError, match="teacher"):
        train.distill(models.MLP((784, 4, 10)), "teacher", train_set, epochs=1, device=CPU)


def test_teacher_is_student_raises(train_set):
    model = models.MLP((784, 4, 10))
    with pytest.raises(ValueError, match="same object"):
        train.distill(model, model, train_set, epochs=1, device=CPU)


def test_unknown_feature_name_lists_near_names(train_set):
    student, teacher = small_cnn(), small_cnn((8, 16, 16), 32)
    with pytest.raises(ValueError, match="stage2") as info:
        train.distill(student, teacher, train_set, student_features=["stage_2"], epochs=1,
                      device=CPU)
    assert "'stage_2'" in str(info.value)
    with pytest.raises(ValueError, match="embed"):
        train.distill(student, teacher, train_set, teacher_features=["embd"], epochs=1,
                      device=CPU)


# -- run_epochs: the public loop every method drives ----------------------------------

class ListLoader:
    """A batch source that is not a DeviceLoader: fixed batches, as a token-window or
    sharded loader would provide them."""

    def __init__(self, batches):
        self.fixed = batches
        self.calls = 0

    def batches(self):
        self.calls += 1
        return iter(self.fixed)


def test_run_epochs_averages_the_steps_sums_over_the_examples_seen():
    x = torch.zeros(5, 1)
    loader = ListLoader([(x[:3], torch.tensor([0, 1, 2]), torch.arange(3)),
                         (x[3:], torch.tensor([3, 4]), torch.arange(3, 5))])
    # loss sums 6 then 4 over 5 examples -> 2.0; per-peer vectors average per entry
    sums = iter([{"loss": torch.tensor(6.0), "peer": torch.tensor([3.0, 0.0])},
                 {"loss": torch.tensor(4.0), "peer": torch.tensor([2.0, 5.0])}] * 2)
    history = train.run_epochs(lambda x, y, idx: next(sums), loader, epochs=2,
                               evaluate=lambda: {"eval_acc": 0.5}, progress=False)
    assert loader.calls == 2
    assert history["epoch"] == [1, 2]
    assert history["train_loss"] == [2.0, 2.0]
    assert history["train_peer"] == [[1.0, 1.0], [1.0, 1.0]]
    assert history["eval_acc"] == [0.5, 0.5]
    assert all(s >= 0 for s in history["seconds"])


def test_run_epochs_puts_modules_in_train_mode_and_steps_schedulers(train_set):
    model = models.MLP((784, 4, 10)).eval()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    modes = []

    def step(x, y, idx):
        modes.append(model.training)
        opt.step()  # no gradients: changes nothing, but the scheduler expects a step first
        return {}

    loader = DeviceLoader(train_set, 128, device=CPU)
    train.run_epochs(step, loader, epochs=3, modules=[model], schedulers=[sched, None],
                     evaluate=lambda: model.eval() and {}, progress=False)
    assert all(modes) and len(modes) == 3 * 2
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0 / 8)


def test_run_epochs_rejects_bad_epochs():
    with pytest.raises(ValueError, match="epochs"):
        train.run_epochs(lambda *a: {}, ListLoader([]), epochs=0, progress=False)


def test_a_step_written_by_hand_reproduces_fit(train_set):
    """fit is run_epochs + a step: the building blocks give the same numbers and weights."""
    config.seed_everything(3)
    a = models.MLP((784, 16, 10))
    b = models.MLP((784, 16, 10))
    b.load_state_dict(a.state_dict())
    history_fit = train.fit(a, train_set, epochs=2, batch_size=64, device=CPU, seed=5,
                            progress=False)

    torch.manual_seed(5)
    loader = train.loader_for(train_set, batch_size=64, seed=5, device=CPU)
    opt = train.make_optimizer(b.parameters(), "adam", 1e-3, 0.0, CPU)

    def step(x, y, idx):
        logits = b(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.detach() * len(y), "acc": (logits.argmax(1) == y).sum()}

    history_loop = train.run_epochs(step, loader, epochs=2, modules=[b],
                                    schedulers=[train.make_scheduler(opt, "cosine", 2)],
                                    progress=False)
    assert history_loop["train_loss"] == history_fit["train_loss"]
    assert history_loop["train_acc"] == history_fit["train_acc"]
    assert same_weights(snapshot(a), snapshot(b))


# -- value checks: per call, never a learner's loss silently -----------------------------

def test_own_loss_stays_checked_and_check_values_false_is_explicit(teacher, train_set):
    seen = []

    def my_loss(o: train.Outputs) -> torch.Tensor:
        from kdteach import losses
        seen.append(losses.value_checks_enabled())
        return kd_loss(o.student_logits, o.teacher_logits, o.targets)

    train.distill(models.MLP((784, 4, 10)), teacher, train_set, my_loss, epochs=1,
                  device=CPU, progress=False)
    assert seen and all(seen)
    seen.clear()
    train.distill(models.MLP((784, 4, 10)), teacher, train_set, my_loss, epochs=1,
                  device=CPU, check_values=False, progress=False)
    assert seen and not any(seen)
    from kdteach import losses
    assert losses.value_checks_enabled()  # nothing leaks out of the run
    with pytest.raises(TypeError, match="check_values"):
        train.fit(models.MLP((784, 4, 10)), train_set, epochs=1, device=CPU, check_values="no")


def test_value_checks_default_is_off_on_cuda_only_for_the_courses_own_losses():
    cuda, cpu = torch.device("cuda"), CPU
    assert train._value_checks(None, cpu, own_loss=True) is True
    assert train._value_checks(None, cuda, own_loss=True) is False
    assert train._value_checks(None, cuda, own_loss=False) is True
    assert train._value_checks(False, cpu, own_loss=False) is False
    from kdteach import losses
    with losses.value_checks(False):  # None follows an enclosing setting
        assert train._value_checks(None, cpu, own_loss=False) is False
        assert train._value_checks(True, cpu, own_loss=False) is True


# -- language models: token windows through the same fit / distill ---------------------

@pytest.fixture(scope="module")
def windows():
    from kdteach import text
    # A cycle through 12 tokens with one in ten replaced at random: learnable, not trivial.
    gen = torch.Generator().manual_seed(0)
    ids = torch.arange(3000) % 12
    noisy = torch.rand(3000, generator=gen) < 0.1
    ids[noisy] = torch.randint(0, 12, (int(noisy.sum()),), generator=gen)
    return text.WindowLoader(ids, 16, 8, seed=0, device=CPU, windows_per_epoch=64)


def tiny_gpt(width=16, seed=0):
    from kdteach import gpt
    torch.manual_seed(seed)
    return gpt.GPT(gpt.GPTConfig(vocab_size=12, block_size=16, n_layer=1, n_head=2, n_embd=width))


def test_per_position_flattens_windows_and_leaves_images_alone():
    logits, y = torch.randn(4, 7, 12), torch.randint(0, 12, (4, 7))
    flat_logits, flat_y = train.per_position(logits, y)
    assert flat_logits.shape == (28, 12) and flat_y.shape == (28,)
    assert torch.equal(flat_logits[7 + 3], logits[1, 3]) and flat_y[7 + 3] == y[1, 3]
    images = torch.randn(4, 10), torch.arange(4)
    assert all(a is b for a, b in zip(train.per_position(*images), images))


def test_fit_trains_a_language_model_on_token_windows(windows):
    model = tiny_gpt()
    x, y = windows.windows(torch.arange(8) * 100)

    @torch.no_grad()
    def held_out():
        return {"loss_now": float(F.cross_entropy(*train.per_position(model(x), y)))}

    h = train.fit(model, windows, epochs=3, lr=1e-2, progress=False, eval_data=held_out)
    assert h["train_loss"][-1] < h["train_loss"][0] - 0.1  # per-token cross-entropy falls
    assert all(0 <= a <= 1 for a in h["train_acc"])  # per-token accuracy, not per window × L
    assert "loss_now" in h.records[0] and "eval_acc" not in h.records[0]


def test_lm_record_is_the_per_token_mean(windows):
    # One step by hand: the record's loss is the mean over all B·L positions, its accuracy
    # the share of positions predicted right.
    model = tiny_gpt()
    x, y, _ = next(iter(windows.batches()))
    logits = model(x)
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    record = train._loss_and_accuracy(loss, logits, y)
    assert float(record["loss"]) / len(y) == pytest.approx(float(loss))
    share = float((logits.argmax(-1) == y).float().mean())
    assert float(record["acc"]) / len(y) == pytest.approx(share)


def test_distill_a_language_model_runs_the_teacher_per_batch_and_never_trains_it(windows):
    teacher, student = tiny_gpt(32, seed=1), tiny_gpt(16, seed=2)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    calls = []
    teacher.register_forward_hook(lambda m, i, o: calls.append(m.training))
    h = train.distill(student, teacher, windows, epochs=1, T=2.0, progress=False)
    assert len(calls) == len(windows) and not any(calls)  # once per batch, in eval()
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert math.isfinite(h["train_loss"][0]) and 0 <= h["train_acc"][0] <= 1


def test_a_batch_source_refuses_jitter_and_another_device(windows):
    with pytest.raises(ValueError, match="jitter"):
        train.fit(tiny_gpt(), windows, epochs=1, jitter=2, progress=False)
    with pytest.raises(ValueError, match="device"):
        train.loader_for(windows, device="meta")
    with pytest.raises(TypeError, match="batch source"):
        train.fit(tiny_gpt(), [1, 2, 3], epochs=1, progress=False)


# -- the same loop in a distributed job (a one-process gloo group here; real jobs with
#    several ranks are in tests/distributed) ------------------------------------------

@pytest.fixture
def one_process_group(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_distill_trains_a_ddp_student_through_the_one_loop(one_process_group, train_set, teacher):
    """A DistributedDataParallel student goes through train.distill unchanged; with one rank
    the averaged gradient is the gradient, so the weights are the plain student's exactly."""
    from torch.nn.parallel import DistributedDataParallel

    def student():
        config.seed_everything(3)
        return models.MLP((784, 32, 10))

    plain, wrapped = student(), DistributedDataParallel(student())
    kw = dict(T=4.0, alpha=0.5, epochs=2, batch_size=64, seed=1, device=CPU, progress=False)
    h_plain = train.distill(plain, teacher, train_set, **kw)
    h_ddp = train.distill(wrapped, teacher, train_set, **kw)
    for k, v in plain.state_dict().items():
        assert torch.equal(v, wrapped.module.state_dict()[k]), k
    assert h_plain["train_loss"] == h_ddp["train_loss"]


def test_run_epochs_sums_a_sharded_loaders_records_over_the_ranks(one_process_group):
    """With a loader that says it is one rank's share (world_size > 1), run_epochs adds up
    what every rank recorded (one all-reduce per quantity per epoch); one rank here, so the
    sums are its own, and the division is by the examples all ranks saw."""
    data = Split(torch.zeros(8, 1, 2, 2), torch.arange(8) % 2)
    loader = DeviceLoader(data, 2, seed=0, rank=0, world_size=2)
    history = train.run_epochs(lambda x, y, idx: {"n": torch.tensor(float(len(y)))}, loader,
                               epochs=1, progress=False)
    assert history["train_n"] == [1.0]


def test_ddp_refuses_a_frozen_teacher_which_is_why_it_is_not_wrapped(one_process_group, teacher):
    from torch.nn.parallel import DistributedDataParallel

    frozen = models.MLP((784, 8, 10)).requires_grad_(False)
    with pytest.raises(RuntimeError, match="doesn't have any parameter that requires a gradient"):
        DistributedDataParallel(frozen)


def test_a_distillation_loss_sees_the_batch_example_indices(teacher, train_set):
    # What a loss that looks teacher outputs up by example (a cache on disk) relies on: the
    # indices it receives name the examples of the batch, in the batch's shuffled order.
    seen_ok = []

    def loss(o: train.Outputs) -> torch.Tensor:
        seen_ok.append(torch.equal(train_set.labels.to(o.targets.device)[o.indices], o.targets))
        return kd_loss(o.student_logits, o.teacher_logits, o.targets)

    train.distill(models.MLP((784, 4, 10)), teacher, train_set, loss, epochs=1, device=CPU,
                  progress=False)
    assert seen_ok and all(seen_ok)

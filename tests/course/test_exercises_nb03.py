"""Self-checks of notebook 03 (Hinton's knowledge distillation): a right answer passes, each
known mistake gets its own hint — the soft gradient (3.1), the KD loss (3.2) and one
distillation step (3.3)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdteach import losses
from kdteach.exercises import nb03 as exercises


# --- 03: the KD loss -------------------------------------------------------------------------

def kd(s, t, y, T, alpha, *, reduction="batchmean", t2=True, probs=False, swap=False,
       reverse=False, student_T=True, teacher_T=True, twice=False, cross_entropy=False,
       hard=True, detach=True, with_soft=True, hard_at_T=False, sign=1):
    """A KD loss with switchable mistakes."""
    t = t.detach() if detach else t
    log_qs = F.log_softmax(s / T if student_T else s, -1)
    qt = torch.softmax((torch.softmax(t, -1) if twice else t) / (T if teacher_T else 1), -1)
    if reverse:
        soft = F.kl_div(F.log_softmax(t / T, -1), log_qs.exp(), reduction=reduction)
    else:
        soft = F.kl_div(log_qs.exp() if probs else log_qs, qt, reduction=reduction)
    if cross_entropy:
        soft = -(qt * log_qs).sum(-1).mean()
    soft = soft * (T**2 if t2 else 1)
    ce = F.cross_entropy(s / T if hard_at_T else s, y)
    if not with_soft:
        return sign * ce
    if not hard:
        return sign * soft
    return sign * ((1 - alpha) * ce + alpha * soft if swap else alpha * ce + (1 - alpha) * soft)


def test_kd_loss_right(verdict):
    verdict(True, "Right", exercises.check_kd_loss(kd))
    verdict(True, "Right", exercises.check_kd_loss(
        lambda s, t, y, T, alpha: losses.kd_loss(s, t, y, T=T, alpha=alpha)))


@pytest.mark.parametrize("mistake, fragment", [
    ({"reduction": "mean"}, "batchmean"),
    ({"t2": False}, "T²"),
    ({"t2": False, "reduction": "mean"}, "Two mistakes"),
    ({"swap": True}, "swapped"),
    ({"reverse": True}, "reversed"),
    ({"probs": True}, "*log*-probabilities"),
    ({"student_T": False}, "divided by T too"),
    ({"twice": True}, "Softmax applied twice"),
    ({"cross_entropy": True}, "teacher's entropy"),
    ({"hard": False}, "hard-label term"),
    ({"detach": False}, "Detach them"),
])
@pytest.mark.filterwarnings("ignore:reduction. .mean. divides:UserWarning")
def test_kd_loss_mistakes(verdict, mistake, fragment):
    def fn(s, t, y, T, alpha):
        return kd(s, t, y, T, alpha, **mistake)
    verdict(False, fragment, exercises.check_kd_loss(fn))


@pytest.mark.parametrize("fn, fragment", [
    (None, "Not answered"),
    (kd(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 2.0, 0.5), "function itself"),
    (lambda s, t, y, T, alpha: float(kd(s, t, y, T, alpha).detach()), "0-d torch tensor"),
    (lambda s, t, y, T, alpha: kd(s, t, y, T, alpha).detach(), "backward() failed"),
    (lambda s, t, y, T, alpha: s.sum() * 0 + 1.0, "expected"),
    (lambda s, t, y: 0, "TypeError"),
])
def test_kd_loss_other_answers(verdict, fn, fragment):
    verdict(False, fragment, exercises.check_kd_loss(fn))


# --- 03: the soft gradient by hand -----------------------------------------------------------

@pytest.fixture
def logits():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(6, 10, generator=gen) * 3, torch.randn(6, 10, generator=gen) * 5


def test_soft_gradient_right_and_matches_autograd(verdict, logits):
    s, t = logits
    T, B = 4.0, len(s)
    grad = T * (torch.softmax(s / T, -1) - torch.softmax(t / T, -1)) / B
    verdict(True, "Right", exercises.check_soft_gradient(grad, s, t, T))
    z = s.clone().requires_grad_(True)
    losses.kd_loss(z, t, T=T).backward()
    torch.testing.assert_close(z.grad, grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("transform, fragment", [
    (lambda g, d, T, B, s, t: -g, "Wrong sign"),
    (lambda g, d, T, B, s, t: g * B, "divide by B"),
    (lambda g, d, T, B, s, t: d / (T * B), "multiply by T²"),
    (lambda g, d, T, B, s, t: T**2 * d / B, "chain rule"),
    (lambda g, d, T, B, s, t: T * (torch.softmax(s, -1) - torch.softmax(t, -1)) / B, "not at T = 1"),
    (lambda g, d, T, B, s, t: d / B, "Missing the factor T"),
    (lambda g, d, T, B, s, t: g[:3], "one entry per student"),
    (lambda g, d, T, B, s, t: g + 1, "Not the gradient"),
    (lambda g, d, T, B, s, t: None, "Not answered"),
])
def test_soft_gradient_mistakes(verdict, logits, transform, fragment):
    s, t = logits
    T, B = 4.0, len(s)
    d = torch.softmax(s / T, -1) - torch.softmax(t / T, -1)
    answer = transform(T * d / B, d, T, B, s, t)
    verdict(False, fragment, exercises.check_soft_gradient(answer, s, t, T))


# --- 03: one distillation step ----------------------------------------------------------------

def make_step(*, eval_teacher=True, no_grad=True, zero_grad="before", step=True,
              student_no_grad=False, run_teacher=True, returns="loss", **loss_mistakes):
    """A learner's distillation step, written out, with switchable mistakes; the loss is
    ``kd`` above with ``loss_mistakes``."""
    def distill_step(student, teacher, optimizer, images, labels, T, alpha):
        if eval_teacher:
            teacher.eval()
        if run_teacher:
            if no_grad:
                with torch.no_grad():
                    teacher_logits = teacher(images)
            else:
                teacher_logits = teacher(images)
        if student_no_grad:
            with torch.no_grad():
                student_logits = student(images)
        else:
            student_logits = student(images)
        if run_teacher:
            loss = kd(student_logits, teacher_logits, labels, T, alpha, **loss_mistakes)
        else:
            loss = F.cross_entropy(student_logits, labels)
        if zero_grad == "before":
            optimizer.zero_grad()
        loss.backward()
        if zero_grad == "between":
            optimizer.zero_grad()
        if step:
            optimizer.step()
        if returns == "loss":
            return loss.item()
        if returns == "tensor":
            return loss.detach()
        return None if returns is None else returns
    return distill_step


def test_distill_step_right(verdict):
    verdict(True, "Right", exercises.check_distill_step(make_step()))
    verdict(True, "Right", exercises.check_distill_step(make_step(returns="tensor")))
    verdict(True, "Right", exercises.check_distill_step(exercises.reference_distill_step))
    verdict(True, "Right", exercises.check_distill_step(make_step(detach=False)))  # no_grad already


@pytest.mark.parametrize("options, fragment", [
    ({"eval_teacher": False}, "teacher ran in train mode"),
    ({"no_grad": False, "detach": False}, "Gradient reached the teacher"),
    ({"no_grad": False}, "autograd recording"),  # detached afterwards: no .grad, a wasted graph
    ({"zero_grad": "none"}, "Call optimizer.zero_grad() in every step"),
    ({"zero_grad": "between"}, "did not change"),
    ({"step": False}, "did not change"),
    ({"student_no_grad": True}, "no graph"),
    ({"run_teacher": False}, "teacher never ran"),
    ({"reverse": True}, "wrong way round"),
    ({"t2": False}, "lacks its factor T²"),
    ({"reduction": "mean"}, 'reduction="mean" averages'),
    ({"t2": False, "reduction": "mean"}, "Two mistakes"),
    ({"student_T": False}, "student's logits must be divided by T"),
    ({"teacher_T": False}, "teacher's logits must be divided by T"),
    ({"student_T": False, "teacher_T": False}, "Neither network's logits"),
    ({"twice": True}, "Softmax applied twice"),
    ({"probs": True}, "*log*-probabilities"),
    ({"swap": True}, "swapped"),
    ({"hard": False}, "hard-label term"),
    ({"with_soft": False}, "soft term is missing"),
    ({"hard_at_T": True}, "cross-entropy at T = 1"),
    ({"sign": -1}, "wrong sign"),
    ({"cross_entropy": True}, "cross-entropy with soft targets"),
    ({"returns": None}, "return loss.detach()"),
    ({"returns": 0.5}, "its loss (before the update)"),
])
@pytest.mark.filterwarnings("ignore:reduction. .mean. divides:UserWarning")
def test_distill_step_mistakes(verdict, options, fragment):
    verdict(False, fragment, exercises.check_distill_step(make_step(**options)))


def log_target_step(student, teacher, optimizer, images, labels, T, alpha):
    teacher.eval()
    with torch.no_grad():
        log_qt = F.log_softmax(teacher(images) / T, 1)
    student_logits = student(images)
    soft = F.kl_div(F.log_softmax(student_logits / T, 1), log_qt, reduction="batchmean")  # log target
    loss = alpha * F.cross_entropy(student_logits, labels) + (1 - alpha) * T**2 * soft
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def nan_step(student, teacher, optimizer, images, labels, T, alpha):
    """A step whose loss is not finite: the naive log of a softmax that underflows to 0."""
    teacher.eval()
    with torch.no_grad():
        q_t = torch.softmax(teacher(images) / T, 1)
    student_logits = student(images)
    q_s = torch.exp(1e4 * student_logits) / torch.exp(1e4 * student_logits).sum(1, keepdim=True)
    loss = T**2 * (q_t * (torch.log(q_t) - torch.log(q_s))).sum(1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def raising_step(student, teacher, optimizer, images, labels, T, alpha):
    raise ValueError("not written yet")


@pytest.mark.parametrize("fn, fragment", [
    (None, "Not answered"),
    (..., "Not answered"),
    (3.0, "function itself"),
    (lambda student, teacher, optimizer, images, labels: 0.0, "in that order"),
    (raising_step, "raised ValueError: not written yet"),
    (log_target_step, "log_target=True"),
    (nan_step, "NaN or infinite"),
])
def test_distill_step_other_answers(verdict, fn, fragment):
    verdict(False, fragment, exercises.check_distill_step(fn))


def test_step_for_the_loop_is_the_learners_once_it_passes(capsys):
    mine = make_step()
    exercises.check_distill_step(mine)
    assert exercises.step_for_the_loop() is mine
    assert "uses your distillation step" in capsys.readouterr().out
    exercises.check_distill_step(make_step(eval_teacher=False))  # a later wrong answer
    assert exercises.step_for_the_loop() is exercises.reference_distill_step
    assert "reference step" in capsys.readouterr().out
    exercises.check_distill_step(None)
    assert exercises.step_for_the_loop() is exercises.reference_distill_step


def test_distill_step_check_leaves_the_callers_random_state_alone():
    state = torch.get_rng_state()
    exercises.check_distill_step(make_step(eval_teacher=False))  # dropout draws inside
    exercises.check_distill_step(make_step())
    assert torch.equal(state, torch.get_rng_state())


def test_reference_step_trains_a_real_student_like_kd_loss_by_hand():
    """The reference step moves the student downhill on Hinton's loss and leaves the teacher
    (left in train mode on purpose) untouched and in eval mode."""
    gen = torch.Generator().manual_seed(1)
    student = torch.nn.Linear(6, 4)
    teacher = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 4))
    teacher.train()
    before = [p.detach().clone() for p in teacher.parameters()]
    x, y = torch.randn(32, 6, generator=gen), torch.randint(0, 4, (32,), generator=gen)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    first = float(exercises.reference_distill_step(student, teacher, optimizer, x, y, 4.0, 0.5))
    for _ in range(20):
        last = float(exercises.reference_distill_step(student, teacher, optimizer, x, y, 4.0, 0.5))
    assert last < first
    assert not teacher.training
    assert all(torch.equal(a, p) and p.grad is None for a, p in zip(before, teacher.parameters()))


def test_reference_step_in_a_loop_trains_the_student_train_distill_trains():
    """Notebook 03's side-by-side run in miniature: the same start, the batches in train.distill's
    order, the same optimiser -> the same student after one epoch, up to rounding."""
    import copy

    from kdteach import data, train

    gen = torch.Generator().manual_seed(0)
    images, labels = torch.randn(96, 20, generator=gen), torch.randint(0, 5, (96,), generator=gen)
    torch.manual_seed(1)
    teacher = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                  torch.nn.Linear(32, 5))
    by_hand = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5))
    library = copy.deepcopy(by_hand)
    order = next(data.DeviceLoader((images, labels), len(labels), seed=3).batches())[2]
    optimizer = torch.optim.Adam(by_hand.parameters(), lr=1e-3)
    for start in range(0, len(labels), 32):
        idx = order[start:start + 32]
        exercises.reference_distill_step(by_hand, teacher, optimizer, images[idx], labels[idx], 4.0, 0.5)
    train.distill(library, teacher, (images, labels), T=4.0, alpha=0.5, epochs=1, batch_size=32, seed=3,
                  device="cpu", progress=False)
    for a, b in zip(by_hand.parameters(), library.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)

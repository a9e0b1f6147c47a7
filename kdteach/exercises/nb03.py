"""Self-checks for notebook 03, Hinton's knowledge distillation: the gradient of the soft term
(exercise 3.1), the KD loss (3.2) and one distillation training step (3.3).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import kd_loss
from .feedback import (as_float64, close, feedback, gradient_problem, is_unanswered, known_mistake,
                       not_attempted)


def _kd_cases():
    """Fixed logits for checking a KD loss: (student, teacher, targets)."""
    gen = torch.Generator().manual_seed(3)
    s = torch.randn(8, 10, generator=gen, dtype=torch.float64) * 3
    t = torch.randn(8, 10, generator=gen, dtype=torch.float64) * 5
    y = torch.randint(0, 10, (8,), generator=gen)
    return s, t, y


def check_kd_loss(fn) -> bool:
    """Exercise 3.2: ``fn(student_logits, teacher_logits, targets, T, alpha)`` is Hinton's
    ``alpha · CE + (1 − alpha) · T² · KL`` with a batchmean KL (the value of
    :func:`kdteach.losses.kd_loss`), and no gradient reaches the teacher."""
    if is_unanswered(fn):
        return not_attempted("define `my_kd_loss(student_logits, teacher_logits, targets, T, alpha)` "
                             "and set `answer = my_kd_loss`.")
    if not callable(fn):
        return feedback(False, "Pass the function itself (`answer = my_kd_loss`), not its value.")
    s, t, y = _kd_cases()
    T, alpha = 4.0, 0.3
    s_req, t_req = s.clone().requires_grad_(True), t.clone().requires_grad_(True)
    try:
        value = fn(s_req, t_req, y, T, alpha)
    except Exception as err:  # the learner's code: report, never raise
        return feedback(False, f"my_kd_loss raised {type(err).__name__}: {err}")
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        return feedback(False, "my_kd_loss must return a single-number tensor (a 0-d torch tensor), "
                        "so that .backward() works; do not call .item().")
    expected = float(kd_loss(s, t, y, T=T, alpha=alpha))
    if not close(float(value.detach()), expected, rtol=1e-4):
        log_qs, log_qt = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
        qs, qt = log_qs.exp(), log_qt.exp()
        ce = float(F.cross_entropy(s, y))
        kl = float((qt * (log_qt - log_qs)).sum(-1).mean())
        kl_reverse = float((qs * (log_qs - log_qt)).sum(-1).mean())
        kl_no_t_student = float(F.kl_div(F.log_softmax(s, -1), qt, reduction="batchmean"))
        kl_probs = float(F.kl_div(qs, qt, reduction="batchmean"))
        qt_twice = torch.softmax(torch.softmax(t, -1) / T, -1)
        kl_twice = float(F.kl_div(log_qs, qt_twice, reduction="batchmean"))
        entropy = float(-(qt * log_qt).sum(-1).mean())
        K = s.shape[1]
        mix = lambda hard, soft: alpha * hard + (1 - alpha) * soft  # noqa: E731
        wrong = [
            (mix(ce, T**2 * kl / K), 'The KL term is K times too small: reduction="mean" divides by '
             'batch × classes. Use reduction="batchmean" (sum over classes, mean over the batch).'),
            (mix(ce, kl), "The soft term lacks the factor T²: its gradients shrink like 1/T² and "
             "alpha would mean something different at every temperature."),
            (mix(ce, kl / K), 'Two mistakes: no T², and reduction="mean" (use "batchmean").'),
            ((1 - alpha) * ce + alpha * T**2 * kl, "alpha and 1 − alpha are swapped: in kd_loss alpha "
             "weights the hard (label) cross-entropy."),
            (mix(ce, T**2 * kl_reverse), "The KL is reversed: it should be KL(teacher ‖ student), the "
             "teacher's probabilities weighting the log-ratio (F.kl_div(student_log_probs, "
             "teacher_probs))."),
            (mix(ce, T**2 * kl_probs), "F.kl_div's first argument must be the student's "
             "*log*-probabilities (log_softmax), not probabilities."),
            (mix(ce, T**2 * kl_no_t_student), "The student's logits must be divided by T too: "
             "log_softmax(student_logits / T)."),
            (mix(ce, T**2 * kl_twice), "Softmax applied twice: the teacher's targets are "
             "softmax(teacher_logits / T), from logits, not from probabilities."),
            (mix(ce, T**2 * (kl + entropy)), "That is the cross-entropy with soft targets: same "
             "gradient, but its value exceeds the KL by the teacher's entropy. Use the KL (0 when "
             "the student matches the teacher)."),
            (T**2 * kl, "The hard-label term alpha · CE(student_logits, targets) is missing, and "
             "the soft term needs the weight 1 − alpha."),
        ]
        hint = known_mistake(float(value.detach()), wrong, rtol=1e-4)
        if hint:
            return feedback(False, hint)
        return feedback(False, f"Value {float(value.detach()):.5f}, expected {expected:.5f}. "
                        "Check each "
                        "piece: alpha · cross_entropy(s, y) + (1 − alpha) · T² · "
                        "kl_div(log_softmax(s / T), softmax(t / T), reduction='batchmean').")
    problem = gradient_problem(value, s_req, t_req)
    if problem:
        return feedback(False, problem)
    return feedback(True, "Right: same value as kdteach.losses.kd_loss, and the teacher gets no "
                    "gradient.")


def check_soft_gradient(answer, student_logits, teacher_logits, T) -> bool:
    """Exercise 3.1: the gradient of the batch-mean soft term ``T² · KL`` with respect to
    the student's logits, by hand: ``T · (softmax(s / T) − softmax(t / T)) / B``."""
    if is_unanswered(answer):
        return not_attempted("set `grad` to a (B, K) tensor computed without autograd.")
    try:
        g = as_float64(answer)
    except (TypeError, ValueError, RuntimeError):
        return feedback(False, "grad must be a tensor (or array) of shape (B, K).")
    s, t = as_float64(student_logits), as_float64(teacher_logits)
    if g.shape != s.shape:
        return feedback(False, f"grad has shape {tuple(g.shape)}; it needs one entry per student "
                        f"logit, {tuple(s.shape)}.")
    B = s.shape[0]
    diff = torch.softmax(s / T, -1) - torch.softmax(t / T, -1)
    expected = T * diff / B
    if close(g, expected, rtol=1e-3, atol=1e-7):
        return feedback(True, "Right: T · (q_s − q_t) / B — the paper's (q_i − p_i) / T per "
                        "example, times T², averaged over the batch.")
    wrong = [
        (-expected, "Wrong sign: the gradient of KL(q_t ‖ q_s) is q_s − q_t (student minus teacher); "
         "descending it moves q_s towards q_t."),
        (T * diff, "Per example that is right, but the loss averages over the batch: divide by B."),
        (diff / (T * B), "This is the gradient of KL alone, (q_s − q_t) / T; the soft term is "
         "T² · KL, so multiply by T²."),
        (T**2 * diff / B, "The chain rule through z / T contributes 1 / T: T² · (1/T) = T, not T²."),
        (T * (torch.softmax(s, -1) - torch.softmax(t, -1)) / B, "Use the probabilities at "
         "temperature T, softmax(z / T), not at T = 1."),
        (diff / B, "Missing the factor T: T² from the loss times 1/T from the chain rule."),
    ]
    hint = known_mistake(g, wrong, rtol=1e-3, atol=1e-7)
    if hint:
        return feedback(False, hint)
    return feedback(False, "Not the gradient. Differentiate T² · mean_b KL(q_t ‖ softmax(z_b / T)) "
                    "with respect to z: each row gives (q_s − q_t) / T, times T², divided by B.")


# --- Exercise 3.3: one distillation step ------------------------------------------------------

def reference_distill_step(student, teacher, optimizer, images, labels, T, alpha):
    """One training step of Hinton distillation on one batch: the reference of exercise 3.3.

    The teacher runs in ``eval()`` mode (dropout off: its real predictions, not noisy
    samples) under ``torch.no_grad()`` (no graph through it: it is not trained). The student's
    logits get :func:`kdteach.losses.kd_loss`; then ``zero_grad``, ``backward``, ``step``.
    Returns the batch's loss, detached from the graph (reading it on the host, with
    ``float(...)``, is left to the caller: on a GPU that read makes the CPU wait).
    """
    teacher.eval()
    with torch.no_grad():
        teacher_logits = teacher(images)
    student_logits = student(images)
    loss = kd_loss(student_logits, teacher_logits, labels, T=T, alpha=alpha)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


_STEP_T, _STEP_ALPHA, _STEP_LR = 4.0, 0.3, 0.5
_ACCEPTED: dict = {"step": None}  # the last step that passed check_distill_step


class _CheckTeacher(nn.Module):
    """A small teacher with dropout that notes, at each forward pass, whether it was in
    train mode and whether autograd was recording."""

    def __init__(self, first: nn.Linear, last: nn.Linear):
        super().__init__()
        self.first, self.drop, self.last = first, nn.Dropout(0.5), last
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.last(self.drop(torch.relu(self.first(x))))


def _step_case():
    """Fixed float64 networks and two batches: (student, teacher, [(images, labels)] * 2)."""
    gen = torch.Generator().manual_seed(33)
    inputs, classes, batch = 12, 7, 16

    def linear(n_in, n_out, scale):
        layer = nn.utils.skip_init(nn.Linear, n_in, n_out, dtype=torch.float64)  # no global RNG
        with torch.no_grad():
            layer.weight.copy_(torch.randn(n_out, n_in, generator=gen, dtype=torch.float64)
                               * scale / math.sqrt(n_in))
            layer.bias.copy_(0.1 * torch.randn(n_out, generator=gen, dtype=torch.float64))
        return layer

    student = nn.Sequential(linear(inputs, 16, 1.0), nn.ReLU(), linear(16, classes, 1.0))
    teacher = _CheckTeacher(linear(inputs, 32, 1.5), linear(32, classes, 3.0))
    batches = [(torch.randn(batch, inputs, generator=gen, dtype=torch.float64),
                torch.randint(0, classes, (batch,), generator=gen)) for _ in range(2)]
    return student, teacher, batches


def _weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).clone()


def _run_steps(step) -> dict:
    """Two consecutive steps of ``step`` from the fixed start, plain SGD; what happened."""
    student, teacher, batches = _step_case()
    student.train()
    teacher.train()  # as it may arrive, e.g. straight from its own training
    optimizer = torch.optim.SGD(student.parameters(), lr=_STEP_LR)
    teacher_before = _weights(teacher)
    weights, returned, error = [_weights(student)], [], None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same dropout masks on every run; the caller's RNG untouched
        try:
            for images, labels in batches:
                returned.append(step(student, teacher, optimizer, images, labels, _STEP_T, _STEP_ALPHA))
                weights.append(_weights(student))
        except Exception as err:  # the learner's code: report, never raise
            error = err
    return {
        "error": error, "returned": returned, "calls": teacher.calls,
        "updates": [w - weights[0] for w in weights[1:]],  # after step 1, after step 2
        "teacher_grad": any(p.grad is not None and bool(p.grad.abs().max() > 0)
                            for p in teacher.parameters()),
        "teacher_changed": not torch.equal(teacher_before, _weights(teacher)),
    }


def _variant_loss(s, t, y, T, alpha, mistake):
    """Hinton's loss, or the same with one known mistake."""
    def kl(log_p, log_q):  # KL(p || q), summed over classes, averaged over the batch
        return (log_p.exp() * (log_p - log_q)).sum(-1).mean()

    log_qs, log_qt = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
    soft = {
        "reversed KL": lambda: T**2 * kl(log_qs, log_qt),
        "no T²": lambda: kl(log_qt, log_qs),
        "mean": lambda: T**2 * kl(log_qt, log_qs) / s.shape[1],
        "no T², mean": lambda: kl(log_qt, log_qs) / s.shape[1],
        "student at T = 1": lambda: T**2 * kl(log_qt, F.log_softmax(s, -1)),
        "teacher at T = 1": lambda: T**2 * kl(F.log_softmax(t, -1), log_qs),
        "both at T = 1": lambda: T**2 * kl(F.log_softmax(t, -1), F.log_softmax(s, -1)),
        "both at T = 1, no T²": lambda: kl(F.log_softmax(t, -1), F.log_softmax(s, -1)),
        "softmax twice": lambda: T**2 * kl(F.log_softmax(torch.softmax(t, -1) / T, -1), log_qs),
        "probabilities": lambda: T**2 * F.kl_div(log_qs.exp(), log_qt.exp(), reduction="batchmean"),
        "log target": lambda: T**2 * F.kl_div(log_qs, log_qt, reduction="batchmean"),
        "soft cross-entropy": lambda: T**2 * -(log_qt.exp() * log_qs).sum(-1).mean(),
    }.get(mistake, lambda: T**2 * kl(log_qt, log_qs))()
    hard = F.cross_entropy(s / T if mistake == "hard term at T" else s, y)
    return {
        "alpha swapped": lambda: (1 - alpha) * hard + alpha * soft,
        "no hard term": lambda: soft,
        "no hard term, weighted": lambda: (1 - alpha) * soft,
        "no soft term": lambda: hard,
        "no soft term, weighted": lambda: alpha * hard,
        "sign": lambda: -(alpha * hard + (1 - alpha) * soft),
    }.get(mistake, lambda: alpha * hard + (1 - alpha) * soft)()


def _variant_step(mistake=None):
    """The reference step, or the same step with one known mistake in its loss or its
    ``zero_grad``."""
    def step(student, teacher, optimizer, images, labels, T, alpha):
        teacher.eval()
        with torch.no_grad():
            teacher_logits = teacher(images)
        loss = _variant_loss(student(images), teacher_logits, labels, T, alpha, mistake)
        if mistake != "no zero_grad":
            optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()
    return step


@functools.lru_cache(maxsize=None)
def _variant_run(mistake=None) -> dict:
    """:func:`_run_steps` of :func:`_variant_step` (deterministic, so computed once)."""
    return _run_steps(_variant_step(mistake))


_KL_CALL = ("F.kl_div(F.log_softmax(student_logits / T, dim=1), "
            "F.softmax(teacher_logits / T, dim=1), reduction='batchmean')")

_UPDATE_MISTAKES = [
    (("reversed KL",), "The KL is the wrong way round: KL(q_s ‖ q_t) weights the log-ratio by "
     f"the student's probabilities. Hinton's soft term is KL(q_t ‖ q_s): {_KL_CALL}."),
    (("no T²",), "The soft term lacks its factor T²: its gradient is T² times too weak (16× at "
     "the check's T = 4), so the teacher barely counts, and less the hotter T is."),
    (("mean",), 'The soft term is divided by the number of classes as well: reduction="mean" '
     'averages over batch × classes. Use reduction="batchmean".'),
    (("no T², mean",), 'Two mistakes in the soft term: no T², and reduction="mean" (use '
     '"batchmean").'),
    (("student at T = 1",), "The student's logits must be divided by T too: "
     "F.log_softmax(student_logits / T, dim=1)."),
    (("teacher at T = 1",), "The teacher's logits must be divided by T too: "
     "F.softmax(teacher_logits / T, dim=1); at T = 1 its targets are not softened."),
    (("both at T = 1", "both at T = 1, no T²"), "Neither network's logits are divided by T: "
     "the soft term compares the softmaxes at temperature T, softmax(logits / T)."),
    (("softmax twice",), "Softmax applied twice: the targets are softmax(teacher_logits / T), "
     "from the teacher's logits, not from its probabilities."),
    (("probabilities",), "F.kl_div's first argument must be the student's *log*-probabilities "
     "(F.log_softmax), not probabilities."),
    (("log target",), "F.kl_div's second argument, the target, must be the teacher's "
     "probabilities, F.softmax(teacher_logits / T, dim=1); log-probabilities need "
     "log_target=True."),
    (("alpha swapped",), "alpha and 1 − alpha are swapped: alpha weights the hard (label) term."),
    (("no hard term", "no hard term, weighted"), "The hard-label term alpha · "
     "F.cross_entropy(student_logits, labels) is missing."),
    (("no soft term", "no soft term, weighted"), "The soft term is missing: this step trains on "
     "the labels alone and never uses the teacher's logits."),
    (("hard term at T",), "The hard term is the ordinary cross-entropy at T = 1: "
     "F.cross_entropy(student_logits, labels), not of student_logits / T."),
    (("sign",), "The weights moved uphill: the loss has the wrong sign. optimizer.step() "
     "descends the loss, so return and backpropagate the loss itself, not its negative."),
]


def _number(value):
    """``value`` as a float, or None if it is not one number."""
    if isinstance(value, torch.Tensor):
        return float(value.detach()) if value.numel() == 1 else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _judge_step(fn) -> tuple[bool, str]:
    if is_unanswered(fn):
        return False, ("Not answered yet: define `my_distill_step(student, teacher, optimizer, "
                       "images, labels, T, alpha)` and set `answer = my_distill_step`.")
    if not callable(fn):
        return False, "Pass the function itself (`answer = my_distill_step`), not its result."
    run = _run_steps(fn)
    err = run["error"]
    if err is not None:
        text = f"{type(err).__name__}: {err}"
        if isinstance(err, RuntimeError) and "does not require grad" in str(err):
            return False, ("backward() found no graph to go back through: the student's forward "
                           "pass must run with autograd on — outside the torch.no_grad() block, "
                           f"its logits not detached. ({text})")
        if isinstance(err, TypeError) and "argument" in str(err):
            return False, ("The step must take (student, teacher, optimizer, images, labels, T, "
                           f"alpha), in that order. ({text})")
        return False, f"Your step raised {text}"
    if not run["calls"]:
        return False, ("The teacher never ran: its logits, teacher(images), give the soft "
                       "targets.")
    if any(training for training, _ in run["calls"]):
        return False, ("The teacher ran in train mode, so its dropout was on and its targets "
                       "were noisy samples, different at every call. Call teacher.eval() in the "
                       "step: it may arrive in train mode (e.g. straight from its own training).")
    if run["teacher_grad"]:
        return False, ("Gradient reached the teacher: its parameters got a .grad. Compute the "
                       "teacher's logits under torch.no_grad(): the teacher is fixed, only the "
                       "student learns.")
    if run["teacher_changed"]:
        return False, "The teacher's weights changed: only the student may be updated."
    if any(recording for _, recording in run["calls"]):
        return False, ("The teacher ran with autograd recording: even if its logits are "
                       "detached afterwards, the graph through it is built and kept — time and "
                       "memory spent for nothing. Run the teacher under torch.no_grad().")
    updates = run["updates"]
    if not all(bool(torch.isfinite(u).all()) for u in updates):
        return False, ("The student's weights became NaN or infinite: the loss was not finite — "
                       "e.g. F.kl_div given log-probabilities as its target (it expects "
                       "probabilities unless log_target=True), or torch.log of a softmax that "
                       "underflowed to 0.")
    if all(float(u.abs().max()) == 0 for u in updates):
        return False, ("The student's weights did not change. A step is optimizer.zero_grad(), "
                       "loss.backward(), optimizer.step(), in that order — zero_grad between "
                       "backward and step wipes the gradient before it is used.")
    reference = _variant_run()
    ref_updates = reference["updates"]

    def same(a, b):
        return close(a, b, rtol=1e-5, atol=1e-9)

    if not same(updates[0], ref_updates[0]):
        for names, hint in _UPDATE_MISTAKES:
            if any(same(updates[0], _variant_run(n)["updates"][0]) for n in names):
                return False, hint
        gap = float((updates[0] - ref_updates[0]).norm() / ref_updates[0].norm())
        return False, ("The student's update differs from the reference step's (by "
                       f"{gap:.2g} of its size) and matches none of the usual mistakes. Check "
                       "the loss piece by piece: alpha · F.cross_entropy(student_logits, labels) "
                       f"+ (1 − alpha) · T² · {_KL_CALL}; and use the optimizer you are given.")
    if not same(updates[1], ref_updates[1]):
        if same(updates[1], _variant_run("no zero_grad")["updates"][1]):
            return False, ("The first step is right, the second is not: the first batch's "
                           "gradients were still there, and PyTorch adds new gradients to old "
                           "ones. Call optimizer.zero_grad() in every step, before "
                           "loss.backward().")
        return False, ("The first step is right but the second is not: a step must depend on "
                       "its own batch only (zero_grad, forward, loss, backward, step).")
    values = [_number(v) for v in run["returned"]]
    expected = [_number(v) for v in reference["returned"]]
    if any(v is None for v in values):
        return False, ("The update is right, but the step must return the batch's loss as one "
                       "number: return loss.detach() (or loss.item()).")
    if not close(values, expected, rtol=1e-5):
        soft_ce = [_number(v) for v in _variant_run("soft cross-entropy")["returned"]]
        if close(values, soft_ce, rtol=1e-5):
            return False, ("The update is right, but the loss you return is the cross-entropy "
                           "with soft targets: same gradient as the KL, but its value exceeds it "
                           "by T² times the teacher's entropy. Use the KL (0 when the student "
                           "matches the teacher).")
        return False, (f"The update is right, but the step returned {values[0]:.5f} for the "
                       f"first batch; its loss (before the update) is {expected[0]:.5f}.")
    return True, ("Right: the teacher in eval() under no_grad, Hinton's loss, zero_grad → "
                  "backward → step; after two steps the student's weights match the reference "
                  "step's, and the teacher is untouched.")


def check_distill_step(fn) -> bool:
    """Exercise 3.3: ``fn(student, teacher, optimizer, images, labels, T, alpha)`` performs
    one distillation step — teacher in ``eval()`` under ``no_grad``, Hinton's loss on the
    student's logits, ``zero_grad`` / ``backward`` / ``step`` — and returns the batch's loss.

    The check runs two consecutive steps on fixed batches from fixed weights (a small
    float64 student, a teacher with dropout handed over in train mode, plain SGD), compares
    the student's weights after each with :func:`reference_distill_step`'s, and names the
    mistake when they differ. A step that passes is the one :func:`step_for_the_loop`
    returns.
    """
    ok, message = _judge_step(fn)
    _ACCEPTED["step"] = fn if ok else None
    if is_unanswered(fn):
        return not_attempted(message.removeprefix("Not answered yet: "))
    return feedback(ok, message)


def step_for_the_loop():
    """The distillation step for the notebook's hand-written loop: yours if the last
    :func:`check_distill_step` passed, else :func:`reference_distill_step` (and it says so)."""
    if _ACCEPTED["step"] is not None:
        print("The loop below uses your distillation step (it passed exercise 3.3's check).")
        return _ACCEPTED["step"]
    print("Exercise 3.3 is not solved yet, so the loop below uses the reference step, "
          "exercises.reference_distill_step. Once your step passes its check, run this cell "
          "again to train with yours.")
    return reference_distill_step

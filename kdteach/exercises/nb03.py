"""Self-checks for notebook 03, Hinton's knowledge distillation: the KD loss and the gradient
of its soft term.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import kd_loss
from .feedback import as_float64, close, feedback, is_unanswered, known_mistake, not_attempted


def _kd_cases():
    """Fixed logits for checking a KD loss: (student, teacher, targets)."""
    gen = torch.Generator().manual_seed(3)
    s = torch.randn(8, 10, generator=gen, dtype=torch.float64) * 3
    t = torch.randn(8, 10, generator=gen, dtype=torch.float64) * 5
    y = torch.randint(0, 10, (8,), generator=gen)
    return s, t, y


def check_kd_loss(fn) -> bool:
    """Exercise 3.1: ``fn(student_logits, teacher_logits, targets, T, alpha)`` is Hinton's
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
    try:
        value.backward()
    except RuntimeError as err:
        return feedback(False, f"The value is right but backward() failed ({err}); do not detach "
                        "the student's logits.")
    if t_req.grad is not None and float(t_req.grad.abs().max()) > 0:
        return feedback(False, "The value is right, but gradient flows into the teacher's logits. "
                        "Detach them (teacher_logits.detach()): the teacher is fixed.")
    if s_req.grad is None:
        return feedback(False, "The value is right but no gradient reaches the student's logits.")
    return feedback(True, "Right: same value as kdteach.losses.kd_loss, and the teacher gets no "
                    "gradient.")


def check_soft_gradient(answer, student_logits, teacher_logits, T) -> bool:
    """Exercise 3.2: the gradient of the batch-mean soft term ``T² · KL`` with respect to
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

"""Self-checks for the notebooks' exercises.

Each ``check_*`` function takes the learner's answer, prints what is right or — more
usefully — what is wrong and why, and returns ``True`` or ``False``. It never raises for a
wrong answer, so a learner can try again; an unanswered exercise (``None`` or ``...``)
prints a reminder. The hidden solution cells call ``assert check_…(solution)``.
"""
from __future__ import annotations

import torch


def _unanswered(answer) -> bool:
    return answer is None or answer is Ellipsis


def feedback(ok: bool, message: str) -> bool:
    """Print ``message`` marked as a pass or a hint; return ``ok``."""
    print(("✓ " if ok else "✗ ") + message)
    return ok


def not_attempted(what: str) -> bool:
    return feedback(False, f"Not answered yet: {what}")


def known_mistake(answer, mistakes, **tolerance) -> str | None:
    """The hint of the first ``(wrong value, hint)`` in ``mistakes`` that ``answer`` matches
    (by :func:`close`, with ``tolerance``), or ``None`` if it matches none of them."""
    return next((hint for wrong, hint in mistakes if close(answer, wrong, **tolerance)), None)


def close(answer, expected, *, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Whether ``answer`` matches ``expected`` (numbers or tensors) within tolerance."""
    a = torch.as_tensor(answer, dtype=torch.float64)
    e = torch.as_tensor(expected, dtype=torch.float64)
    return a.shape == e.shape and bool(torch.allclose(a, e, rtol=rtol, atol=atol))


# --- 00 Welcome --------------------------------------------------------------------------

def check_parameter_ratio(ratio) -> bool:
    """Exercise 0.1: teacher / student parameter count of Hinton's MNIST pair."""
    from .models import count_parameters, hinton_student, hinton_teacher

    if _unanswered(ratio):
        return not_attempted("set `ratio` to teacher parameters / student parameters.")
    expected = count_parameters(hinton_teacher()) / count_parameters(hinton_student())
    weights_only = (784 * 1200 + 1200 * 1200 + 1200 * 10) / (784 * 800 + 800 * 800 + 800 * 10)
    if close(ratio, expected, rtol=1e-3):
        return feedback(True, f"Right: the teacher has {expected:.2f}× the student's parameters.")
    if close(ratio, 1 / expected, rtol=1e-3):
        return feedback(False, "That is student / teacher; the question asks teacher / student.")
    if close(ratio, weights_only, rtol=1e-3):
        return feedback(False, "Close — you counted the weights but forgot the biases (one per output).")
    return feedback(False, f"{ratio} is off. Sum inputs × outputs + outputs over the three layers "
                    "of each network, then divide.")

# --- 01 Softmax and temperature ----------------------------------------------------------

def _nb01_float64(x) -> torch.Tensor:
    return torch.as_tensor(x.detach() if isinstance(x, torch.Tensor) else x, dtype=torch.float64)


def check_stable_softmax(fn) -> bool:
    """Exercise 1.1: ``fn(z, T)`` is a numerically stable softmax of ``z / T`` over the last axis."""
    if _unanswered(fn):
        return not_attempted("define `softmax_T(z, T)` and set `answer = softmax_T` (the function itself).")
    if not callable(fn):
        return feedback(False, "Pass the function itself (`answer = softmax_T`, no parentheses), "
                        "not a result.")
    z = torch.tensor([[2.0, 1.0, 0.1, -1.0], [0.5, 0.5, 3.0, 0.0]], dtype=torch.float64)
    big = torch.tensor([[1000.0, 999.0, 990.0, 0.0], [-1000.0, -1001.0, -1010.0, -2000.0]],
                       dtype=torch.float64)

    def call(x, T):
        return _nb01_float64(fn(x.clone(), T))

    try:
        out = call(z, 2.0)
    except Exception as err:  # the learner's code: report, never raise
        return feedback(False, f"softmax_T(z, T) raised {type(err).__name__}: {err}. It receives a "
                        "torch tensor z of shape (B, K) and a number T, and returns a (B, K) tensor.")
    if out.shape != z.shape:
        return feedback(False, f"softmax_T returned shape {tuple(out.shape)} for input {tuple(z.shape)}; "
                        "it must return one probability per logit (same shape).")
    if not close(out, torch.softmax(z / 2.0, dim=-1)):
        wrong = [
            (torch.softmax(z, dim=-1), "T is ignored: divide the logits by T before exponentiating."),
            (torch.softmax(z * 2.0, dim=-1), "You multiply the logits by T; divide them: softmax(z / T)."),
            (torch.softmax(z, dim=-1) / 2.0, "You divide the probabilities by T; T divides the logits, "
             "before the exponential (the result must still sum to 1)."),
            (torch.softmax(z / 2.0, dim=0), "Each column sums to 1: normalise over the last axis "
             "(dim=-1, one distribution per row)."),
            (torch.log_softmax(z / 2.0, dim=-1), "These are log-probabilities; return probabilities "
             "(exponentiate)."),
        ]
        hint = known_mistake(out, wrong)
        if hint:
            return feedback(False, hint)
        return feedback(False, "The values are not softmax(z / T): exp(z_i / T) / sum_j exp(z_j / T), "
                        "row by row. Compare with torch.softmax(z / T, dim=-1).")
    try:
        out_big = call(big, 1.0)
        rows_ok = all(torch.isfinite(call(big[i:i + 1], 1.0)).all() for i in range(len(big)))
    except Exception as err:
        return feedback(False, f"softmax_T raised {type(err).__name__} on large logits: {err}")
    if not torch.isfinite(out_big).all():
        if rows_ok:
            return feedback(False, "Each row alone works but the batch gives NaN: you subtract one "
                            "maximum for the whole batch. Subtract each row's own maximum "
                            "(z.max(dim=-1, keepdim=True).values).")
        return feedback(False, "NaN or inf for logits like 1000: exp(1000) overflows. Subtract each "
                        "row's maximum first; softmax does not change when every logit of a row "
                        "moves by the same amount.")
    if not close(out_big, torch.softmax(big, dim=-1)):
        return feedback(False, "Finite but wrong on large logits; subtract each row's maximum "
                        "(keepdim=True so it broadcasts), then exponentiate and normalise.")
    return feedback(True, "Right: T divides the logits, each row sums to 1, and logits in the "
                    "thousands neither overflow nor underflow to 0/0.")


def check_pair_temperature(T, gap) -> bool:
    """Exercise 1.2: the temperature at which the runner-up of two classes whose logits
    differ by ``gap`` gets probability 0.25: ``1 / (1 + exp(gap / T)) = 1/4``, so
    ``T = gap / ln 3``."""
    import math

    if _unanswered(T):
        return not_attempted("set `T_quarter` to the temperature (a positive number).")
    try:
        T = float(T)
    except (TypeError, ValueError):
        return feedback(False, f"T_quarter must be a number, got {type(T).__name__}.")
    gap = float(gap)
    expected = gap / math.log(3)
    if close(T, expected, rtol=1e-3):
        return feedback(True, f"Right: T = gap / ln 3 = {expected:.3f}. At that temperature the "
                        "teacher gives the runner-up odds of 1 to 3.")
    if close(T, gap / math.log(4), rtol=1e-3):
        return feedback(False, "You set the *ratio* q_runner-up / q_top to 1/4. A probability of "
                        "1/4 out of two classes means the other has 3/4: a ratio of 1/3.")
    if close(T, gap / math.log10(3), rtol=1e-3) or close(T, gap / math.log2(3), rtol=1e-3):
        return feedback(False, "Wrong logarithm: softmax uses exp, so take the natural log (math.log).")
    if close(T, gap * math.log(3), rtol=1e-3) or close(T, math.log(3) / gap, rtol=1e-3):
        return feedback(False, "The ratio is exp(-gap / T) = 1/3, so gap / T = ln 3: solve for T "
                        "(you inverted a fraction).")
    if T <= 0:
        return feedback(False, "A temperature must be positive.")
    return feedback(False, f"{T:.4g} is off. With two classes, q_runner-up = 1 / (1 + exp(gap / T)); "
                    "set it to 1/4 and solve for T.")


def check_distances(answer, p, q) -> bool:
    """Exercise 1.3: ``(L1, L2, L∞)`` norms of the difference ``p - q`` of two vectors."""
    if _unanswered(answer):
        return not_attempted("set `answer = (l1, l2, linf)`, three numbers.")
    try:
        values = [float(v) for v in answer]
    except (TypeError, ValueError):
        return feedback(False, "answer must be three numbers (l1, l2, linf), e.g. a tuple of floats.")
    if len(values) != 3:
        return feedback(False, f"answer has {len(values)} numbers; give three: (l1, l2, linf).")
    d = _nb01_float64(p).flatten() - _nb01_float64(q).flatten()
    expected = [float(d.abs().sum()), float(d.pow(2).sum().sqrt()), float(d.abs().max())]
    ok = [close(a, e, rtol=1e-3, atol=1e-6) for a, e in zip(values, expected)]
    if all(ok):
        return feedback(True, "Right: L1 {:.3f} ≥ L2 {:.3f} ≥ L∞ {:.3f}, as it must be."
                        .format(*expected))
    if all(close(a, e, rtol=1e-3, atol=1e-6) for a, e in zip(sorted(values), sorted(expected))):
        return feedback(False, "The three numbers are right but in the wrong order: (l1, l2, linf).")
    msgs = []
    if not ok[0]:
        if close(values[0], float(d.sum()), rtol=1e-3, atol=1e-6):
            msgs.append("L1 is the sum of |p_i - q_i|: without the absolute value the differences "
                        "of two probability vectors cancel (both sum to 1), giving 0.")
        else:
            msgs.append("L1 should be sum |p_i - q_i|.")
    if not ok[1]:
        if close(values[1], expected[1] ** 2, rtol=1e-3, atol=1e-9):
            msgs.append("L2 is the square root of the sum of squares; you gave the squared norm.")
        else:
            msgs.append("L2 should be sqrt(sum (p_i - q_i)^2).")
    if not ok[2]:
        if close(values[2], float(d.max()), rtol=1e-3, atol=1e-6):
            msgs.append("L∞ is the largest *absolute* difference, max |p_i - q_i|; the largest "
                        "difference in size here is a negative one.")
        else:
            msgs.append("L∞ should be max |p_i - q_i|.")
    return feedback(False, " ".join(msgs))


# --- 02 Teachers and students ------------------------------------------------------------

def _nb02_number(answer, what: str):
    """``answer`` as a float, or ``None`` after printing why it is not a number."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        feedback(False, f"{what} must be a single number (an int or a float), got "
                 f"{type(answer).__name__}.")
        return None
    return float(answer)


def check_student_flops(flops) -> bool:
    """Exercise 2.1: FLOPs of one forward pass of Hinton's 784-800-800-10 student, per image,
    counted as ``metrics.flops`` does (one multiply-add = 2 FLOPs; matmuls only)."""
    if _unanswered(flops):
        return not_attempted("set `flops` to the student's FLOPs per image (a number).")
    value = _nb02_number(flops, "flops")
    if value is None:
        return False
    layers = [(784, 800), (800, 800), (800, 10)]
    macs = sum(i * o for i, o in layers)
    biases = sum(o for _, o in layers)
    expected = 2 * macs
    right = (f"Right: 2 × {macs:,} multiply-adds = {expected:,} FLOPs per image "
             "(about 2.6 MFLOPs; the bias additions are too few to count).")
    if close(value, expected, rtol=1e-6):
        return feedback(True, right)
    wrong = [
        (macs, "That is the number of multiply-adds (MACs). One multiply-add is two floating-point "
         "operations, a multiplication and an addition: double it."),
        (macs + biases, "That is the number of parameters (weights + biases). Each weight takes part "
         "in one multiply-add per image, i.e. 2 FLOPs: count 2 × weights."),
        (expected + biases, "Nearly: metrics.flops (FlopCounterMode) counts the matrix multiplications "
         "only, 2 FLOPs per weight; leave out the bias additions."),
        (expected + 2 * biases, "Nearly: metrics.flops (FlopCounterMode) counts the matrix "
         "multiplications only, 2 FLOPs per weight; leave out the biases."),
        (2 * 784 * 800, "That is the first layer only; add the 800→800 and 800→10 layers."),
        (2 * (784 * 1200 + 1200 * 1200 + 1200 * 10), "That is the teacher (784-1200-1200-10); the "
         "question asks for the student (784-800-800-10)."),
        (784 * 1200 + 1200 * 1200 + 1200 * 10, "That is the teacher's multiply-adds; the question "
         "asks for the student (784-800-800-10), and for FLOPs (2 per multiply-add)."),
    ]
    hint = known_mistake(value, wrong, rtol=1e-6)
    if hint:
        return feedback(False, hint)
    if close(value, expected, rtol=2e-3):  # rounded, e.g. 2.55e6
        return feedback(True, right)
    hint = known_mistake(value, wrong, rtol=2e-3)  # a rounded mistake, e.g. 1.28e6
    if hint:
        return feedback(False, hint)
    return feedback(False, f"{value:,.0f} is off. A linear layer with n_in inputs and n_out outputs "
                    "does n_in × n_out multiply-adds per image; sum them over the three layers and "
                    "count 2 FLOPs per multiply-add.")


def check_conv_flops(flops) -> bool:
    """Exercise 2.2: FLOPs of the CNN student's first convolution (1→8 channels, 3×3, padding 1,
    on a 28×28 image), per image, counted as ``metrics.flops`` does."""
    if _unanswered(flops):
        return not_attempted("set `flops` to the FLOPs of the student's first convolution per image.")
    value = _nb02_number(flops, "flops")
    if value is None:
        return False
    c_in, c_out, k, hw = 1, 8, 3, 28 * 28
    macs = c_in * k * k * c_out * hw
    expected = 2 * macs
    if close(value, expected, rtol=1e-3):
        return feedback(True, f"Right: each of the 8 × 28 × 28 outputs is a 3 × 3 × 1 dot product, "
                        f"2 × {macs:,} = {expected:,} FLOPs.")
    wrong = [
        (macs, "That is the number of multiply-adds; one multiply-add is 2 FLOPs."),
        (2 * c_in * k * k * c_out * 14 * 14, "You used the 14 × 14 size after max-pooling. The "
         "convolution runs before the pooling, on all 28 × 28 positions (padding 1 keeps the size)."),
        (c_in * k * k * c_out * 14 * 14, "Two slips: the convolution runs on 28 × 28 positions (the "
         "pooling comes after it), and a multiply-add is 2 FLOPs."),
        (2 * c_in * k * k * c_out * 26 * 26, "With padding=1 the output stays 28 × 28; 26 × 26 would "
         "be a convolution without padding."),
        (2 * c_out * hw, "You left out the kernel: every output value is a sum over 3 × 3 × 1 inputs."),
        (c_in * k * k * c_out, "That is the number of weights of the convolution. Each weight is "
         "used once per output position: multiply by 28 × 28, then by 2 FLOPs per multiply-add."),
        (2 * c_in * k * k * c_out, "That counts one output position only: the kernel slides over all "
         "28 × 28 positions."),
    ]
    hint = known_mistake(value, wrong, rtol=1e-3)
    if hint:
        return feedback(False, hint)
    return feedback(False, f"{value:,.0f} is off. Count outputs (channels × height × width) × "
                    "multiply-adds per output (kernel height × width × input channels) × 2.")


def check_teacher_only_right(answer, teacher_logits, student_logits, labels) -> bool:
    """Exercise 2.3: the number of test images the teacher classifies correctly and the student
    does not."""
    if _unanswered(answer):
        return not_attempted("set `answer` to the number of test images the teacher gets right and "
                             "the student gets wrong.")
    value = _nb02_number(answer, "answer")
    if value is None:
        return False
    labels = labels.cpu()
    t_right = teacher_logits.cpu().argmax(1) == labels
    s_right = student_logits.cpu().argmax(1) == labels
    expected = int((t_right & ~s_right).sum())
    if value == expected:
        return feedback(True, f"Right: the teacher gets {expected} images right that the student "
                        f"gets wrong (and the student {int((s_right & ~t_right).sum())} the other "
                        "way round).")
    wrong = [
        (int((s_right & ~t_right).sum()), "That is the other direction: images the *student* gets "
         "right and the teacher wrong. Use teacher right AND student wrong."),
        (int((t_right ^ s_right).sum()), "That counts both directions (exactly one of the two is "
         "right). Keep only teacher right AND student wrong."),
        (int((~s_right).sum()) - int((~t_right).sum()), "That is the difference of the error counts. "
         "It nets out images the student gets right and the teacher wrong; count the images "
         "themselves: teacher right AND student wrong."),
        (int((teacher_logits.cpu().argmax(1) != student_logits.cpu().argmax(1)).sum()),
         "That counts the images where the two predictions differ (including those where both are "
         "wrong); compare each prediction with the label."),
        (int((~s_right).sum()), "That is all the student's errors; keep only those the teacher "
         "gets right."),
    ]
    for candidate, message in wrong:
        if value == candidate:
            return feedback(False, message)
    return feedback(False, f"{value:g} is off. With t = teacher predictions == labels and s = student "
                    "predictions == labels, count (t & ~s).")


# --- 03 Hinton KD ------------------------------------------------------------------------

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
    import torch.nn.functional as F

    from .losses import kd_loss

    if _unanswered(fn):
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
    if _unanswered(answer):
        return not_attempted("set `grad` to a (B, K) tensor computed without autograd.")
    try:
        g = _nb01_float64(answer)
    except (TypeError, ValueError, RuntimeError):
        return feedback(False, "grad must be a tensor (or array) of shape (B, K).")
    s, t = _nb01_float64(student_logits), _nb01_float64(teacher_logits)
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


# --- 04 Dark-knowledge experiments -------------------------------------------------------

def _nb04_tensor(x) -> torch.Tensor:
    return torch.as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=torch.float64)


def check_matched_smoothing(eps, teacher_logits, labels, T) -> bool:
    """Exercise 4.1: the label-smoothing ``eps`` that moves as much probability off the true class
    as the teacher's soft targets at temperature ``T`` do, on average:
    ``eps * (K - 1) / K = mean(1 - q_y)``, with ``q = softmax(teacher_logits / T)``."""
    if _unanswered(eps):
        return not_attempted("set `eps` to the matched label-smoothing strength (a number in [0, 1]).")
    if isinstance(eps, torch.Tensor) and eps.numel() == 1:
        eps = eps.item()
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        return feedback(False, f"eps must be one number, got {type(eps).__name__}; average over the "
                        "examples (e.g. with .mean()) and convert with float(...).")
    z = _nb04_tensor(teacher_logits)
    y = torch.as_tensor(labels).cpu().long()
    K = z.shape[1]

    def moved(probs, use_max=False):
        kept = probs.max(1).values if use_max else probs.gather(1, y[:, None]).squeeze(1)
        return float(1 - kept.mean())

    mass = moved(torch.softmax(z / T, 1))
    expected = mass * K / (K - 1)
    if close(eps, expected, rtol=2e-3):
        return feedback(True, f"Right: the teacher moves {mass:.3f} off the true class at T={T:g}; "
                        f"label smoothing keeps eps/K on it, so eps = {mass:.3f} × {K}/{K - 1} "
                        f"= {expected:.3f}.")
    mass1 = moved(torch.softmax(z, 1))
    mass_max = moved(torch.softmax(z / T, 1), use_max=True)
    wrong = [
        (mass, f"That is the mass the teacher moves off the true class, {mass:.3f}. Label "
         "smoothing puts eps/K back on the true class (its target there is 1 - eps + eps/K), so it "
         "moves only eps·(K−1)/K: solve eps·(K−1)/K = that mass."),
        (1 - mass, "That is the probability the teacher leaves *on* the true class; the match is "
         "about the mass moved *off* it."),
        (mass1 * K / (K - 1), f"You used the teacher's probabilities at T=1; the soft targets KD "
         f"uses are softmax(z / T) with T={T:g}."),
        (mass1, f"Two slips: use softmax(z / T) with T={T:g}, and account for the eps/K that label "
         "smoothing leaves on the true class (eps·(K−1)/K = mass)."),
        (mass_max * K / (K - 1), "You used the teacher's largest probability; use its probability "
         "of the *labelled* class (gather with the labels)."),
        (100 * expected, "That looks like a percentage; eps is a fraction between 0 and 1."),
    ]
    hint = known_mistake(eps, wrong, rtol=2e-3)
    if hint:
        return feedback(False, hint)
    if not 0 <= eps <= 1:
        return feedback(False, f"eps={eps:g} is not in [0, 1]: it is a fraction of probability mass.")
    return feedback(False, f"eps={eps:.4f} is off. Compute q = softmax(teacher_logits / T), the mean "
                    "of 1 - q[i, y_i] over the examples, and multiply by K / (K - 1).")


def check_ensemble_soft_targets(answer, member_logits, T) -> bool:
    """Exercise 4.2: the ensemble's soft targets at temperature ``T`` by averaging the members'
    probabilities: ``mean_m softmax(z_m / T)``; ``member_logits`` has shape (M, N, K)."""
    if _unanswered(answer):
        return not_attempted("set `answer` to the ensemble's soft targets, an (N, K) tensor.")
    if not isinstance(answer, torch.Tensor):
        return feedback(False, f"answer must be a torch tensor of shape (N, K), got "
                        f"{type(answer).__name__}.")
    z = _nb04_tensor(member_logits)
    M, N, K = z.shape
    a = _nb04_tensor(answer)
    if a.shape == (M, N, K):
        return feedback(False, f"Shape {tuple(a.shape)} still has the members' axis: average over "
                        "dim 0 (the members) to get one (N, K) target per example.")
    if a.shape == (M, K):
        return feedback(False, "You averaged over the examples (dim 1); average over the members "
                        "(dim 0) instead, one target per example.")
    if a.shape != (N, K):
        return feedback(False, f"Expected shape ({N}, {K}) — one distribution per example — got "
                        f"{tuple(a.shape)}.")
    expected = torch.softmax(z / T, -1).mean(0)
    if close(a, expected, rtol=1e-3, atol=1e-5):
        return feedback(True, "Right: the average of the members' softened distributions; each row "
                        "is a probability distribution (it sums to 1).")
    wrong = [
        (torch.softmax(z.mean(0) / T, -1), "That is softmax of the *averaged logits* (a normalised "
         "geometric mean of the members' distributions). It is a valid choice, but the exercise asks "
         "for the arithmetic mean of the probabilities: softmax each member at T, then average."),
        (torch.softmax(z, -1).mean(0), f"You averaged the members' probabilities at T=1; soften each "
         f"member first: softmax(z / T) with T={T:g}."),
        (torch.softmax(z * T, -1).mean(0), "You multiplied the logits by T; divide them: softmax(z / T)."),
        (torch.softmax(z / T, -1).sum(0), "You summed over the members, so each row sums to the number "
         "of members; divide by it (use .mean(0))."),
        (z.mean(0), "Those are averaged logits, not probabilities: apply softmax(· / T) to each member "
         "and average the results."),
        (z.mean(0) / T, "Those are averaged logits divided by T, not probabilities: apply the softmax "
         "to each member, then average."),
        (torch.log_softmax(z / T, -1).mean(0), "Those are averaged log-probabilities; average the "
         "probabilities themselves."),
    ]
    hint = known_mistake(a, wrong, rtol=1e-3, atol=1e-5)
    if hint:
        return feedback(False, hint)
    sums = a.sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        return feedback(False, "The rows do not sum to 1, so they are not probability distributions; "
                        "softmax each member's z / T over the classes (dim=-1), then average over dim 0.")
    return feedback(False, "These are distributions, but not the average of softmax(z_m / T) over the "
                    "members m. Check the temperature and the axis of the softmax (classes, dim=-1).")


# --- 05 FitNets hints --------------------------------------------------------------------

def check_connector_parameters(n) -> bool:
    """Exercise 5.1: trainable parameters of ``connectors.conv_connector(8, 32)``
    (1×1 conv without bias, batch norm, ReLU)."""
    from .connectors import conv_connector
    from .models import count_parameters

    if _unanswered(n):
        return not_attempted("set `n` to the number of trainable parameters of the 8 → 32 connector.")
    try:
        n = float(n)
    except (TypeError, ValueError):
        return feedback(False, f"Give a number (an int), not {type(n).__name__}.")
    c_in, c_out = 8, 32
    expected = count_parameters(conv_connector(c_in, c_out))
    conv, bn, buffers = c_in * c_out, 2 * c_out, 2 * c_out
    if n == expected:
        return feedback(True, f"Right: {conv} conv weights (1×1 kernel, no bias) + {bn} batch-norm "
                        f"parameters (a scale γ and a shift β per output channel) = {expected}. "
                        "The ReLU has none.")
    wrong = {
        conv: "You counted the convolution only; BatchNorm2d has a learned scale and shift per "
              "output channel (γ, β) too.",
        conv + c_out: "The conv has no bias (bias=False: the batch norm's shift β does its job), "
                      "and the batch norm's γ and β are missing.",
        conv + c_out + bn: "The convolution has no bias (bias=False): with batch norm right after "
                           "it, a bias would be cancelled by the mean subtraction.",
        conv + bn + buffers: "running_mean and running_var are buffers, not parameters: the "
                             "optimizer never updates them (see model.named_buffers()).",
        9 * conv + bn: "The kernel is 1×1, not 3×3: the connector mixes channels at each "
                       "position and keeps the spatial layout.",
        c_in + c_out: "A 1×1 conv still has a weight for every (input channel, output channel) "
                      "pair: c_in × c_out of them.",
    }
    hint = wrong.get(n)
    if hint:
        return feedback(False, hint)
    return feedback(False, f"{n:g} is off. Count c_in × c_out conv weights, then 2 × c_out for the "
                    "batch norm; check with sum(p.numel() for p in conn.parameters()).")


def check_fx_node_for_record_idx(name) -> bool:
    """Exercise 5.2: the FX node of torchvision's resnet18 that mmrazor's
    ``ModuleOutputs(source='backbone.layer4.1.relu')`` with ``record_idx=1`` records."""
    if _unanswered(name):
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


# --- 06 Attention transfer ---------------------------------------------------------------

def check_beta_sum_convention(beta) -> bool:
    """Exercise 6.1: the weight that makes a per-sample *sum* over the 7×7 positions
    (averaged over the batch) equal to ``1000 · at_loss`` (a mean over batch and positions)."""
    if _unanswered(beta):
        return not_attempted("set `beta_sum` to the weight for the summed convention (a number).")
    try:
        beta = float(beta)
    except (TypeError, ValueError):
        return feedback(False, f"Give a number, not {type(beta).__name__}.")
    hw, batch = 7 * 7, 128
    expected = 1000 / hw
    if close(beta, expected, rtol=1e-3):
        return feedback(True, f"Right: sum over {hw} positions = {hw} × mean, so β' = 1000 / {hw} ≈ "
                        f"{expected:.2f}. The batch is averaged in both conventions.")
    wrong = [
        (1000 * hw, "Inverted: the sum is 49 times *larger* than the mean, so its weight must be "
                    "49 times smaller."),
        (1000 / (hw * batch), "The batch is averaged in both conventions; only the positions went "
                              "from a mean to a sum. Do not divide by the batch size."),
        (500 / hw, "No β/2 here: the question matches 1000 · at_loss, the authors' code, which has "
                   "no factor ½."),
        (1000 / 14**2, "Stage 2's maps are 7×7 (14×14 is stage 1)."),
        (1000 / 7, "H·W = 7 × 7 = 49 positions, not 7."),
    ]
    for value, hint in wrong:
        if close(beta, value, rtol=1e-3):
            return feedback(False, hint)
    return feedback(False, f"{beta:g} is off. Write both losses for one sample: mean over H·W vs "
                    "sum over H·W; how do they differ?")


def check_attention_map_p1(answer, feat) -> bool:
    """Exercise 6.2: the p = 1 attention map of ``feat`` (B, C, H, W), flattened and
    L2-normalised per sample — the value of ``losses.attention_map(feat, p=1)``."""
    import torch.nn.functional as F

    from .losses import attention_map

    if _unanswered(answer):
        return not_attempted("set `answer` to a (B, H*W) tensor, one attention map per row.")
    if not isinstance(answer, torch.Tensor):
        return feedback(False, f"answer must be a tensor, got {type(answer).__name__}.")
    feat = feat.detach().double()
    answer = answer.detach().double()
    b, _, h, w = feat.shape
    expected = attention_map(feat, p=1).double()
    if answer.shape == (b, h, w):
        return feedback(False, f"Flatten each map: shape (B, H*W) = ({b}, {h * w}), e.g. .flatten(1).")
    if answer.shape != expected.shape:
        return feedback(False, f"Expected shape {tuple(expected.shape)} (B, H*W), got {tuple(answer.shape)}.")
    if close(answer, expected, rtol=1e-4, atol=1e-6):
        return feedback(True, "Right: mean over channels of |A|, flattened, each row scaled to unit L2 "
                        "norm. (A sum over channels gives the same map: the 1/C cancels.)")
    signed = F.normalize(feat.mean(1).flatten(1), dim=1)
    raw = feat.abs().mean(1).flatten(1)
    l1 = F.normalize(raw, p=1, dim=1)
    squared = F.normalize(feat.pow(2).mean(1).flatten(1), dim=1)
    if close(answer, signed, rtol=1e-4, atol=1e-6):
        return feedback(False, "Take the absolute value first: these are pre-activation features, and "
                        "positive and negative responses would cancel in the channel mean.")
    if close(answer, raw, rtol=1e-4, atol=1e-6) or close(answer, raw * feat.shape[1], rtol=1e-4, atol=1e-6):
        return feedback(False, "Normalise each row to unit L2 norm (F.normalize(q, dim=1)): the loss "
                        "compares where a network looks, not how strongly it responds.")
    if close(answer, l1, rtol=1e-4, atol=1e-6):
        return feedback(False, "That is an L1 normalisation; Zagoruyko & Komodakis divide by the L2 "
                        "norm (F.normalize's default p=2).")
    if close(answer, squared, rtol=1e-4, atol=1e-6):
        return feedback(False, "That is p = 2 (squares); the exercise asks for p = 1, |A|.")
    return feedback(False, "Not the p = 1 map. Steps: feat.abs(), mean over dim 1 (channels), "
                    ".flatten(1), F.normalize(..., dim=1).")


# --- 07 Relational KD --------------------------------------------------------------------

def check_rkd_psi_d(answer, emb) -> bool:
    """Exercise 7.1: RKD's normalised distance matrix ψ_D of the rows of ``emb`` (B, D):
    Euclidean distances divided by their mean over the pairs i ≠ j."""
    if _unanswered(answer):
        return not_attempted("set `answer` to the (B, B) matrix of normalised distances.")
    if not isinstance(answer, torch.Tensor):
        return feedback(False, f"answer must be a tensor, got {type(answer).__name__}.")
    e = emb.detach().double()
    answer = answer.detach().double()
    b = len(e)
    if answer.shape != (b, b):
        return feedback(False, f"Expected a ({b}, {b}) matrix, one entry per pair, got {tuple(answer.shape)}.")
    d = torch.cdist(e, e)
    d.fill_diagonal_(0)
    off = ~torch.eye(b, dtype=torch.bool)
    expected = d / d[off].mean()
    if close(answer, expected, rtol=1e-4, atol=1e-6):
        return feedback(True, "Right: ψ_D = ‖t_i − t_j‖ / μ, μ the mean distance over the B(B−1) pairs "
                        "i ≠ j. Its off-diagonal mean is 1 whatever the embedding's scale or width.")
    sq = d.pow(2)
    cases = [
        (d / d.mean(), f"μ must average over the {b * (b - 1)} pairs i ≠ j; you included the {b} zeros "
                       "of the diagonal (d.mean()), which makes μ too small."),
        (sq / sq[off].mean(), "Use distances, not squared distances (take the square root)."),
        (d, "Divide by μ, the mean distance over pairs i ≠ j: without it the loss would compare "
            "the scales of two different embedding spaces."),
        (d / d.max(), "Normalise by the mean distance over pairs, not by the largest one."),
    ]
    for value, hint in cases:
        if close(answer, value, rtol=1e-4, atol=1e-6):
            return feedback(False, hint)
    return feedback(False, "Not ψ_D. Steps: pairwise distances (torch.cdist(emb, emb)), then divide "
                    "by their mean over the off-diagonal entries.")


def check_sp_similarity(answer, feat) -> bool:
    """Exercise 7.2: SP's similarity matrix G of ``feat`` (B, D): G̃ = Q Qᵀ with each row
    scaled to unit L2 norm (Tung & Mori 2019, eqs. 1-2)."""
    import torch.nn.functional as F

    if _unanswered(answer):
        return not_attempted("set `answer` to the (B, B) matrix G.")
    if not isinstance(answer, torch.Tensor):
        return feedback(False, f"answer must be a tensor, got {type(answer).__name__}.")
    q = feat.detach().double().flatten(1)
    answer = answer.detach().double()
    b = len(q)
    if answer.shape != (b, b):
        return feedback(False, f"Expected a ({b}, {b}) matrix, got {tuple(answer.shape)}.")
    gram = q @ q.T
    expected = F.normalize(gram, p=2, dim=1)
    if close(answer, expected, rtol=1e-4, atol=1e-6):
        return feedback(True, "Right: each row of Q Qᵀ divided by its L2 norm. The matrix is B × B "
                        "whatever the feature width, which is why SP needs no connector.")
    cases = [
        (F.normalize(gram, 1), "That is torchdistill 1.1.5's normalize(G, 1): the second positional "
                               "argument of F.normalize is p, so each row has unit *L1* norm. Tung & "
                               "Mori scale rows to unit L2 norm (p=2, dim=1)."),
        (F.normalize(gram, p=2, dim=0), "You normalised columns (dim=0); normalise each row (dim=1). "
                                        "G is not symmetric after the row scaling."),
        (gram, "Scale each row of Q Qᵀ to unit L2 norm (F.normalize(G, p=2, dim=1))."),
        (F.normalize(q, dim=1) @ F.normalize(q, dim=1).T,
         "That is the cosine-similarity matrix (features normalised before the product); SP "
         "normalises the rows of the product Q Qᵀ instead."),
    ]
    for value, hint in cases:
        if close(answer, value, rtol=1e-4, atol=1e-6):
            return feedback(False, hint)
    return feedback(False, "Not G. Steps: G = feat @ feat.T, then F.normalize(G, p=2, dim=1).")


# --- 08 Online and self-distillation -----------------------------------------------------

def _nb08_number(answer, what: str):
    """``answer`` as a float, or ``None`` after printing why it is not one number."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        feedback(False, f"{what} must be one number, got {type(answer).__name__}; convert a 0-d "
                 "tensor with float(...).")
        return None
    return float(answer)


def check_dml_loss(answer, cohort_logits, labels) -> bool:
    """Exercise 8.1: peer 0's deep-mutual-learning loss in a cohort of K networks, by hand:
    ``CE(y, p_0) + 1/(K-1) * sum_{l != 0} KL(p_l || p_0)`` (Zhang et al. 2018, Sec. 3.3),
    KL summed over classes and averaged over the batch; ``cohort_logits`` is (K, B, C)."""
    if _unanswered(answer):
        return not_attempted("set `loss0` to peer 0's DML loss (one number).")
    value = _nb08_number(answer, "loss0")
    if value is None:
        return False
    z = torch.as_tensor(cohort_logits, dtype=torch.float64).detach().cpu()
    y = torch.as_tensor(labels).cpu().long()
    K, B, C = z.shape
    log_p = torch.log_softmax(z, -1)
    p = log_p.exp()
    ce = float(torch.nn.functional.nll_loss(log_p[0], y))

    def kl(a, b):  # KL(p_a || p_b), summed over classes, mean over the batch
        return float((p[a] * (log_p[a] - log_p[b])).sum(-1).mean())

    peers = range(1, K)
    mimicry = sum(kl(l, 0) for l in peers) / (K - 1)
    expected = ce + mimicry
    if close(value, expected, rtol=1e-4):
        return feedback(True, f"Right: CE {ce:.4f} + mean KL(p_l ‖ p_0) over the {K - 1} peers "
                        f"{mimicry:.4f} = {expected:.4f}, the value of losses.dml_loss.")
    wrong = [
        (ce + sum(kl(0, l) for l in peers) / (K - 1),
         "KL points the wrong way: peer 0 is the one that learns, so it is KL(p_l ‖ p_0) — the "
         "peer's distribution first, as the teacher's is in KD."),
        (ce + sum(kl(l, 0) for l in peers),
         f"You summed the KL terms over the {K - 1} peers; DML averages them (1/(K-1))."),
        (ce + sum(kl(l, 0) for l in peers) / K,
         "You divided by K; peer 0 has K - 1 peers (it does not learn from itself)."),
        (mimicry, "Only the mimicry term: each network also learns from the labels, add CE(y, p_0)."),
        (ce, "Only the cross-entropy: add the mean KL from the peers' predictions to p_0."),
        (ce + mimicry / C, "The KL looks averaged over the classes (reduction='mean'); sum over "
         "classes and average over the batch ('batchmean')."),
    ]
    hint = known_mistake(value, wrong, rtol=1e-4)
    if hint:
        return feedback(False, hint)
    return feedback(False, f"{value:.4f} is off. Compute p = softmax(logits) for each network, "
                    "CE of peer 0 against the labels, and KL(p_l ‖ p_0) = sum_c p_l (log p_l − "
                    "log p_0) averaged over the batch, for every peer l ≠ 0.")


def check_bane_accuracy(answer, generation_logits, labels) -> bool:
    """Exercise 8.2: accuracy of the born-again ensemble of all G generations — the average of
    their softmax *probabilities* (Furlanello et al. 2018, Sec. 3.2) — from (G, N, C) logits."""
    if _unanswered(answer):
        return not_attempted("set `bane_acc` to the ensemble's accuracy (a fraction in [0, 1]).")
    value = _nb08_number(answer, "bane_acc")
    if value is None:
        return False
    z = torch.as_tensor(generation_logits, dtype=torch.float64).detach().cpu()
    y = torch.as_tensor(labels).cpu().long()

    def acc(scores):
        return float((scores.argmax(-1) == y).double().mean())

    expected = acc(torch.softmax(z, -1).mean(0))
    if close(value, expected, rtol=0, atol=1e-6):
        return feedback(True, f"Right: averaging the {len(z)} generations' probabilities gives "
                        f"{expected:.4f}.")
    per_generation = [acc(g) for g in z]
    votes = torch.nn.functional.one_hot(z.argmax(-1), z.shape[-1]).sum(0)
    wrong = [
        (100 * expected, "That looks like a percentage; give the accuracy as a fraction."),
        (acc(z.mean(0)), "That is the ensemble of averaged *logits*; BANE averages the "
         "generations' probabilities: softmax each generation first, then average."),
        (sum(per_generation) / len(z), "That is the mean of the generations' own accuracies, not "
         "the accuracy of their averaged prediction."),
        (per_generation[-1], "That is the last generation alone; the ensemble averages all of them."),
        (acc(votes.double()), "That is a majority vote; average the probabilities instead (the "
         "vote throws away how confident each generation is)."),
    ]
    hint = known_mistake(value, wrong, rtol=0, atol=1e-6)
    if hint:
        return feedback(False, hint)
    return feedback(False, f"{value:.4f} is off. Stack the generations' logits, apply softmax over "
                    "the classes, average over the generations, take the argmax, compare with "
                    "the labels.")


# --- 09 Capstone -------------------------------------------------------------------------

def check_best_method(answer, table) -> bool:
    """Exercise 9.1: from ``table`` ({method: [test accuracy per seed]}), the distillation
    method (any row but ``"scratch"``) with the highest *mean* accuracy, and its gain over
    ``"scratch"`` in percentage points (negative if it trails): ``(method, gain_pp)``."""
    if _unanswered(answer):
        return not_attempted("set `answer = (method, gain_pp)`, e.g. ('KD', 0.8).")
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return feedback(False, "answer must be a pair (method name, gain in percentage points).")
    method, gain = answer
    gain = _nb08_number(gain, "gain_pp")
    if gain is None:
        return False
    mean = {m: sum(v) / len(v) for m, v in table.items()}
    methods = [m for m in table if m != "scratch"]
    best = max(methods, key=lambda m: mean[m])
    if method not in table:
        return feedback(False, f"{method!r} is not a row of the table; the rows are {list(table)}.")
    if method == "scratch":
        return feedback(False, "scratch is the baseline, not a distillation method; pick the best "
                        "of the other rows.")
    by_single_seed = max(methods, key=lambda m: max(table[m]))
    if method != best:
        if method == by_single_seed:
            return feedback(False, f"{method} has the best single seed, but one lucky seed is not "
                            "a result: rank by the mean over seeds.")
        return feedback(False, f"{method} is not the best by mean accuracy; compare the means of "
                        "every row except scratch.")
    expected = 100 * (mean[best] - mean["scratch"])
    if close(gain, expected, rtol=1e-3, atol=1e-6):
        return feedback(True, f"Right: {best}, {expected:+.2f} points over scratch (mean of "
                        f"{len(table[best])} seeds each).")
    if close(gain, expected / 100, rtol=1e-3, atol=1e-8):
        return feedback(False, "That is a fraction; the question asks for percentage points "
                        "(multiply by 100).")
    if close(gain, -expected, rtol=1e-3, atol=1e-6):
        return feedback(False, "Wrong sign: the gain is best − scratch.")
    if close(gain, 100 * (max(table[best]) - max(table["scratch"])), rtol=1e-3, atol=1e-6):
        return feedback(False, "You compared the best seeds; compare the means over seeds.")
    return feedback(False, f"The method is right but {gain:.3f} points is off: 100 × (mean of "
                    f"{best}'s accuracies − mean of scratch's).")


def check_quantized_ratio(answer, model) -> bool:
    """Exercise 9.2: the float / int8 size ratio dynamic quantisation can reach on ``model``
    when only its ``nn.Linear`` parameters go from 4 bytes to 1: ``1 / (f/4 + (1 - f))``."""
    from .quantize import predicted_ratio, quantized_fraction

    if _unanswered(answer):
        return not_attempted("set `ratio` to the predicted float size / quantised size.")
    value = _nb08_number(answer, "ratio")
    if value is None:
        return False
    f, expected = quantized_fraction(model), predicted_ratio(model)
    if close(value, expected, rtol=2e-3):
        return feedback(True, f"Right: {100 * f:.1f}% of the parameters are in Linear layers, so "
                        f"at best {expected:.2f}× smaller — the float part caps the gain.")
    wrong = [
        (4.0, "4× holds only if every parameter is quantised; dynamic quantisation leaves the "
         "convolutions and batch norm in float32."),
        (1 / expected, "That is quantised / float; the question asks float / quantised (> 1)."),
        (f, "That is the fraction f of parameters in Linear layers; turn it into a size ratio: "
         "1 / (f/4 + (1 − f))."),
        (1 / (f + (1 - f) / 4), "You quantised the wrong part: the Linear fraction f goes to "
         "f/4, the rest (convolutions, batch norm) stays at full size."),
    ]
    hint = known_mistake(value, wrong, rtol=2e-3)
    if hint:
        return feedback(False, hint)
    return feedback(False, f"{value:.3f} is off. Count the parameters inside nn.Linear modules, "
                    "divide by all parameters to get f, then 1 / (f/4 + (1 − f)).")

"""Self-checks for notebook 02, teachers and students: counting FLOPs of the students' layers
and comparing the teacher's and the student's predictions.
"""
from __future__ import annotations

import torch

from .feedback import close, feedback, is_unanswered, known_mistake, not_attempted


def _single_number(answer, what: str):
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
    if is_unanswered(flops):
        return not_attempted("set `flops` to the student's FLOPs per image (a number).")
    value = _single_number(flops, "flops")
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
    if is_unanswered(flops):
        return not_attempted("set `flops` to the FLOPs of the student's first convolution per image.")
    value = _single_number(flops, "flops")
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
    if is_unanswered(answer):
        return not_attempted("set `answer` to the number of test images the teacher gets right and "
                             "the student gets wrong.")
    value = _single_number(answer, "answer")
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

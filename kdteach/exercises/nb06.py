"""Self-checks for notebook 06, attention transfer: the weight of a summed loss convention
and the p = 1 attention map.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import attention_map
from .feedback import close, feedback, is_unanswered, not_attempted


def check_beta_sum_convention(beta) -> bool:
    """Exercise 6.1: the weight that makes a per-sample *sum* over the 7×7 positions
    (averaged over the batch) equal to ``1000 · at_loss`` (a mean over batch and positions)."""
    if is_unanswered(beta):
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
    if is_unanswered(answer):
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

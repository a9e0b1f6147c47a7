"""Self-checks for notebook 07, relational knowledge distillation: RKD's normalised distance
matrix, the similarity matrix of similarity-preserving KD, and what an L1 row normalisation
does to SP's weight γ.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .feedback import close, feedback, is_unanswered, not_attempted


def check_rkd_psi_d(answer, emb) -> bool:
    """Exercise 7.1: RKD's normalised distance matrix ψ_D of the rows of ``emb`` (B, D):
    Euclidean distances divided by their mean over the pairs i ≠ j."""
    if is_unanswered(answer):
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
    if is_unanswered(answer):
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


def _sp_rows(student, teacher, p):
    """SP's loss with each row of Q Qᵀ scaled to unit Lp norm (p = 2: Tung & Mori; p = 1:
    torchdistill 1.1.5's normalize(G, 1))."""
    g_s = F.normalize(student @ student.T, p=p, dim=1)
    g_t = F.normalize(teacher @ teacher.T, p=p, dim=1)
    return float((g_t - g_s).pow(2).sum() / len(student) ** 2)


def check_gamma_l1(gamma_l1, student_emb, teacher_emb, gamma=3000.0) -> bool:
    """Exercise 7.3: the weight that makes the L1-row SP loss, on this batch, equal to
    ``gamma`` times the paper's L2-row SP loss: ``gamma · L_L2 / L_L1``."""
    if is_unanswered(gamma_l1):
        return not_attempted("set `gamma_l1` to a number: the weight for the L1-normalised loss.")
    if isinstance(gamma_l1, bool):
        return feedback(False, "Give a number, not a bool.")
    try:
        gamma_l1 = float(gamma_l1)
    except (TypeError, ValueError):
        return feedback(False, f"Give a number, not {type(gamma_l1).__name__}.")
    s = student_emb.detach().double().flatten(1)
    t = teacher_emb.detach().double().flatten(1)
    b = len(s)
    l2, l1 = _sp_rows(s, t, 2), _sp_rows(s, t, 1)
    ratio = l2 / l1
    expected = gamma * ratio
    if close(gamma_l1, expected, rtol=1e-3):
        return feedback(True, f"Right: on this batch the L1 version of the loss is {ratio:.2f} times "
                        f"smaller, so its weight must be {ratio:.2f} times larger: γ ≈ {expected:.0f}. "
                        f"The factor approaches b = {b} as a row's entries become equal, and it "
                        "grows with the batch size: γ does not carry over.")
    mistakes = [
        (gamma / ratio, "Inverted: dividing rows by their L1 norm (≥ the L2 norm) makes the loss "
                        "smaller, so the L1 version needs a larger weight, not a smaller one."),
        (gamma, "γ does not carry over: the two normalisations scale the loss differently. Compute "
                "both losses on this batch and compare them."),
        (gamma * b, f"b = {b} is the factor only for rows of equal entries; compute the two losses on "
                    "this batch and take their ratio."),
        (gamma * math.sqrt(ratio), "That scales the entries of G, not the loss: the loss squares "
                                   "the entries, so use the ratio of the losses themselves."),
    ]
    for value, hint in mistakes:
        if close(gamma_l1, value, rtol=1e-3):
            return feedback(False, hint)
    return feedback(False, f"{gamma_l1:g} is off. gamma_l1 = {gamma:g} × L_SP(L2 rows) / "
                    "L_SP(L1 rows), both on this batch.")

"""Self-checks for notebook 08, online and self-distillation: the deep-mutual-learning loss
and the prediction of a born-again ensemble.
"""
from __future__ import annotations

import torch

from .feedback import (as_float64, as_number, close, feedback, is_unanswered, known_mistake,
                       not_attempted)


def check_dml_loss(answer, cohort_logits, labels) -> bool:
    """Exercise 8.1: peer 0's deep-mutual-learning loss in a cohort of K networks, by hand:
    ``CE(y, p_0) + 1/(K-1) * sum_{l != 0} KL(p_l || p_0)`` (Zhang et al. 2018, Sec. 3.3),
    KL summed over classes and averaged over the batch; ``cohort_logits`` is (K, B, C)."""
    if is_unanswered(answer):
        return not_attempted("set `loss0` to peer 0's DML loss (one number).")
    value = as_number(answer, "loss0")
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


def check_bane_probs(answer, generation_logits, labels=None) -> bool:
    """Exercise 8.2: the born-again ensemble's prediction, by hand. ``generation_logits`` is
    (G+1, N, C): the logits of generation 0 (the teacher, trained on labels) and of its
    born-again students, generations 1..G. BANE (Furlanello et al. 2018, Sec. 3.1; the
    ensembles Ens*2 and Ens*3 of their Table 2) averages the *students'* softmax
    probabilities: ``1/G * sum_{i=1..G} softmax(z_i)``, an (N, C) tensor. ``labels``, if
    given, only adds the ensemble's accuracy to the verdict.

    The answer is checked as probabilities, not as an accuracy: two ways of averaging can
    pick the same class for every example — and so have the same accuracy — while their
    probabilities differ.
    """
    if is_unanswered(answer):
        return not_attempted("set `bane_probs` to BANE's predicted probabilities, an (N, C) "
                             "tensor.")
    try:
        value = as_float64(answer)
    except (TypeError, ValueError, RuntimeError):
        return feedback(False, f"bane_probs must be a tensor or an array of probabilities, got "
                        f"{type(answer).__name__}.")
    z = as_float64(generation_logits)
    if z.ndim != 3 or len(z) < 2:
        raise ValueError(f"generation_logits must be (G+1, N, C) with G >= 1 students, got shape "
                         f"{tuple(z.shape)}")
    _, N, C = z.shape
    students = z[1:]
    G = len(students)
    expected = torch.softmax(students, -1).mean(0)
    if value.shape != (N, C):
        if value.ndim == 3 and value.shape[1:] == (N, C):
            hint = "average over the generations (dim 0) to get one (N, C) prediction."
        elif value.shape == (N,):
            hint = ("that looks like one number per example (predicted classes?); give the "
                    "probabilities — the argmax comes afterwards.")
        elif value.numel() == 1:
            hint = "that is one number; give the ensemble's probabilities for every example."
        else:
            hint = f"expected one row of {C} probabilities per example."
        return feedback(False, f"bane_probs has shape {tuple(value.shape)}, not ({N}, {C}): {hint}")
    if close(value, expected, rtol=1e-4, atol=1e-5):
        extra = ""
        if labels is not None:
            y = torch.as_tensor(labels).cpu().long()
            accuracy = float((expected.argmax(-1) == y).double().mean())
            extra = f"; its accuracy is {accuracy:.4f}"
        return feedback(True, f"Right: the mean of the {G} born-again students' probabilities "
                        f"(generations 1–{G}, the teacher left out){extra}.")
    all_probs = torch.softmax(z, -1)
    wrong = [
        (all_probs.mean(0),
         "You included generation 0, the teacher: BANE averages only the born-again students, "
         f"generations 1–{G} (Ens*2 in Table 2 is BAN-1 with BAN-2)."),
        (torch.softmax(students.mean(0), -1),
         "That is the softmax of the averaged logits — a normalised geometric mean of the "
         "probabilities. BANE averages the probabilities: softmax each generation first, then "
         "average."),
        (torch.softmax(z.mean(0), -1),
         "Two slips: you averaged logits, and included generation 0. Softmax each student "
         f"(generations 1–{G}) first, then average."),
        (torch.log_softmax(students, -1).mean(0),
         "That is the mean of the log-probabilities; average the probabilities themselves "
         "(softmax, not log_softmax)."),
        (expected.log(), "Those are log-probabilities of the right average; give the "
         "probabilities themselves (exp of what you have)."),
        (students.mean(0), "Those are averaged logits, not probabilities: apply softmax over the "
         "classes to each generation, then average."),
        (torch.softmax(students[-1], -1), "That is the last generation alone; the ensemble "
         f"averages all {G} students."),
        (torch.nn.functional.one_hot(students.argmax(-1), C).double().mean(0),
         "That is a vote of the students' predicted classes; average their probabilities "
         "instead (a vote throws away how confident each one is)."),
    ]
    # a mistake is only named when it gives something else than the right answer
    wrong = [(w, h) for w, h in wrong if not close(w, expected, rtol=1e-4, atol=1e-5)]
    hint = known_mistake(value, wrong, rtol=1e-4, atol=1e-5)
    if hint:
        return feedback(False, hint)
    if not torch.allclose(value.sum(-1), torch.ones(N, dtype=value.dtype), atol=1e-4):
        return feedback(False, "Each row should sum to 1 over the classes: apply softmax over the "
                        "last dimension (dim=-1) of each generation's logits, then average.")
    return feedback(False, "Those probabilities are off. Take generations 1..G (leave out "
                    "generation 0), apply softmax over the classes, average over the generations.")

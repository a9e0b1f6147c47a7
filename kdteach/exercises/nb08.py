"""Self-checks for notebook 08, online and self-distillation: the deep-mutual-learning loss
and the accuracy of a born-again ensemble.
"""
from __future__ import annotations

import torch

from .feedback import as_number, close, feedback, is_unanswered, known_mistake, not_attempted


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


def check_bane_accuracy(answer, generation_logits, labels) -> bool:
    """Exercise 8.2: accuracy of the born-again ensemble of all G generations — the average of
    their softmax *probabilities* (Furlanello et al. 2018, Sec. 3.2) — from (G, N, C) logits."""
    if is_unanswered(answer):
        return not_attempted("set `bane_acc` to the ensemble's accuracy (a fraction in [0, 1]).")
    value = as_number(answer, "bane_acc")
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

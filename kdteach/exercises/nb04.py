"""Self-checks for notebook 04, dark-knowledge experiments: label smoothing matched to a
teacher's soft targets, and an ensemble's soft targets.
"""
from __future__ import annotations

import torch

from .feedback import close, feedback, is_unanswered, known_mistake, not_attempted


def _cpu_float64(x) -> torch.Tensor:
    return torch.as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=torch.float64)


def check_matched_smoothing(eps, teacher_logits, labels, T) -> bool:
    """Exercise 4.1: the label-smoothing ``eps`` that moves as much probability off the true class
    as the teacher's soft targets at temperature ``T`` do, on average:
    ``eps * (K - 1) / K = mean(1 - q_y)``, with ``q = softmax(teacher_logits / T)``."""
    if is_unanswered(eps):
        return not_attempted("set `eps` to the matched label-smoothing strength (a number in [0, 1]).")
    if isinstance(eps, torch.Tensor) and eps.numel() == 1:
        eps = eps.item()
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        return feedback(False, f"eps must be one number, got {type(eps).__name__}; average over the "
                        "examples (e.g. with .mean()) and convert with float(...).")
    z = _cpu_float64(teacher_logits)
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
    if is_unanswered(answer):
        return not_attempted("set `answer` to the ensemble's soft targets, an (N, K) tensor.")
    if not isinstance(answer, torch.Tensor):
        return feedback(False, f"answer must be a torch tensor of shape (N, K), got "
                        f"{type(answer).__name__}.")
    z = _cpu_float64(member_logits)
    M, N, K = z.shape
    a = _cpu_float64(answer)
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
